package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rulesSetup writes the rule file cf and a config that runs it (Bayes
// off) into a temp dir, and returns the dir and the config's path.
func rulesSetup(t *testing.T, cf string) (dir, cfg string) {
	dir = t.TempDir()
	rules := filepath.Join(dir, "rules")
	os.Mkdir(rules, 0o755)
	os.WriteFile(filepath.Join(rules, "local.cf"), []byte(cf), 0o644)
	cfg = filepath.Join(dir, "mailwarden.toml")
	os.WriteFile(cfg, []byte("[spam.rules]\nenabled = true\npaths = [\""+rules+"\"]\n[spam.bayes]\nenabled = false\n"), 0o644)
	return dir, cfg
}

func TestRulesCommand(t *testing.T) {
	dir, cfg := rulesSetup(t, "body LOCAL_PASSWORD /verify your password/i\nscore LOCAL_PASSWORD 3.5\ndescribe LOCAL_PASSWORD Asks for a password\n"+
		"header LOCAL_UNIMPL eval:no_such_eval()\nscore LOCAL_UNIMPL 2\n")
	msg := filepath.Join(dir, "m.eml")
	os.WriteFile(msg, []byte("From: a@example.com\nSubject: x\n\nPlease verify your password.\n"), 0o644)

	var out, errb bytes.Buffer
	if code := run([]string{"rules", "-config", cfg, "-test", msg}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"[spam.rules] enabled: the daemon runs these rules, combined by the built-in weights fitted with the rules", "rules defined: 2", "no_such_eval", "LOCAL_UNIMPL", "sa-LOCAL_PASSWORD", "Asks for a password", "score 3.50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"check", "-config", cfg, "-explain", msg}, &out, &errb); code > 5 {
		t.Fatalf("check exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "sa-LOCAL_PASSWORD") || !strings.Contains(out.String(), "setup:        spam: SpamAssassin rules on (1 rules); built-in weights fitted with the rules") {
		t.Errorf("check --explain lacks the rule's signal or the setup line:\n%s", out.String())
	}
	if code := run([]string{"rules", "-paths", filepath.Join(dir, "none")}, &out, &errb); code != 1 {
		t.Errorf("missing rules: exit %d", code)
	}
}

// TestRulesTestMany: -test with a directory, or with several files, prints
// one line per message with the rules it hits and nothing else.
func TestRulesTestMany(t *testing.T) {
	dir, cfg := rulesSetup(t, "body LOCAL_PASSWORD /verify your password/i\nscore LOCAL_PASSWORD 3.5\n"+
		"header LOCAL_WIN Subject =~ /winner/i\nscore LOCAL_WIN 1\n")
	msgs := filepath.Join(dir, "msgs")
	os.Mkdir(msgs, 0o755)
	a, b, c := filepath.Join(msgs, "a"), filepath.Join(msgs, "b"), filepath.Join(msgs, "c")
	os.WriteFile(a, []byte("Subject: winner\n\nPlease verify your password.\n"), 0o644)
	os.WriteFile(b, []byte("Subject: hello\n\nNothing here.\n"), 0o644)
	os.WriteFile(c, []byte("Subject: hi\n\nverify your password\n"), 0o644)
	os.Mkdir(filepath.Join(msgs, "sub"), 0o755) // not a message

	want := a + "\tLOCAL_WIN,LOCAL_PASSWORD\n" + b + "\t\n" + c + "\tLOCAL_PASSWORD\n"
	for _, args := range [][]string{{"-test", msgs}, {"-test", a, b, c}} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"rules", "-config", cfg}, args...), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		if got := sortedRules(out.String()); got != sortedRules(want) {
			t.Errorf("%v:\n%s\nwant\n%s", args, out.String(), want)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"rules", "-config", cfg, "-test", a, filepath.Join(dir, "none")}, &out, &errb); code != 1 {
		t.Errorf("missing message: exit %d", code)
	}
}

// sortedRules sorts the rule names of each line: their order is the
// engine's, not part of the format.
func sortedRules(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if p, names, ok := strings.Cut(l, "\t"); ok {
			n := strings.Split(names, ",")
			slices.Sort(n)
			lines[i] = p + "\t" + strings.Join(n, ",")
		}
	}
	return strings.Join(lines, "\n")
}
