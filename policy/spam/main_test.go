package spam

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain stands in a system without SpamAssassin's rule files: the
// tests of the heuristics, Bayes and the weights must not depend on what
// the machine has installed. Tests of the rules name their own files
// (rules_test.go) or stand in a system with them (withSystemRules).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spam-test")
	if err != nil {
		panic(err)
	}
	systemRulePaths = func() []string { return []string{filepath.Join(dir, "share"), filepath.Join(dir, "etc")} }
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
