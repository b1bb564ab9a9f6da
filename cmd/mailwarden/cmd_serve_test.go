package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/d--j/go-milter"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls the log until it contains want n times.
func waitFor(t *testing.T, log *syncBuffer, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(log.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q (%d times):\n%s", want, n, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// milterVerdict sends one message with the given body through the milter
// socket, as Postfix would, and returns the final action.
func milterVerdict(t *testing.T, sock, body string) *milter.Action {
	t.Helper()
	c := milter.NewClient("unix", sock, milter.WithReadTimeout(10*time.Second), milter.WithWriteTimeout(10*time.Second))
	macros := milter.NewMacroBag()
	macros.Set(milter.MacroQueueId, "SERVE1")
	s, err := c.Session(macros)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer s.Close()
	step := func(a *milter.Action, err error) {
		t.Helper()
		if err != nil || a.Type != milter.ActionContinue {
			t.Fatalf("step: %v %v", a, err)
		}
	}
	step(s.Conn("mail.sender.test", milter.FamilyInet, 4000, "198.51.100.9"))
	step(s.Helo("mail.sender.test"))
	step(s.Mail("<ceo@sender.test>", ""))
	step(s.Rcpt("<finance@example.org>", ""))
	step(s.DataStart())
	step(s.HeaderField("From", " ceo@sender.test", nil))
	step(s.HeaderField("Subject", " payment", nil))
	step(s.HeaderEnd())
	_, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return act
}

// TestServeReloadAndStop runs the daemon in-process: it filters, a SIGHUP
// with a broken config keeps the old rules, a SIGHUP with a good one
// applies it, SIGTERM stops it with exit 0 and removes the socket.
func TestServeReloadAndStop(t *testing.T) {
	dir, err := os.MkdirTemp("", "mws")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "m.sock")
	top := "listen = { address = \"unix:" + sock + "\", grace_period = \"5s\" }\nlog = { level = \"info\", format = \"json\" }\n"
	good, _ := os.ReadFile(offlineConfig(t, top))
	cfgPath := filepath.Join(dir, "mailwarden.toml")
	if err := os.WriteFile(cfgPath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	exited := make(chan int, 1)
	go func() { exited <- runServe([]string{"-config", cfgPath}, &bytes.Buffer{}, stderr) }()
	waitFor(t, stderr, `"msg":"mailwarden started"`, 1)

	fraud := "please do the urgent wire transfer\r\n"
	if a := milterVerdict(t, sock, fraud); a.Type != milter.ActionRejectWithCode || a.SMTPCode != 550 {
		t.Fatalf("before reload: %+v", a)
	}
	waitFor(t, stderr, `"msg":"message"`, 1)
	if !strings.Contains(stderr.String(), `"queue_id":"SERVE1"`) || !strings.Contains(stderr.String(), `"action":"reject"`) {
		t.Errorf("summary line:\n%s", stderr)
	}

	// A broken config is refused; the old one stays in force.
	os.WriteFile(cfgPath, append(bytes.Clone(good), []byte("\n[lists]\ntypo_key = 1\n")...), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, stderr, `"msg":"config reload refused"`, 1)
	if !strings.Contains(stderr.String(), `"line":`) {
		t.Errorf("the refusal names no line:\n%s", stderr)
	}
	if a := milterVerdict(t, sock, fraud); a.Type != milter.ActionRejectWithCode {
		t.Fatalf("after a refused reload: %+v", a)
	}

	// A good config is applied: monitor mode accepts.
	os.WriteFile(cfgPath, append([]byte("mode = \"monitor\"\n"), good...), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, stderr, `"msg":"config reloaded"`, 1)
	if a := milterVerdict(t, sock, fraud); a.Type != milter.ActionAccept {
		t.Fatalf("after reload to monitor: %+v", a)
	}
	waitFor(t, stderr, `"would_be":"reject"`, 1)

	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM:\n%s", code, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after stop: %v", err)
	}
}

func TestServeBadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(p, []byte("[listen]\naddress = \"nowhere\"\n"), 0o644)
	var stderr bytes.Buffer
	if code := runServe([]string{"-config", p}, &bytes.Buffer{}, &stderr); code != 1 || !strings.Contains(stderr.String(), "listen.address") {
		t.Errorf("bad config: exit %d %q", code, stderr.String())
	}
	if code := runServe([]string{"-bogus"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
	// A regular file where the socket should be is not removed.
	dir, _ := os.MkdirTemp("", "mws")
	defer os.RemoveAll(dir)
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("x"), 0o644)
	cfg := offlineConfig(t, "listen = { address = \"unix:"+regular+"\" }\n")
	stderr.Reset()
	if code := runServe([]string{"-config", cfg}, &bytes.Buffer{}, &stderr); code != 1 || !strings.Contains(stderr.String(), "not a socket") {
		t.Errorf("socket path is a regular file: exit %d %q", code, stderr.String())
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "x" {
		t.Error("the regular file was touched")
	}
}
