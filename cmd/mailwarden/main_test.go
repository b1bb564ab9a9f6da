package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/examples"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// The embedded default config (examples/mailwarden.toml, which every
// engineer appends to) must load with every module: this keeps the
// documented file honest.
func TestDefaultConfigLoads(t *testing.T) {
	cfg, err := policy.Load("examples/mailwarden.toml", examples.DefaultConfig, sections())
	if err != nil {
		t.Fatalf("examples/mailwarden.toml does not load:\n%v", err)
	}
	for _, m := range sections() {
		if _, ok := cfg.Sections[m.Name]; !ok {
			t.Errorf("module %q has no decoded section", m.Name)
		}
	}
	if c, err := loadConfig(""); err != nil || c.Mode != policy.ModeEnforce {
		t.Errorf("loadConfig(\"\"): %v %v", c, err)
	}
	onDisk, err := os.ReadFile(filepath.Join("..", "..", "examples", "mailwarden.toml"))
	if err != nil || !bytes.Equal(onDisk, examples.DefaultConfig) {
		t.Errorf("the embedded default differs from examples/mailwarden.toml (%v)", err)
	}
	// Every module section is documented in the example file.
	for _, m := range sections() {
		if !bytes.Contains(examples.DefaultConfig, []byte("["+m.Name+"]")) && !bytes.Contains(examples.DefaultConfig, []byte("[["+m.Name+"]]")) &&
			!bytes.Contains(examples.DefaultConfig, []byte("# ["+m.Name+"]")) {
			t.Errorf("examples/mailwarden.toml has no [%s] section", m.Name)
		}
	}
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestMainUsage(t *testing.T) {
	if code, _, stderr := runCmd(); code != 2 || !strings.Contains(stderr, "usage: mailwarden COMMAND") {
		t.Errorf("no args: %d %q", code, stderr)
	}
	code, _, stderr := runCmd("help")
	if code != 0 {
		t.Errorf("help: %d", code)
	}
	for _, c := range []string{"serve", "check", "config", "version"} {
		if !strings.Contains(stderr, "  "+c) {
			t.Errorf("usage lacks %q:\n%s", c, stderr)
		}
	}
	if code, _, stderr := runCmd("frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, stderr)
	}
	if code, stdout, _ := runCmd("version"); code != 0 || !strings.HasPrefix(stdout, "mailwarden ") {
		t.Errorf("version: %d %q", code, stdout)
	}
}

func TestConfigDefault(t *testing.T) {
	code, stdout, _ := runCmd("config", "default")
	if code != 0 || stdout != string(examples.DefaultConfig) {
		t.Errorf("config default: exit %d, %d bytes (want the example file, %d bytes)", code, len(stdout), len(examples.DefaultConfig))
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.toml", "mode = \"monitor\"\n[lists]\ndeny_ips = [\"192.0.2.0/24\"]\n")
	if code, stdout, stderr := runCmd("config", "check", good); code != 0 || stdout != good+": ok\n" || stderr != "" {
		t.Errorf("good file: %d %q %q", code, stdout, stderr)
	}
	def := write("default.toml", string(examples.DefaultConfig))
	if code, _, stderr := runCmd("config", "check", def); code != 0 {
		t.Errorf("the default file: %d %s", code, stderr)
	}
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"typo.toml", "mode = \"enforce\"\n\n[lists]\ndeny_sender = [\"x@y.test\"]\n", []string{"typo.toml:4: lists.deny_sender: unknown key"}},
		{"module.toml", "[store]\nbackend = \"bolt\"\nbakend = \"redis\"\n", []string{"module.toml:3: store.bakend: unknown key"}},
		{"two.toml", "mdoe = 1\n[log]\nlevel = \"loud\"\n", []string{"two.toml:1: mdoe: unknown key", "two.toml:3: log.level:"}},
		{"syntax.toml", "mode = \"enforce\n", []string{"syntax.toml:1:"}},
		{"type.toml", "[message]\nmax_headers = \"lots\"\n", []string{"type.toml:2: message.max_headers:"}},
		{"rule.toml", "[[rule]]\nname = \"x\"\nbody = true\npattern = \"(\"\nscore = 1\n", []string{"rule.toml:4: rule[1].pattern: bad regular expression"}},
		{"engines.toml", "[[virus.engine]]\ntype = \"icap\"\naddresses = [\"icap://h/avscan\"]\n[[clamav.server]]\nname = \"old\"\n", []string{"both [[clamav.server]] and [[virus.engine]]", `type = "clamd"`}},
		{"min.toml", "[virus]\nrequire = \"any\"\nmin_engines = 2\n", []string{"min_engines = 2, but 1 engines"}},
	} {
		p := write(tc.name, tc.text)
		code, stdout, stderr := runCmd("config", "check", p)
		if code != 1 || stdout != "" {
			t.Errorf("%s: exit %d, stdout %q", tc.name, code, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, w, stderr)
			}
		}
	}
	if code, _, stderr := runCmd("config", "check", filepath.Join(dir, "missing.toml")); code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: %d %q", code, stderr)
	}
	for _, args := range [][]string{{"config"}, {"config", "check"}, {"config", "check", "a", "b"}, {"config", "frob"}} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage)", args, code)
		}
	}
}

// offlineConfig is the golden config with every module that would touch
// the network or the disk switched off, so that `check` decides on the
// lists and rules alone. top goes at the start (top-level keys).
func offlineConfig(t *testing.T, top string) string {
	t.Helper()
	base, err := os.ReadFile(filepath.Join("..", "..", "policy", "testdata", "golden", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	text := top + string(base) + `
[[rule]]
name = "drop"
header = "X-Drop"
pattern = "yes"
action = "discard"

[store]
backend = "memory"
[auth.spf]
enabled = false
[auth.dkim]
enabled = false
[auth.dmarc]
enabled = false
[spam]
enabled = false
[autoreply]
enabled = false
[srs]
enabled = false
[spool]
enabled = false
[health]
enabled = false
[control]
socket = ""
`
	p := filepath.Join(t.TempDir(), "offline.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd("config", "check", p); code != 0 {
		t.Fatalf("offline test config does not load: %s", stderr)
	}
	return p
}

func golden(name string) string {
	return filepath.Join("..", "..", "policy", "testdata", "golden", name)
}

func TestCheckJSON(t *testing.T) {
	cfg := offlineConfig(t, "")
	dropMsg := filepath.Join(t.TempDir(), "drop.eml")
	os.WriteFile(dropMsg, []byte("From: a@sender.test\nTo: bob@example.org\nX-Drop: yes\nSubject: x\n\nbody\n"), 0o644)
	for _, tc := range []struct {
		eml     string
		args    []string
		action  string
		code    int
		reasons []string
	}{
		{golden("01-clean.eml"), []string{"--client-ip", "198.51.100.10", "--helo", "mail.sender.test"}, "accept", 0, nil},
		{golden("05-quarantine-rule.eml"), []string{"--client-ip", "198.51.100.13"}, "quarantine", 2, []string{"rule-invoice-zip"}},
		{golden("06-tempfail-rule.eml"), []string{"--client-ip", "198.51.100.14"}, "tempfail", 3, []string{"rule-maintenance"}},
		{dropMsg, []string{"--client-ip", "198.51.100.14"}, "discard", 4, []string{"rule-drop"}},
		{golden("10-base64-body-rule.eml"), []string{"--client-ip", "198.51.100.18", "--from", "ceo@sender.test", "--rcpt", "finance@example.org"}, "reject", 5, []string{"rule-wire-fraud"}},
		{golden("03-deny-sender.eml"), []string{"--client-ip", "198.51.100.12", "--from", "<offers@spammer.test>"}, "reject", 5, []string{"denylist-sender"}},
		{golden("08-postmaster-protected.eml"), []string{"--client-ip", "198.51.100.16", "--rcpt", "postmaster@example.org"}, "accept", 0, []string{"rule-wire-fraud", "protected-rcpt"}},
	} {
		args := append([]string{"check", "-config", cfg, "--json"}, tc.args...)
		args = append(args, tc.eml)
		code, stdout, stderr := runCmd(args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (%s)\n%s", tc.eml, code, tc.code, stderr, stdout)
			continue
		}
		var out map[string]any
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", tc.eml, err, stdout)
		}
		for _, k := range []string{"action", "score", "reasons", "headers", "checks", "details"} {
			if _, ok := out[k]; !ok {
				t.Errorf("%s: JSON lacks %q", tc.eml, k)
			}
		}
		if out["action"] != tc.action {
			t.Errorf("%s: action %v, want %s", tc.eml, out["action"], tc.action)
		}
		var reasons []string
		for _, r := range out["reasons"].([]any) {
			reasons = append(reasons, r.(string))
		}
		for _, r := range tc.reasons {
			if !strings.Contains(strings.Join(reasons, ","), r) {
				t.Errorf("%s: reasons %q lack %q", tc.eml, reasons, r)
			}
		}
		checks := out["checks"].(map[string]any)
		if checks["lists"] == nil || checks["rules"] == nil {
			t.Errorf("%s: checks %v", tc.eml, checks)
		}
		hs := out["headers"].([]any)
		if len(hs) == 0 || hs[0].(map[string]any)["name"] != "Authentication-Results" {
			t.Errorf("%s: headers %v", tc.eml, hs)
		}
	}
}

func TestCheckEnvelopeDefaults(t *testing.T) {
	cfg := offlineConfig(t, "")
	// Without --from and --rcpt the envelope comes from From:, To: and Cc:.
	code, stdout, stderr := runCmd("check", "-config", cfg, "--json", golden("03-deny-sender.eml"))
	if code != 5 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Envelope struct {
			From  string   `json:"from"`
			Rcpts []string `json:"rcpts"`
		} `json:"envelope"`
	}
	json.Unmarshal([]byte(stdout), &out)
	if out.Envelope.From != "offers@spammer.test" || len(out.Envelope.Rcpts) != 1 || out.Envelope.Rcpts[0] != "bob@example.org" {
		t.Errorf("envelope %+v", out.Envelope)
	}
	// Null sender.
	code, stdout, _ = runCmd("check", "-config", cfg, "--json", "--from", "<>", golden("03-deny-sender.eml"))
	json.Unmarshal([]byte(stdout), &out)
	if code != 0 || out.Envelope.From != "" {
		t.Errorf("--from '<>': exit %d, from %q", code, out.Envelope.From)
	}
}

func TestCheckText(t *testing.T) {
	p := offlineConfig(t, "mode = \"monitor\"\n")
	code, stdout, stderr := runCmd("check", "-config", p, "--explain", "--client-ip", "198.51.100.1", golden("12-score-quarantine.eml"))
	if code != 0 {
		t.Fatalf("monitor mode: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"action:", "enforce would quarantine", "score:", "18.00", "reasons:", "spam-score", "checks:", "rules", "rule-lottery", "headers added", "Authentication-Results: mx.golden.test; arc=none", "X-Spam-Flag: YES"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = runCmd("check", "-config", offlineConfig(t, ""), "--client-ip", "198.51.100.1", golden("02-forged-authres.eml"))
	if code != 0 || !strings.Contains(stdout, "headers removed:") || !strings.Contains(stdout, "Authentication-Results #2") {
		t.Errorf("forged A-R: %d\n%s", code, stdout)
	}
}

func TestCheckErrors(t *testing.T) {
	cfg := offlineConfig(t, "")
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("nonsense = 1\n"), 0o644)
	huge := filepath.Join(t.TempDir(), "huge.eml") // a header section above message.MaxHeaderBytes
	os.WriteFile(huge, []byte("Subject: x\n"+strings.Repeat(" folded line of a huge field\n", message.MaxHeaderBytes/28+1)+"\nbody\n"), 0o644)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"check"}, "usage: mailwarden check"},
		{[]string{"check", "-config", cfg, "a.eml", "b.eml"}, "usage"},
		{[]string{"check", "-config", cfg, filepath.Join(t.TempDir(), "missing.eml")}, "no such file"},
		{[]string{"check", "-config", cfg, "--client-ip", "not-an-ip", golden("01-clean.eml")}, "not an IP address"},
		{[]string{"check", "-config", bad, golden("01-clean.eml")}, "bad.toml:1: nonsense: unknown key"},
		{[]string{"check", "-config", cfg, huge}, "header section too large"},
		{[]string{"check", "--no-such-flag", golden("01-clean.eml")}, "not defined"},
	} {
		code, _, stderr := runCmd(tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%q: exit %d, stderr %q (want 1 and %q)", tc.args, code, stderr, tc.msg)
		}
	}
}

// Oversize messages get max_message_size_action offline too.
func TestCheckOversize(t *testing.T) {
	p := offlineConfig(t, "max_message_size = \"1KB\"\n")
	// More fields than max_headers (1000): oversize, as in the daemon.
	many := filepath.Join(t.TempDir(), "many.eml")
	os.WriteFile(many, []byte(strings.Repeat("X-F: v\n", 1001)+"\nbody\n"), 0o644)
	code, stdout, stderr := runCmd("check", "-config", offlineConfig(t, ""), "--json", many)
	if code != 5 || !strings.Contains(stdout, "message-oversize") {
		t.Errorf("1001 fields: exit %d %s %s", code, stdout, stderr)
	}
	msg := filepath.Join(t.TempDir(), "big.eml")
	os.WriteFile(msg, []byte("Subject: big\n\n"+strings.Repeat("x", 4096)+"\n"), 0o644)
	code, stdout, stderr = runCmd("check", "-config", p, "--json", msg)
	if code != 5 || !strings.Contains(stdout, "message-oversize") || !strings.Contains(stdout, "552 5.3.4") {
		t.Errorf("oversize: exit %d %s %s", code, stdout, stderr)
	}
}

// The benchmark config stays valid (test/bench/miltbench.sh runs on it).
func TestBenchConfigLoads(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "test", "bench", "core.toml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "@SOCK@", "/tmp/x.sock")
	if _, err := policy.Load("core.toml", []byte(text), sections()); err != nil {
		t.Fatal(err)
	}
}
