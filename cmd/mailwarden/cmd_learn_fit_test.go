package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy/spam"
)

// synthCorpus writes n ham (plain text about lunch) and n spam (HTML-only,
// no Date, shouting subjects about money) under dir/ham and dir/spam.
func synthCorpus(t *testing.T, dir string, n, offset int) {
	t.Helper()
	for _, c := range []string{"ham", "spam"} {
		os.MkdirAll(filepath.Join(dir, c), 0o755)
	}
	for i := range n {
		k := i + offset
		ham := fmt.Sprintf("Date: Mon, 2 Sep 2002 10:%02d:00 +0000\nMessage-ID: <h%d@example.com>\nFrom: Alice <alice@example.com>\nTo: bob@example.org\nSubject: lunch %d\n\nShall we meet for lunch at noon, table %d?\n", k%60, k, k, k)
		sp := fmt.Sprintf("From: winner@example.net\nTo: bob@example.org\nSubject: FREE MONEY NOW %d!!!\nMIME-Version: 1.0\nContent-Type: text/html\n\n<html><body><p>Claim your prize money %d now</p></body></html>\n", k, k)
		os.WriteFile(filepath.Join(dir, "ham", fmt.Sprintf("h%03d.eml", k)), []byte(ham), 0o644)
		os.WriteFile(filepath.Join(dir, "spam", fmt.Sprintf("s%03d.eml", k)), []byte(sp), 0o644)
	}
}

func TestLearnFitAndEvalTrainTest(t *testing.T) {
	tmp := t.TempDir()
	train, test := filepath.Join(tmp, "train"), filepath.Join(tmp, "test")
	synthCorpus(t, train, 40, 0)
	synthCorpus(t, test, 15, 100)
	cfg := filepath.Join(tmp, "mw.toml")
	os.WriteFile(cfg, []byte("[spam.bayes]\nmin_spam = 5\nmin_ham = 5\n"), 0o644)
	out := filepath.Join(tmp, "weights.toml")

	var so, se strings.Builder
	code := runLearn([]string{"--fit", "-config", cfg, "--ham", filepath.Join(train, "ham"), "--spam", filepath.Join(train, "spam"), "--out", out, "--folds", "4"}, &so, &se)
	if code != 0 {
		t.Fatalf("learn --fit: exit %d: %s", code, se.String())
	}
	if !strings.Contains(se.String(), "4-fold cross-validation") || !strings.Contains(se.String(), "recall 100.00 %") {
		t.Errorf("learn --fit report: %s", se.String())
	}
	w, err := spam.LoadWeights(out, false)
	if err != nil {
		t.Fatal(err)
	}
	if w.Fit.Ham != 40 || w.Fit.Spam != 40 || w.NoBayes.Signals["html-only"] <= 0 || w.Bayes.BayesLogit <= 0 {
		t.Errorf("weights: %+v", w)
	}

	for _, extra := range [][]string{nil, {"--no-bayes"}} {
		so.Reset()
		se.Reset()
		args := append([]string{"-config", cfg, "--train", train, "--test", test, "--weights", out, "--json"}, extra...)
		if code := runEval(args, &so, &se); code != 0 {
			t.Fatalf("eval %v: exit %d: %s", extra, code, se.String())
		}
		var r struct {
			Ham    int     `json:"ham"`
			Spam   int     `json:"spam"`
			FPRate float64 `json:"fp_rate"`
			Recall float64 `json:"recall"`
		}
		if err := json.Unmarshal([]byte(so.String()), &r); err != nil {
			t.Fatalf("%v: %s", err, so.String())
		}
		if r.Ham != 15 || r.Spam != 15 {
			t.Errorf("eval %v scored %d ham, %d spam, want the 15 + 15 of the test set", extra, r.Ham, r.Spam)
		}
		if r.Recall < 1 || r.FPRate > 0 {
			t.Errorf("eval %v: %s", extra, so.String())
		}
	}
	// The split is what --print-folds says: the test set is fold 0.
	so.Reset()
	runEval([]string{"-config", cfg, "--train", train, "--test", test, "--print-folds"}, &so, &se)
	for _, l := range strings.Split(strings.TrimSpace(so.String()), "\n") {
		f := strings.Split(l, "\t")
		if (f[0] == "0") != strings.HasPrefix(f[3], test) || (f[2] == "1") != (f[0] == "0") {
			t.Errorf("fold line %q", l)
		}
	}
	if code := runEval([]string{"--train", train}, &so, &se); code != 2 {
		t.Errorf("--train without --test: exit %d", code)
	}
}

// --select-ham/--select-spam: the settings are chosen on mail the fit
// never sees, every combination is reported, and the fit itself stays on
// the --ham/--spam messages only.
func TestLearnFitSelect(t *testing.T) {
	tmp := t.TempDir()
	train, val := filepath.Join(tmp, "train"), filepath.Join(tmp, "val")
	synthCorpus(t, train, 40, 0)
	synthCorpus(t, val, 15, 100)
	cfg := filepath.Join(tmp, "mw.toml")
	os.WriteFile(cfg, []byte("[spam.bayes]\nmin_spam = 5\nmin_ham = 5\n"), 0o644)
	out := filepath.Join(tmp, "weights.toml")
	var so, se strings.Builder
	code := runLearn([]string{"--fit", "-config", cfg, "--ham", filepath.Join(train, "ham"), "--spam", filepath.Join(train, "spam"),
		"--select-ham", filepath.Join(val, "ham"), "--select-spam", filepath.Join(val, "spam"), "--out", out, "--folds", "4"}, &so, &se)
	if code != 0 {
		t.Fatalf("learn --fit --select: exit %d: %s", code, se.String())
	}
	report := se.String()
	if !strings.Contains(report, "choosing on 30 messages not fitted on") || !strings.Contains(report, "chosen: --rule-strength") {
		t.Errorf("report: %s", report)
	}
	if rows := strings.Count(report, "%"); rows < 3*4*5*2 {
		t.Errorf("want a line per combination (60), report:\n%s", report)
	}
	w, err := spam.LoadWeights(out, false)
	if err != nil {
		t.Fatal(err)
	}
	if w.Fit.Ham != 40 || w.Fit.Spam != 40 {
		t.Errorf("the fit saw %d ham, %d spam: the selection set leaked into it", w.Fit.Ham, w.Fit.Spam)
	}
}
