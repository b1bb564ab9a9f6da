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

	// An empty file, and one that is not a complete config of this
	// daemon, are refused, saying why (issue 11.7: an empty file turned
	// scanning and every limit off).
	for i, bad := range []string{"", "# comments only\n", "[lists]\ndeny_senders = [\"x@y.test\"]\n"} {
		os.WriteFile(cfgPath, []byte(bad), 0o644)
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		waitFor(t, stderr, `"msg":"config reload refused"`, 2+i)
		if a := milterVerdict(t, sock, fraud); a.Type != milter.ActionRejectWithCode {
			t.Fatalf("after reloading %q: %+v, want the old config in force", bad, a)
		}
	}
	if !strings.Contains(stderr.String(), "empty file") || !strings.Contains(stderr.String(), "no [listen] table") {
		t.Errorf("the refusals do not say why:\n%s", stderr)
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

// TestServeRefusesIncompleteConfig: a start with -config refuses an empty
// file and a fragment, saying why.
func TestServeRefusesIncompleteConfig(t *testing.T) {
	for _, c := range []struct{ text, why string }{
		{"", "empty file"},
		{"\n# nothing\n", "empty file"},
		{"[lists]\ndeny_senders = [\"x@y.test\"]\n", "no [listen] table"},
		{"[listen]\nread_timeout = \"1m\"\n", "no [listen] address"},
	} {
		p := filepath.Join(t.TempDir(), "m.toml")
		os.WriteFile(p, []byte(c.text), 0o644)
		var stderr bytes.Buffer
		if code := runServe([]string{"-config", p}, &bytes.Buffer{}, &stderr); code != 1 || !strings.Contains(stderr.String(), c.why) {
			t.Errorf("%q: exit %d %q, want 1 and %q", c.text, code, stderr.String(), c.why)
		}
	}
}

// TestConfigCheckRedacts: `config check` never prints a Redis password or
// a secret (issue 11.8).
func TestConfigCheckRedacts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.toml")
	os.WriteFile(p, []byte("[store]\nbackend = \"redis\"\nredis_url = \"redis://:hunter2@127.0.0.1:notaport/0\"\n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := runConfig([]string{"check", p}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "redis_url") {
		t.Fatalf("exit %d %q, want a redis_url error", code, stderr.String())
	}
	if strings.Contains(stderr.String()+stdout.String(), "hunter2") {
		t.Errorf("config check printed the password: %s", stderr.String())
	}
}

// TestServeRemovesSpoolLeftovers: spool files a killed daemon left in
// temp_dir are removed at start; one another process holds is kept.
func TestServeRemovesSpoolLeftovers(t *testing.T) {
	dir, err := os.MkdirTemp("", "mws")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	spoolDir := filepath.Join(dir, "spool")
	os.Mkdir(spoolDir, 0o700)
	left := filepath.Join(spoolDir, "mailwarden-123.body")
	live := filepath.Join(spoolDir, "mailwarden-456.body")
	other := filepath.Join(spoolDir, "other-123.body")
	for _, f := range []string{left, live, other} {
		os.WriteFile(f, []byte("body"), 0o600)
	}
	lf, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "m.sock")
	top := "listen = { address = \"unix:" + sock + "\" }\nmessage = { temp_dir = \"" + spoolDir + "\" }\n"
	stderr := &syncBuffer{}
	exited := make(chan int, 1)
	go func() { exited <- runServe([]string{"-config", offlineConfig(t, top)}, &bytes.Buffer{}, stderr) }()
	waitFor(t, stderr, `"msg":"mailwarden started"`, 1)
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	<-exited
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("leftover spool file still there: %v", err)
	}
	for _, f := range []string{live, other} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s removed: %v", f, err)
		}
	}
	if !strings.Contains(stderr.String(), "removed spool files left by an earlier run") {
		t.Errorf("no log line for the removal:\n%s", stderr)
	}
}
