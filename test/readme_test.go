package e2e_test

// The README's instructions, applied as a reader would, give a config
// that the binary accepts (issue 17.9).

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/test/harness"
)

// readmeBlock returns the indented lines of the first code block after
// the paragraph that contains anchor.
func readmeBlock(t *testing.T, readme, anchor string) []string {
	t.Helper()
	i := strings.Index(readme, anchor)
	if i < 0 {
		t.Fatalf("README has no %q", anchor)
	}
	var block []string
	started := false
	for _, l := range strings.Split(readme[i:], "\n")[1:] {
		if strings.HasPrefix(l, "    ") {
			started = true
			block = append(block, strings.TrimSpace(l))
		} else if started {
			break
		}
	}
	return block
}

// keyValue is "key = value" of a TOML line, without its comment.
func keyValue(l string) string {
	if i := strings.Index(l, " #"); i >= 0 {
		l = l[:i]
	}
	return strings.TrimSpace(l)
}

// TestREADMEClamAVSetup: the ClamAV production setup is an edit of the
// generated config (change [virus] enabled, uncomment [[clamav.server]]),
// and the result passes `config check`.
func TestREADMEClamAVSetup(t *testing.T) {
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	bin := harness.Mailwarden(t)
	out, err := exec.Command(bin, "config", "default").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(out), "\n")

	enable := readmeBlock(t, readme, "In `[virus]`, change one line:")
	if len(enable) != 1 || keyValue(enable[0]) != "enabled = true" {
		t.Fatalf("README's [virus] edit: %q", enable)
	}
	section, changed := "", false
	for i, l := range lines {
		if strings.HasPrefix(l, "[") {
			section = strings.TrimSpace(l)
		}
		if section == "[virus]" && keyValue(l) == "enabled = false" {
			lines[i], changed = enable[0], true
			break
		}
	}
	if !changed {
		t.Fatal("the default config has no [virus] enabled = false to change")
	}
	server := readmeBlock(t, readme, "uncomment the `[[clamav.server]]` block")
	if len(server) < 2 {
		t.Fatalf("README's [[clamav.server]] block: %q", server)
	}
	// The block as the config has it, commented: from its first line on.
	from := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == "# "+server[0] {
			from = i
			break
		}
	}
	if from < 0 {
		t.Fatalf("the default config has no commented %q", server[0])
	}
	for _, want := range server {
		found := false
		for i := from; i < len(lines); i++ {
			l := lines[i]
			if c, ok := strings.CutPrefix(l, "# "); ok && keyValue(c) == keyValue(want) {
				lines[i], found = c, true
				break
			}
		}
		if !found {
			t.Errorf("README line %q is not a commented line of the default config", want)
		}
	}
	path := filepath.Join(t.TempDir(), "mailwarden.toml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "config", "check", path).CombinedOutput(); err != nil {
		t.Errorf("config check of the README's ClamAV setup: %v\n%s", err, out)
	}
}
