package fit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/corpus"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/eval"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
)

// HeldOutCutoff splits the shared corpus by time for the built-in
// weights: they were fitted on the messages received before it (learn
// --fit --before), and are measured here on the others.
var HeldOutCutoff = time.Date(2002, 9, 1, 0, 0, 0, 0, time.UTC)

func sharedCorpus(t *testing.T) []*eval.Msg {
	t.Helper()
	if testing.Short() {
		t.Skip("reads the shared corpus")
	}
	dir := os.Getenv("MAILWARDEN_CORPUS")
	if dir == "" {
		dir = "../../../../../shared/corpus/spamassassin"
	}
	var msgs []*eval.Msg
	for _, c := range []struct {
		sub  string
		spam bool
	}{{"ham", false}, {"spam", true}} {
		files, err := corpus.Files(filepath.Join(dir, c.sub))
		if err != nil {
			t.Skipf("no corpus: %v", err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, raw := range corpus.Split(data) {
				msgs = append(msgs, &eval.Msg{Path: fmt.Sprintf("%s#%d", f, i), Raw: raw, Spam: c.spam})
			}
		}
	}
	return msgs
}

// TestHeldOut reproduces the README's held-out figures of the built-in
// weights: Bayes trained on the fit part (received before 2002-09-01),
// the part received later scored with the built-in weights at
// score.quarantine = 10; and without Bayes (a fresh install) on 300 ham
// and 300 spam of the later part. spam.Default() runs the SpamAssassin
// rules the machine has (the Debian set here), so these are the built-in
// weights fitted with the rules. The bounds are the figures measured when
// the weights were committed (with Bayes FP 0.28 %, recall 88.71 %, AUC
// 0.9944; without, FP 0 %, recall 67.00 %, 67.67 % through eval), rounded
// the unfavourable way (the recall without Bayes half a spam below, so that
// the bound is not the measured figure itself);
// nothing was tuned on this part.
func TestHeldOut(t *testing.T) {
	msgs := sharedCorpus(t)
	eval.SplitByDate(msgs, HeldOutCutoff, corpus.Received)
	parse := func(raw []byte) (*spamMsg, error) { return corpus.Parse(raw, 1000) }
	ctx := context.Background()
	mem := bayes.NewMemory()
	sec := spam.Default()
	ignore := spam.NewHeaderSet(sec.IgnoreHeaders...)
	for _, m := range msgs {
		if m.Fold != 1 {
			continue
		}
		pm, err := parse(m.Raw)
		if err != nil {
			continue
		}
		cl := bayes.ClassHam
		if m.Spam {
			cl = bayes.ClassSpam
		}
		bayes.Learn(ctx, mem, m.Path, spam.Tokens(pm, ignore), cl, false)
	}
	score := func(sec *spam.Config, test []*eval.Msg) eval.FoldStats {
		chk, err := spam.New(sec, nil, spam.Options{Tokens: mem})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range test {
			pm, err := parse(m.Raw)
			if err != nil {
				m.Score = 0
				continue
			}
			r, err := chk.Check(ctx, pm, nil)
			if err != nil {
				t.Fatal(err)
			}
			m.Score = r.Score
		}
		return eval.Stats("held-out", test, 10)
	}
	var test []*eval.Msg
	for _, m := range msgs {
		if m.Fold == 0 {
			test = append(test, m)
		}
	}
	st := score(spam.Default(), test)
	t.Logf("with Bayes, %d ham + %d spam: FP %d (%.2f %%), recall %.2f %%, AUC %.4f", st.Ham, st.Spam, st.FP, 100*st.FPRate, 100*st.Recall, st.AUC)
	if st.Ham < 2000 || st.Spam < 300 {
		t.Fatalf("the split changed: %d ham, %d spam", st.Ham, st.Spam)
	}
	if st.FPRate > heldOutMax.fp || st.Recall < heldOutMin.recall || st.AUC < heldOutMin.auc {
		t.Errorf("held-out with Bayes: FP %.2f %% (max %.2f), recall %.2f %% (min %.2f), AUC %.4f (min %.4f)",
			100*st.FPRate, 100*heldOutMax.fp, 100*st.Recall, 100*heldOutMin.recall, st.AUC, heldOutMin.auc)
	}

	eval.SampleTest(msgs, 0, 300)
	test = test[:0]
	for _, m := range msgs {
		if m.Test {
			test = append(test, m)
		}
	}
	nb := spam.Default()
	nb.Bayes.Enabled = false
	st = score(nb, test)
	t.Logf("without Bayes, %d ham + %d spam: FP %d (%.2f %%), recall %.2f %%, AUC %.4f", st.Ham, st.Spam, st.FP, 100*st.FPRate, 100*st.Recall, st.AUC)
	if st.FPRate > noBayesMax.fp || st.Recall < noBayesMin.recall {
		t.Errorf("held-out without Bayes: FP %.2f %% (max %.2f), recall %.2f %% (min %.2f)",
			100*st.FPRate, 100*noBayesMax.fp, 100*st.Recall, 100*noBayesMin.recall)
	}
}

type spamMsg = message.Message

type figures struct{ fp, recall, auc float64 }

// Measured when the built-in weights were committed (see TestHeldOut).
var (
	heldOutMax = figures{fp: 0.005}
	heldOutMin = figures{recall: 0.87, auc: 0.993}
	noBayesMax = figures{fp: 0.01}
	noBayesMin = figures{recall: 0.665}
)
