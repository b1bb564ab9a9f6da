package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The package's tests never read the machine's /etc/mailwarden: a test
// that wants a default config file sets defaultConfigPath itself.
func init() { defaultConfigPath = "/nonexistent/mailwarden-test/mailwarden.toml" }

const adminMsg = "From: a@example.org\r\nTo: b@example.net\r\nSubject: hello\r\nMessage-ID: <1@example.org>\r\n\r\nhello there\r\n"

// TestCheckDefaultConfig (issue 17.3): without -config, check uses
// defaultConfigPath when it exists, and says which config is in force and
// that this process answered (no daemon).
func TestCheckDefaultConfig(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "mailwarden.toml")
	os.WriteFile(cfgFile, []byte("mode = \"monitor\"\n[control]\nsocket = \""+filepath.Join(dir, "none.sock")+"\"\n[store]\nbackend = \"memory\"\n[virus]\nenabled = false\n"), 0o644)
	msg := filepath.Join(dir, "m.eml")
	os.WriteFile(msg, []byte(adminMsg), 0o644)
	saved := defaultConfigPath
	defer func() { defaultConfigPath = saved }()

	defaultConfigPath = cfgFile
	var out, errb bytes.Buffer
	run([]string{"check", msg}, &out, &errb)
	if !strings.Contains(out.String(), "config:") {
		t.Fatalf("no config line:\n%s%s", out.String(), errb.String())
	}
	for _, want := range []string{cfgFile, "answered by:", "this process", "no daemon answers on " + filepath.Join(dir, "none.sock")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s%s", want, out.String(), errb.String())
		}
	}
	out.Reset()
	run([]string{"check", "--json", msg}, &out, &errb)
	if !strings.Contains(out.String(), `"config": "`+cfgFile+`"`) || !strings.Contains(out.String(), `"via": "offline"`) {
		t.Errorf("check --json lacks config or via:\n%s", out.String())
	}

	// Absent: the built-in default, said so.
	defaultConfigPath = filepath.Join(dir, "absent.toml")
	out.Reset()
	run([]string{"check", msg}, &out, &errb)
	if !strings.Contains(out.String(), "(built-in default)") {
		t.Errorf("check without a config file:\n%s", out.String())
	}
}

// TestLearnNothingIsAnError (issue 17.4): an empty directory, a missing
// one, or files that hold no readable message exit 1 with a reason.
func TestLearnNothingIsAnError(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.toml")
	os.WriteFile(cfgFile, []byte("[control]\nsocket = \"\"\n[store]\nbackend = \"bolt\"\npath = \""+filepath.Join(dir, "state.db")+"\"\n"), 0o644)
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	for _, args := range [][]string{
		{"--spam", empty},
		{"--spam", filepath.Join(dir, "missing")},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"learn", "-config", cfgFile}, args...), &out, &errb); code != 1 {
			t.Errorf("learn %v: exit %d, want 1; %s%s", args, code, out.String(), errb.String())
		}
		if errb.Len() == 0 {
			t.Errorf("learn %v: no reason given", args)
		}
	}
	// A symlinked directory of messages is learned.
	real := filepath.Join(dir, "real")
	os.Mkdir(real, 0o755)
	os.WriteFile(filepath.Join(real, "1.eml"), []byte(adminMsg), 0o644)
	os.Symlink(real, filepath.Join(empty, "linked"))
	var out, errb bytes.Buffer
	if code := run([]string{"learn", "-config", cfgFile, "--spam", empty}, &out, &errb); code != 0 || !strings.Contains(out.String(), "learned 1 messages") || !strings.Contains(out.String(), "offline") {
		t.Errorf("learn through a symlink: exit %d: %s%s", code, out.String(), errb.String())
	}
}
