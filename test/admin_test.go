package e2e_test

// Issue 17 items 2 and 13.4: `check` and `learn` beside a running daemon
// that holds the bolt store, and users' moves into and out of Junk in a
// real Dovecot reaching the daemon's learning path.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/test/harness"
)

const adminConfig = `
authserv_id = "mx.e2e.test"
local_domains = ["example.org"]
[store]
backend = "bolt"
[auth.spf]
enabled = false
[auth.dkim]
enabled = false
[auth.dmarc]
enabled = false
[virus]
enabled = false
[spam.bayes]
min_spam = 1
min_ham = 1
cache_ttl = "0s"
%s
`

func adminMessage(subject, body string) []byte {
	return []byte(fmt.Sprintf("From: sender@remote.example\r\nTo: user@example.org\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%s@remote.example>\r\n\r\n%s\r\n",
		subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), strings.ReplaceAll(subject, " ", "-"), body))
}

func mwRun(t *testing.T, stdin []byte, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(harness.Mailwarden(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestCheckAndLearnBesideDaemon: with the daemon running on its bolt
// store, check is answered by the daemon at once (no 5 s lock wait, no
// tempfail) and says so; learn, from files and from stdin, goes into the
// daemon's store; and a check writes nothing.
func TestCheckAndLearnBesideDaemon(t *testing.T) {
	d := harness.StartMailwarden(t, fmt.Sprintf(adminConfig, ""))
	dir := t.TempDir()
	spamFile := filepath.Join(dir, "spam.eml")
	os.WriteFile(spamFile, adminMessage("cheap pills", "buy cheap pills viagra casino now"), 0o644)

	start := time.Now()
	out, code := mwRun(t, nil, "check", "-config", d.ConfigPath, spamFile)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("check took %s beside the daemon", el)
	}
	if code != 0 || !strings.Contains(out, "the running daemon (pid") || !strings.Contains(out, "nothing written") || !strings.Contains(out, d.ConfigPath) {
		t.Fatalf("check beside the daemon: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "autoreply-error") || strings.Contains(out, "tempfail") {
		t.Errorf("check waited for the store:\n%s", out)
	}
	out, code = mwRun(t, nil, "check", "-config", d.ConfigPath, "--json", spamFile)
	if code != 0 || !strings.Contains(out, `"via": "daemon"`) {
		t.Errorf("check --json: exit %d\n%s", code, out)
	}

	out, code = mwRun(t, nil, "learn", "-config", d.ConfigPath, "--spam", spamFile)
	if code != 0 || !strings.Contains(out, "learned 1 messages") || !strings.Contains(out, "through the running daemon") {
		t.Fatalf("learn beside the daemon: exit %d\n%s", code, out)
	}
	out, code = mwRun(t, adminMessage("lunch", "shall we meet for lunch on friday"), "learn", "-config", d.ConfigPath, "--ham", "-")
	if code != 0 || !strings.Contains(out, "learned 1 messages") || !strings.Contains(out, "1 spam and 1 ham") {
		t.Fatalf("learn from stdin: exit %d\n%s", code, out)
	}
	d.WaitLog(t, func(m map[string]any) bool { return m["msg"] == "learned" && m["class"] == "ham" }, 5*time.Second)

	// The daemon now scores with Bayes: the check says so.
	out, _ = mwRun(t, nil, "check", "-config", d.ConfigPath, "--explain", spamFile)
	if !strings.Contains(out, "bayes") || strings.Contains(out, "bayes not ready") {
		t.Errorf("check after learning shows no Bayes:\n%s", out)
	}
	if gone, err := d.Exited(); gone {
		t.Fatalf("daemon exited: %v", err)
	}
}

// TestDovecotJunkTeachesBayes (issue 13.4): a real IMAP client MOVEs
// messages into Junk and back out in a private Dovecot with the shipped
// imapsieve snippets; the shipped pipe program hands each to the running
// daemon as the mail user (nobody, in [control] learn_users); the
// daemon's store learns two spam and one ham.
func TestDovecotJunkTeachesBayes(t *testing.T) {
	harness.Require(t, "dovecot", "sievec")
	d := harness.StartMailwarden(t, fmt.Sprintf(adminConfig, "[control]\nlearn_users = [\"nobody\"]\n"))
	// The pipe runs as nobody: it needs a binary and a config it can read.
	binDir := t.TempDir()
	os.Chmod(binDir, 0o755)
	bin := filepath.Join(binDir, "mailwarden")
	b, err := os.ReadFile(harness.Mailwarden(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for p := binDir; p != "/"; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(p, fi.Mode().Perm()|0o011)
		}
	}
	root, _ := harness.ModuleRoot()
	pipe, err := os.ReadFile(filepath.Join(root, "examples", "dovecot", "mailwarden-learn"))
	if err != nil {
		t.Fatal(err)
	}
	pipe = []byte(strings.NewReplacer("/usr/bin/mailwarden", bin, "/etc/mailwarden/mailwarden.toml", d.ConfigPath).Replace(string(pipe)))
	dc := harness.StartDovecot(t, harness.DovecotOptions{Config: harness.Imapsieve(t, pipe)})
	dc.CompileSieve(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecot log:\n%s", dc.Log())
		}
	})

	c, err := harness.DialIMAP(dc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", harness.DovecotPassword); err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{
		adminMessage("win a prize", "claim your casino prize now, click here"),
		adminMessage("meeting notes", "notes from the planning meeting attached below"),
	} {
		if err := c.Append("INBOX", m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	uids, err := c.UIDs()
	if err != nil || len(uids) != 2 {
		t.Fatalf("INBOX: %v %v", uids, err)
	}
	if err := c.Move(uids, "Junk"); err != nil { // the user: "both are junk"
		t.Fatal(err)
	}
	if err := c.Select("Junk"); err != nil {
		t.Fatal(err)
	}
	junk, err := c.UIDs()
	if err != nil || len(junk) != 2 {
		t.Fatalf("Junk: %v %v", junk, err)
	}
	if err := c.Move(junk[1:], "INBOX"); err != nil { // "no, the notes are not"
		t.Fatal(err)
	}

	learned := func(class string, changed bool) func(map[string]any) bool {
		return func(m map[string]any) bool {
			return m["msg"] == "learned" && m["class"] == class && m["changed"] == changed
		}
	}
	d.WaitLog(t, learned("spam", true), 20*time.Second)
	line := d.WaitLog(t, learned("ham", true), 20*time.Second)
	// Two messages learned as spam, then one of them relearned as ham.
	if line["bayes_spam"] != float64(1) || line["bayes_ham"] != float64(1) {
		t.Errorf("after the moves the store holds %v spam, %v ham; want 1 and 1\n%s", line["bayes_spam"], line["bayes_ham"], dc.Log())
	}
	n := 0
	for _, m := range d.Logs() {
		if m["msg"] == "learned" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d learn requests, want 3 (two into Junk, one out)\n%s", n, dc.Log())
	}
}
