package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheckEveryError (issue 17.5): `config check` prints every
// error of the file at once, in line order, as FILE:LINE: KEY: message,
// without internal prefixes, and a count.
func TestConfigCheckEveryError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.toml")
	text := "mode = \"enforse\"\n[listen]\naddress = \"inet:127.0.0.1:1\"\nbogus = 1\n[virus]\non_error = \"maybe\"\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"config", "check", p}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	want := []string{
		p + ":1: mode: unknown mode \"enforse\" (want enforce, monitor, tempfail-all or accept-all)",
		p + ":4: listen.bogus: unknown key",
		p + ":6: virus.on_error: unknown action \"maybe\" (want accept, quarantine",
		p + ": 3 errors",
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", stderr.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want %q...", i+1, lines[i], w)
		}
	}
	if strings.Contains(stderr.String(), "policy:") || strings.Contains(stderr.String(), "config: ") {
		t.Errorf("internal prefixes in:\n%s", stderr.String())
	}
}
