package main

import (
	"os"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
)

func TestSplitMessages(t *testing.T) {
	mbox := "From a@example.com Mon Nov 23 10:00:00 2026\nSubject: one\n\nbody one\n>From the start\n\n" +
		"From b@example.com Mon Nov 23 10:01:00 2026\nSubject: two\n\nFrom here on, not a separator\n\n" +
		"From c@example.com Mon Nov 23 10:02:00 2026\nSubject: three\n\nthree\n"
	msgs := splitMessages([]byte(mbox))
	if len(msgs) != 3 {
		t.Fatalf("%d messages: %q", len(msgs), msgs)
	}
	if !strings.Contains(string(msgs[0]), "\nFrom the start") || strings.HasPrefix(string(msgs[0]), "From ") {
		t.Errorf("first message %q", msgs[0])
	}
	if !strings.Contains(string(msgs[1]), "From here on") {
		t.Errorf("a body line starting with From split the message: %q", msgs[1])
	}
	eml := "Subject: plain\n\nFrom the body\n"
	if m := splitMessages([]byte(eml)); len(m) != 1 || string(m[0]) != eml {
		t.Errorf(".eml split: %q", m)
	}
	// One corpus-style file: "From " line, then one message.
	one := "From x@y Thu Aug 22 12:36:23 2002\nSubject: s\n\nb\n"
	if m := splitMessages([]byte(one)); len(m) != 1 || !strings.HasPrefix(string(m[0]), "Subject: s") {
		t.Errorf("single mbox entry: %q", m)
	}
}

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

func TestAUC(t *testing.T) {
	if a := auc([]float64{0, 1, 2}, []float64{3, 4}); a != 1 {
		t.Errorf("separated: %v", a)
	}
	if a := auc([]float64{1, 1}, []float64{1, 1}); a != 0.5 {
		t.Errorf("ties: %v", a)
	}
	if a := auc([]float64{5}, []float64{1}); a != 0 {
		t.Errorf("reversed: %v", a)
	}
}

func TestAssignFolds(t *testing.T) {
	var msgs []*evalMsg
	for i := 0; i < 100; i++ {
		msgs = append(msgs, &evalMsg{path: "h" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	for i := 0; i < 30; i++ {
		msgs = append(msgs, &evalMsg{path: "s" + string(rune('a'+i)), spam: true})
	}
	assignFolds(msgs, 5, 0)
	per := map[int][2]int{}
	for _, m := range msgs {
		c := per[m.fold]
		if m.spam {
			c[1]++
		} else {
			c[0]++
		}
		per[m.fold] = c
	}
	for f := 0; f < 5; f++ {
		if per[f] != [2]int{20, 6} {
			t.Errorf("fold %d: %v ham/spam, want stratified 20/6", f, per[f])
		}
	}
	first := msgs[0].fold
	assignFolds(msgs, 5, 13)
	if msgs[0].fold != first {
		t.Error("folds not deterministic")
	}
	n := 0
	for _, m := range msgs {
		if m.fold == 0 && m.test {
			n++
		}
	}
	if n != 13 {
		t.Errorf("test sample of fold 0: %d, want 13", n)
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
