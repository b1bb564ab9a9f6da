package e2e_test

// Spam scoring end-to-end suite (issue 5): the real binary's eval on the
// SpamAssassin public corpus with the accuracy bars, learn into a bolt
// store then check --explain on the same store, and DNS lists through the
// shared resolver against a test DNS server.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/test/harness"
)

// spamCorpus returns the corpus directory; without it the test fails in
// CI and skips locally.
func spamCorpus(t *testing.T) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "..", "shared", "corpus", "spamassassin")
	if _, err := os.Stat(filepath.Join(dir, "ham")); err != nil {
		harness.Unavailable(t, "spam corpus: %v", err)
	}
	return dir
}

// corpusSample copies the first n ham and n spam messages of the corpus
// into two fresh directories (learn reads regular files, not links).
func corpusSample(t *testing.T, n int) (hamDir, spamDir string) {
	t.Helper()
	dir := spamCorpus(t)
	tmp := t.TempDir()
	hamDir, spamDir = filepath.Join(tmp, "ham"), filepath.Join(tmp, "spam")
	for _, d := range []struct{ from, to string }{{filepath.Join(dir, "ham"), hamDir}, {filepath.Join(dir, "spam"), spamDir}} {
		if err := os.Mkdir(d.to, 0o755); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(d.from, "*.eml"))
		if len(files) < n {
			t.Fatalf("corpus %s has %d messages, want %d", d.from, len(files), n)
		}
		for _, f := range files[:n] {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d.to, filepath.Base(f)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return hamDir, spamDir
}

// heldOutSpam is a corpus spam message that corpusSample never learns.
func heldOutSpam(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(spamCorpus(t), "spam", "*.eml"))
	return files[len(files)-1]
}

func runMW(t *testing.T, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(harness.Mailwarden(t), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("mailwarden %v: no answer in %v", args, timeout)
	}
	if errb.Len() > 0 && cmd.ProcessState.ExitCode() == 1 {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// TestSpamCorpusEval is the accuracy bar, on mail the built-in weights
// were not fitted on: `eval --split-date 2002-09-01` trains Bayes on the
// messages of the SpamAssassin public corpus received before that date
// (the part the weights were fitted on) and scores the 2138 ham and 363
// spam received later, at the default thresholds, with the default
// [spam.rules] (on, the Debian rules) and so the built-in weights fitted
// with them. Measured when the weights were committed: FP 0.28 % (6),
// recall 88.15 %, AUC 0.9954 (rules off: FP 0.33 %, recall 87.6 %, AUC
// 0.9904); the bars sit just outside. (The 5-fold figures of the old hand-set weights,
// FP 0.34 %, recall 95.8 %, came from weights chosen on that same corpus.)
func TestSpamCorpusEval(t *testing.T) {
	dir := spamCorpus(t)
	// The built-in defaults, whatever /etc/mailwarden holds.
	cfg := filepath.Join(t.TempDir(), "default.toml")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := runMW(t, 5*time.Minute, "eval", "-config", cfg, "--ham", filepath.Join(dir, "ham"), "--spam", filepath.Join(dir, "spam"), "--split-date", "2002-09-01", "--json")
	if code != 0 {
		t.Fatalf("eval exit %d: %s", code, out)
	}
	var r struct {
		Ham        int     `json:"ham"`
		Spam       int     `json:"spam"`
		FPRate     float64 `json:"fp_rate"`
		Recall     float64 `json:"recall"`
		AUC        float64 `json:"auc"`
		MsgsPerSec float64 `json:"msgs_per_sec"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("held-out ham %d spam %d: FP %.2f%% recall %.2f%% AUC %.4f, %.0f msgs/s", r.Ham, r.Spam, 100*r.FPRate, 100*r.Recall, r.AUC, r.MsgsPerSec)
	if r.Ham != 2138 || r.Spam != 363 {
		t.Errorf("eval saw %d ham, %d spam", r.Ham, r.Spam)
	}
	if r.FPRate > 0.005 {
		t.Errorf("false positive rate %.3f%% > 0.5%%", 100*r.FPRate)
	}
	if r.Recall < 0.85 {
		t.Errorf("spam recall %.2f%% < 85%%", 100*r.Recall)
	}
	if r.AUC < 0.99 {
		t.Errorf("ROC AUC %.4f < 0.99", r.AUC)
	}
}

// TestSpamLearnCheck teaches a bolt store with `learn`, relearns (nothing
// changes), scores with `check --explain --json` on that store, then
// forgets.
func TestSpamLearnCheck(t *testing.T) {
	tmp := t.TempDir()
	hamDir, spamDir := corpusSample(t, 250)
	probe := heldOutSpam(t)

	// No network: the auth checks ask an empty test DNS server.
	srv := dnstest.Start(t)
	cfg := filepath.Join(tmp, "mw.toml")
	os.WriteFile(cfg, []byte("[dns]\nservers = [\""+srv.Addr+"\"]\n[store]\nbackend = \"bolt\"\npath = \""+filepath.Join(tmp, "state.db")+"\"\n[spam.bayes]\nmin_spam = 200\nmin_ham = 200\n"), 0o644)

	out, code := runMW(t, 2*time.Minute, "learn", "-config", cfg, "--spam", spamDir, "--ham", hamDir)
	if code != 0 || !strings.Contains(out, "learned 500 messages (0 unchanged") || !strings.Contains(out, "250 spam and 250 ham") {
		t.Fatalf("learn: exit %d: %s", code, out)
	}
	out, code = runMW(t, 2*time.Minute, "learn", "-config", cfg, "--spam", spamDir)
	if code != 0 || !strings.Contains(out, "learned 0 messages (250 unchanged") {
		t.Fatalf("relearn: exit %d: %s", code, out)
	}

	out, _ = runMW(t, time.Minute, "check", "-config", cfg, "--client-ip", "192.0.2.1", "--explain", "--json", probe)
	var v struct {
		Score   float64 `json:"score"`
		Details map[string]struct {
			Status  string `json:"status"`
			Detail  string `json:"detail"`
			Signals []struct {
				Name  string  `json:"name"`
				Score float64 `json:"score"`
			} `json:"signals"`
		} `json:"details"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	sp, ok := v.Details["spam"]
	if !ok {
		t.Fatalf("no spam check in %s", out)
	}
	bayes := ""
	for _, s := range sp.Signals {
		if strings.HasPrefix(s.Name, "bayes-") {
			bayes = s.Name
		}
	}
	if bayes == "" || !strings.Contains(sp.Detail, "bayes p=") {
		t.Errorf("no Bayes signal after learning: %+v", sp)
	}
	t.Logf("probe %s: score %.1f, %s, %s", filepath.Base(probe), v.Score, bayes, sp.Detail)

	out, code = runMW(t, 2*time.Minute, "learn", "-config", cfg, "--forget", "--spam", spamDir)
	if code != 0 || !strings.Contains(out, "forgot 250 messages") || !strings.Contains(out, "0 spam and 250 ham") {
		t.Fatalf("forget: exit %d: %s", code, out)
	}
	out, _ = runMW(t, time.Minute, "check", "-config", cfg, "--client-ip", "192.0.2.1", "--json", probe)
	if !strings.Contains(out, "bayes not ready (0 spam, 250 ham learned)") {
		t.Errorf("after forget: %s", out)
	}
}

// TestSpamDNSBL runs check with a DNS list served by a test DNS server
// through the shared [dns] resolver.
func TestSpamDNSBL(t *testing.T) {
	srv := dnstest.Start(t, "7.2.0.192.zen.test. A 127.0.0.2", "evil.example.dbl.test. A 127.0.1.2")
	tmp := t.TempDir()
	msg := filepath.Join(tmp, "m.eml")
	os.WriteFile(msg, []byte("From: a@example.com\nTo: b@example.org\nSubject: hi\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <x@example.com>\n\nsee http://www.evil.example/offer\n"), 0o644)
	cfg := filepath.Join(tmp, "mw.toml")
	os.WriteFile(cfg, []byte(`[dns]
servers = ["`+srv.Addr+`"]
[store]
backend = "memory"
[spam.rules]
# The lists alone decide here: the SpamAssassin rules would add their own
# (RDNS_NONE, RCVD_ILLEGAL_IP for the TEST-NET client).
enabled = false
[[spam.dnsbl]]
zone = "zen.test"
weight = 6.0
[[spam.uribl]]
zone = "dbl.test"
weight = 5.0
`), 0o644)
	out, code := runMW(t, time.Minute, "check", "-config", cfg, "--client-ip", "192.0.2.7", "--explain", msg)
	if code != 2 || !strings.Contains(out, "dnsbl-zen.test") || !strings.Contains(out, "uribl-dbl.test") || !strings.Contains(out, "spam-score") {
		t.Errorf("listed client and URL: exit %d\n%s", code, out)
	}
	out, code = runMW(t, time.Minute, "check", "-config", cfg, "--client-ip", "192.0.2.8", "--explain", msg)
	if code != 0 || strings.Contains(out, "dnsbl-zen.test") || !strings.Contains(out, "uribl-dbl.test") {
		t.Errorf("unlisted client: exit %d\n%s", code, out)
	}
}

// TestSpamSARules runs the Debian SpamAssassin rules through the real
// binary (issue 13): `mailwarden rules` describes them, and check
// --explain shows their hits as sa-RULE signals.
func TestSpamSARules(t *testing.T) {
	if _, err := os.Stat("/usr/share/spamassassin/72_active.cf"); err != nil {
		harness.Unavailable(t, "Debian spamassassin rules: %v", err)
	}
	dir := spamCorpus(t)
	srv := dnstest.Start(t)
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "mw.toml")
	os.WriteFile(cfg, []byte("[dns]\nservers = [\""+srv.Addr+"\"]\n[store]\nbackend = \"memory\"\n[spam.bayes]\nenabled = false\n[spam.rules]\nenabled = true\n"), 0o644)

	out, code := runMW(t, 2*time.Minute, "rules", "-config", cfg)
	if code != 0 || !strings.Contains(out, "/usr/share/spamassassin/72_active.cf") || !strings.Contains(out, "eval functions not implemented") {
		t.Fatalf("rules: exit %d: %s", code, out)
	}

	// A spam of the corpus with an HTML body and a free mail sender.
	probe := filepath.Join(dir, "spam", "00001.7848dde101aa985090474a91ec93fcf0.eml")
	out, _ = runMW(t, 2*time.Minute, "check", "-config", cfg, "--client-ip", "192.0.2.1", "--explain", "--json", probe)
	var v struct {
		Details map[string]struct {
			Signals []struct {
				Name  string  `json:"name"`
				Score float64 `json:"score"`
			} `json:"signals"`
		} `json:"details"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var sa []string
	for _, s := range v.Details["spam"].Signals {
		if strings.HasPrefix(s.Name, "sa-") {
			sa = append(sa, s.Name)
		}
	}
	if len(sa) < 3 || !strings.Contains(strings.Join(sa, ","), "sa-SPOOFED_FREEMAIL") {
		t.Errorf("sa signals %v in %s", sa, out)
	}
	t.Logf("sa signals: %v", sa)
}

// TestSpamRulesDaemon: a daemon with the default [spam.rules] (on) and the
// Debian rules installed says so at start, in status and in a check it
// answers itself (the compiled rules are shared across those dry runs),
// and scores with the built-in weights fitted with the rules.
func TestSpamRulesDaemon(t *testing.T) {
	if _, err := os.Stat("/usr/share/spamassassin/72_active.cf"); err != nil {
		harness.Unavailable(t, "Debian spamassassin rules: %v", err)
	}
	dir := spamCorpus(t)
	d := harness.StartMailwarden(t, "[store]\nbackend = \"memory\"\n[spam.rules]\nenabled = true\n")
	started := d.WaitLog(t, harness.MsgIs("mailwarden started"), 10*time.Second)
	if setup := fmt.Sprint(started["setup"]); !strings.Contains(setup, "SpamAssassin rules on") || !strings.Contains(setup, "fitted with the rules") {
		t.Errorf("start-up line setup = %q", setup)
	}
	out, code := runMW(t, time.Minute, "status", "-config", d.ConfigPath)
	if code != 0 || !strings.Contains(out, "spam: SpamAssassin rules on (") {
		t.Errorf("status: exit %d:\n%s", code, out)
	}
	probe := filepath.Join(dir, "spam", "00001.7848dde101aa985090474a91ec93fcf0.eml")
	for i := range 2 {
		start := time.Now()
		out, _ = runMW(t, 2*time.Minute, "check", "-config", d.ConfigPath, "--client-ip", "192.0.2.1", "--explain", probe)
		if !strings.Contains(out, "the running daemon") || !strings.Contains(out, "setup:        spam: SpamAssassin rules on") || strings.Count(out, " sa-") < 3 {
			t.Fatalf("check %d through the daemon:\n%s", i, out)
		}
		t.Logf("check %d: %v", i, time.Since(start))
	}
}
