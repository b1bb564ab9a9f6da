package main

import (
	"os"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
)

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	null, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer null.Close()
	if isTerminal(f) || isTerminal(null) || isTerminal(&strings.Builder{}) {
		t.Error("a file, /dev/null or a buffer taken for a terminal")
	}
}

func TestExitCode(t *testing.T) {
	want := map[policy.Action]int{policy.ActionAccept: 0, policy.ActionQuarantine: 2, policy.ActionTempfail: 3, policy.ActionDiscard: 4, policy.ActionReject: 5, policy.Action(42): 1}
	for a, code := range want {
		if got := exitCode(a); got != code {
			t.Errorf("exitCode(%v) = %d, want %d", a, got, code)
		}
	}
}
