package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDovecotImapsieve: the shipped imapsieve snippets, in a private
// Dovecot, call the pipe program with "spam" when a client MOVEs a
// message into Junk and with "ham" when it MOVEs one out (but not to
// Trash), with the message on stdin.
func TestDovecotImapsieve(t *testing.T) {
	rec := shortTempDir(t, "rec")
	if err := os.Chmod(rec, 0o777); err != nil {
		t.Fatal(err)
	}
	// The recorder appends "CLASS SUBJECT" per call.
	pipe := fmt.Sprintf("#!/bin/sh\nsubj=$(grep -m1 '^Subject:' | tr -d '\\r')\necho \"$1 $subj\" >>%s/calls\n", rec)
	d := StartDovecot(t, DovecotOptions{Config: Imapsieve(t, []byte(pipe))})
	d.CompileSieve(t)

	c, err := DialIMAP(d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", DovecotPassword); err != nil {
		t.Fatalf("%v\n%s", err, d.Log())
	}
	for _, s := range []string{"one", "two"} {
		msg := "From: a@example.org\r\nTo: alice@example.org\r\nSubject: " + s + "\r\n\r\nbody " + s + "\r\n"
		if err := c.Append("INBOX", []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	uids, err := c.UIDs()
	if err != nil || len(uids) != 2 {
		t.Fatalf("INBOX uids %v, %v", uids, err)
	}
	if err := c.Move(uids, "Junk"); err != nil {
		t.Fatal(err)
	}
	if err := c.Select("Junk"); err != nil {
		t.Fatal(err)
	}
	junk, err := c.UIDs()
	if err != nil || len(junk) != 2 {
		t.Fatalf("Junk uids %v, %v", junk, err)
	}
	if err := c.Move(junk[:1], "INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := c.Move(junk[1:], "Trash"); err != nil {
		t.Fatal(err)
	}

	want := []string{"spam Subject: one", "spam Subject: two", "ham Subject: one"}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(rec, "calls"))
		got = strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(got) >= len(want) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a wrong extra call (Trash) would come now
	b, _ := os.ReadFile(filepath.Join(rec, "calls"))
	got = strings.Split(strings.TrimSpace(string(b)), "\n")
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("pipe calls %q, want %q\n%s", got, want, d.Log())
	}
}
