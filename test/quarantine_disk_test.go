package e2e_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/test/harness"
)

// tinyFS mounts a 256 KiB tmpfs on a new temporary directory until the
// test ends. It needs root (CI runs as root): elsewhere the test is
// skipped, in CI (CI=true) it fails.
func tinyFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		harness.Unavailable(t, "mounting a tmpfs for the full-disk case needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		harness.Unavailable(t, "mount -t tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !strings.Contains(err.Error(), "no space left") {
				t.Fatalf("filling %s: %v", path, err)
			}
			return
		}
	}
}

// The store on a full disk, through real Postfix: the quarantine cannot
// write its copy, so the daemon tempfails (451) and nothing is lost. A
// client talking to the filtered Postfix directly gets the 451; a
// sending Postfix in front keeps the message in its deferred queue and,
// once there is room again, delivers it on the next run, when it is
// quarantined as it should have been.
func TestQuarantineFullDiskTempfails(t *testing.T) {
	qdir := tinyFS(t)
	md, mainCF := harness.VirtualMaildirs(t, "alice@e2e.test")
	milter := freeAddr(t)
	pfIn := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:" + milter, MainCF: mainCF})
	pfOut := harness.StartPostfix(t, harness.PostfixOptions{Relay: pfIn.SMTPAddr()})
	dir := t.TempDir()
	key := filepath.Join(dir, "q.key")
	os.WriteFile(key, []byte("full-disk-secret-0123456789abcdef"), 0o600)
	mw := harness.StartMailwarden(t, fmt.Sprintf(`
authserv_id = "mx.e2e.test"
local_domains = ["e2e.test"]
[listen]
address = "inet:%s"
`+spammyRule+`[quarantine]
enabled = true
dir = %q
# the index elsewhere: only the message store is on the full disk
index = %q
secret_file = %q
[quarantine.web]
listen = ""
`, milter, filepath.Join(qdir, "q"), filepath.Join(dir, "index.db"), key))
	fill(t, filepath.Join(qdir, "filler"))

	msg := func(k int) []byte {
		return []byte(fmt.Sprintf("From: <offers@shop.example>\r\nTo: alice@e2e.test\r\nSubject: SPAMMY %d\r\nMessage-ID: <disk-%d@shop.example>\r\n\r\n%s\r\n",
			k, k, strings.Repeat("Full disk test body line.\r\n", 200)))
	}
	// directly: 451
	var se *harness.SMTPError
	err := harness.SendSMTP(pfIn.SMTPAddr(), "client.shop.example", "offers@shop.example", []string{"alice@e2e.test"}, msg(1))
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("store on a full disk: %v, want 451\n%s", err, mw.Stderr())
	}
	line := mw.WaitLog(t, harness.MessageFrom("offers@shop.example"), 10*time.Second)
	if line["action"] != "tempfail" || !strings.Contains(fmt.Sprint(line["reasons"]), "quarantine-unavailable") {
		t.Errorf("summary line %v", line)
	}
	mw.WaitLog(t, func(l map[string]any) bool {
		return strings.Contains(fmt.Sprint(l["error"]), "no space left on device")
	}, 5*time.Second)

	// through a sending Postfix: deferred, kept, delivered later
	if err := harness.SendSMTP(pfOut.SMTPAddr(), "client.shop.example", "offers@shop.example", []string{"alice@e2e.test"}, msg(2)); err != nil {
		t.Fatalf("the sending Postfix refused: %v", err)
	}
	var deferred harness.QueueEntry
	for deadline := time.Now().Add(30 * time.Second); deferred.QueueID == ""; {
		for _, e := range pfOut.Queue(t) {
			// Deferred with our 451, in whichever queue the retry
			// cycle (1-2 s backoff here) has it: the queue manager
			// may have put it back in "incoming" ("skipped, still
			// being delivered") and leave it there until a flush.
			if e.QueueName != "hold" && len(e.Recipients) == 1 && strings.Contains(e.Recipients[0].DelayReason, "451") {
				deferred = e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no deferred message with a 451 in the sending Postfix: %+v\n%s", pfOut.Queue(t), pfOut.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if md.Wait("alice@e2e.test", nil, time.Second) != nil {
		t.Fatal("delivered while the quarantine could not keep it")
	}
	if err := os.Remove(filepath.Join(qdir, "filler")); err != nil {
		t.Fatal(err)
	}
	n := len(mw.Logs())
	pfOut.Flush(t)
	line = mw.WaitLogAfter(t, n, func(l map[string]any) bool {
		return l["msg"] == "message" && l["quarantine_id"] != nil
	}, 60*time.Second)
	if line["action"] != "discard" && line["action"] != "accept" {
		t.Errorf("after room was made: %v", line)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		still := false
		for _, e := range pfOut.Queue(t) {
			still = still || e.QueueID == deferred.QueueID
		}
		if !still {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sending Postfix still has %s after the retry:\n%s", deferred.QueueID, pfOut.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, err := exec.Command(harness.Mailwarden(t), "quarantine", "-socket", filepath.Join(mw.Dir, "control.sock"), "show", line["quarantine_id"].(string)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "alice@e2e.test held") || !strings.Contains(string(out), "SPAMMY 2") {
		t.Errorf("show: %v\n%s", err, out)
	}
}

// Oversize mail to quarantine in store mode, through real Postfix: past
// max_message_size (not checked) but under max_store_size it is stored
// whole; past max_store_size it stays in Postfix's hold queue, logged.
func TestQuarantineOversizeStoreOrHold(t *testing.T) {
	md, mainCF := harness.VirtualMaildirs(t, "alice@e2e.test")
	milter := freeAddr(t)
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:" + milter, MainCF: mainCF})
	dir := t.TempDir()
	key := filepath.Join(dir, "q.key")
	os.WriteFile(key, []byte("oversize-secret-0123456789abcdef"), 0o600)
	mw := harness.StartMailwarden(t, fmt.Sprintf(`
authserv_id = "mx.e2e.test"
local_domains = ["e2e.test"]
max_message_size = "100KB"
max_message_size_action = "quarantine"
[listen]
address = "inet:%s"
[quarantine]
enabled = true
dir = %q
secret_file = %q
max_store_size = "300KB"
[quarantine.web]
listen = ""
`, milter, filepath.Join(dir, "q"), key))
	big := func(k, size int) []byte {
		return []byte(fmt.Sprintf("From: <big@files.example>\r\nTo: alice@e2e.test\r\nSubject: big %d\r\n\r\n%s\r\n",
			k, strings.Repeat(strings.Repeat("x", 76)+"\r\n", size/78)))
	}
	send := func(k, size int) map[string]any {
		t.Helper()
		n := len(mw.Logs())
		if err := harness.SendSMTP(pf.SMTPAddr(), "client.files.example", "big@files.example", []string{"alice@e2e.test"}, big(k, size)); err != nil {
			t.Fatalf("send %d: %v", size, err)
		}
		return mw.WaitLogAfter(t, n, harness.MessageFrom("big@files.example"), 30*time.Second)
	}
	line := send(1, 200<<10)
	id, _ := line["quarantine_id"].(string)
	if id == "" || line["action"] != "discard" || !strings.Contains(fmt.Sprint(line["reasons"]), "message-oversize") {
		t.Fatalf("200 KB: %v, want it stored (discard, quarantine_id)", line)
	}
	out, err := exec.Command(harness.Mailwarden(t), "quarantine", "-socket", filepath.Join(mw.Dir, "control.sock"), "show", "-raw", id).CombinedOutput()
	if err != nil || len(out) < 200<<10 || !strings.Contains(string(out), "Subject: big 1") {
		t.Errorf("stored copy: %v, %d bytes", err, len(out))
	}
	line = send(2, 500<<10)
	if line["quarantine_id"] != nil || line["action"] != "quarantine" {
		t.Errorf("500 KB: %v, want the MTA's hold", line)
	}
	pf.WaitHold(t, nil, 20*time.Second)
	mw.WaitLog(t, harness.MsgIs("quarantine: message too big to store; left to the MTA's hold queue"), 5*time.Second)
	if md.Wait("alice@e2e.test", nil, time.Second) != nil {
		t.Error("an oversize message was delivered")
	}
}
