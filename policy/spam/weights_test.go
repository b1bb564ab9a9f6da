package spam

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy/spam/bayes"
)

func TestDefaultWeightsParse(t *testing.T) {
	for _, rules := range []bool{false, true} {
		testDefaultWeights(t, rules)
	}
	// The rules-on set weighs rules; the rules-off set none.
	if n := countSA(DefaultWeights(true).Bayes.Signals); n < 50 {
		t.Errorf("rules-on built-in weights carry %d sa- signals", n)
	}
	if n := countSA(DefaultWeights(false).Bayes.Signals); n != 0 {
		t.Errorf("rules-off built-in weights carry %d sa- signals", n)
	}
}

func countSA(m map[string]float64) (n int) {
	for k := range m {
		if strings.HasPrefix(k, "sa-") {
			n++
		}
	}
	return n
}

func testDefaultWeights(t *testing.T, rules bool) {
	w := DefaultWeights(rules)
	if w.Fit.Ham == 0 || w.Fit.Spam == 0 || !strings.Contains(w.Fit.Corpus, "2002-09-01") {
		t.Fatalf("the built-in weights must say what they were fitted on: %+v", w.Fit)
	}
	if w.Bayes.BayesLogit <= 0 {
		t.Errorf("Bayes log-odds weight %v: a spammier Bayes must raise the score", w.Bayes.BayesLogit)
	}
	if w.NoBayes.BayesLogit != 0 {
		t.Errorf("the no-Bayes model has a Bayes weight %v", w.NoBayes.BayesLogit)
	}
	// Every fitted signal is one the check can report.
	known := map[string]bool{}
	for _, h := range Heuristics {
		known[h.Name] = true
	}
	for n := range w.Bayes.Signals {
		if !known[n] && !strings.HasPrefix(n, "sa-") {
			t.Errorf("fitted signal %q is no heuristic", n)
		}
	}
}

func TestParseWeightsErrors(t *testing.T) {
	for _, bad := range []string{"[bayes]\nintercep = 1\n", "[bayes\n", "[bayes.signals]\nx = nan\n"} {
		if _, err := ParseWeights("t", []byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := LoadWeights(filepath.Join(t.TempDir(), "absent.toml"), false); err == nil {
		t.Error("a missing file loads")
	}
	if w, err := LoadWeights(WeightsNone, true); w != nil || err != nil {
		t.Errorf("none: %v %v", w, err)
	}
	cfg := Default()
	cfg.Weights = "/nonexistent/weights.toml"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "weights") {
		t.Errorf("Validate: %v", err)
	}
}

func TestWeightsRoundTrip(t *testing.T) {
	w := &Weights{Fit: FitInfo{Method: "m", Ham: 3, Spam: 4, FPCost: 20},
		Bayes:   Model{Intercept: 1.5, BayesLogit: 0.75, Signals: map[string]float64{"html-only": 2, "sa-FOO": -1.25}},
		NoBayes: Model{Intercept: -1, Signals: map[string]float64{"html-only": 3}}}
	data, err := w.Encode("line one\nline two")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# line one\n# line two\n") {
		t.Errorf("comment: %q", data[:30])
	}
	got, err := ParseWeights("t", data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Bayes.Signals["sa-FOO"] != -1.25 || got.NoBayes.Intercept != -1 || got.Bayes.BayesLogit != 0.75 || got.Fit.Spam != 4 {
		t.Errorf("round trip: %+v", got)
	}
}

// The fitted model scores: intercept + fitted weights + Bayes term; a
// signal the fit never saw keeps its configured weight; without Bayes the
// no-Bayes model applies.
func TestFittedScoring(t *testing.T) {
	file := filepath.Join(t.TempDir(), "w.toml")
	os.WriteFile(file, []byte(`
[bayes]
intercept = 2.0
bayes_logit = 1.0
[bayes.signals]
missing-date = 3.0
missing-message-id = 0.0
[nobayes]
intercept = 4.0
[nobayes.signals]
missing-date = 5.0
`), 0o644)
	mem := bayes.NewMemory()
	c := newCheck(t, func(cfg *Config, o *Options) {
		cfg.Weights = file
		cfg.Bayes.MinHam, cfg.Bayes.MinSpam = 1, 1
		cfg.URIRules = []URIRule{{Name: "x", Pattern: "evil", Score: 1.5}}
		o.Tokens = mem
	})
	raw := "From: a@example.com\nTo: b@example.org\nSubject: x\n\nhello http://evil.example/ there\n"
	// Bayes not ready: the no-Bayes model; uri-x keeps its weight.
	r, _ := c.Check(context.Background(), msg(t, raw), nil)
	s := signals(r)
	if s["missing-date"] != 5 || s[SignalIntercept] != 4 || s["uri-x"] != 1.5 || r.Score != 11.5 {
		t.Fatalf("no Bayes: %v score %v", s, r.Score)
	}
	if _, ok := s["missing-message-id"]; !ok {
		t.Errorf("a signal absent from the no-Bayes model keeps its configured weight: %v", s)
	}
	// Bayes ready: the Bayes model; missing-message-id fitted to 0 is dropped.
	ctx := context.Background()
	m := msg(t, raw)
	bayes.Learn(ctx, mem, "s", Tokens(m, c.Ignore()), bayes.ClassSpam, false)
	bayes.Learn(ctx, mem, "h", []string{"other"}, bayes.ClassHam, false)
	r, _ = c.Check(ctx, msg(t, raw), nil)
	s = signals(r)
	if s["missing-date"] != 3 || s[SignalIntercept] != 2 || s["uri-x"] != 1.5 {
		t.Fatalf("Bayes: %v", s)
	}
	if _, ok := s["missing-message-id"]; ok {
		t.Errorf("a signal fitted to 0 still counts: %v", s)
	}
	o := OutcomeOf(r)
	if o == nil || !o.Features.BayesOK || math.Abs(s[SignalBayesLogit]-Logit(o.Features.BayesP)) > 1e-9 {
		t.Fatalf("Bayes term %v outcome %+v", s[SignalBayesLogit], o)
	}
	if o.NoBayesScore != 11.5 {
		t.Errorf("NoBayesScore %v, want the no-Bayes model's 11.5", o.NoBayesScore)
	}
}

func TestLogit(t *testing.T) {
	for _, c := range []struct{ p, want float64 }{{0.5, 0}, {1, BayesLogitClamp}, {0, -BayesLogitClamp}, {0.9, math.Log(9)}} {
		if got := Logit(c.p); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Logit(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}

// bayes_logit_spam weighs the spam side of the Bayes log-odds apart from
// the ham side, and survives Encode and ParseWeights.
func TestBayesLogitSpamSide(t *testing.T) {
	w, err := ParseWeights("w", []byte("[bayes]\nbayes_logit = 1.0\nbayes_logit_spam = 0.25\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Bayes.bayes(4); got != 1 {
		t.Errorf("spam side: %v, want 0.25 × 4", got)
	}
	if got := w.Bayes.bayes(-4); got != -4 {
		t.Errorf("ham side: %v, want 1 × -4", got)
	}
	if got := w.NoBayes.bayes(4); got != 0 {
		t.Errorf("no weights: %v", got)
	}
	data, err := w.Encode("c")
	if err != nil {
		t.Fatal(err)
	}
	w2, err := ParseWeights("w2", data)
	if err != nil || w2.Bayes.BayesLogitSpam == nil || *w2.Bayes.BayesLogitSpam != 0.25 || w2.NoBayes.BayesLogitSpam != nil {
		t.Fatalf("round trip: %v %+v\n%s", err, w2, data)
	}
	if _, err := ParseWeights("w", []byte("[bayes]\nbayes_logit_spam = nan\n")); err == nil {
		t.Error("nan accepted")
	}
}
