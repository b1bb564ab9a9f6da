package fit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// synth draws n samples from a known logistic model: signal "a" adds 2
// nats, "b" subtracts 1, "noise" nothing, Bayes log-odds counts 0.5.
func synth(n int, seed uint64) []Sample {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []Sample
	for i := range n {
		s := Sample{Path: fmt.Sprint(i), BayesOK: true, Fold: i % 5}
		z := -0.5
		if r.Float64() < 0.3 {
			s.Signals = append(s.Signals, "a")
			z += 2
		}
		if r.Float64() < 0.4 {
			s.Signals = append(s.Signals, "b")
			z--
		}
		if r.Float64() < 0.5 {
			s.Signals = append(s.Signals, "noise")
		}
		l := r.NormFloat64() * 2
		s.BayesP = 1 / (1 + math.Exp(-l))
		z += 0.5 * l
		s.Spam = r.Float64() < 1/(1+math.Exp(-z))
		out = append(out, s)
	}
	return out
}

func TestTrainRecoversWeights(t *testing.T) {
	o := DefaultOptions()
	samples := synth(20000, 7)
	m, err := build(samples, o, true)
	if err != nil {
		t.Fatal(err)
	}
	w := func(n string) float64 { return m.lr.W[m.vocab[n]] }
	// Class balancing moves only the bias; the slopes are the model's.
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"a", w("a"), 2}, {"b", w("b"), -1}, {"noise", w("noise"), 0}, {"bayes", m.lr.W[m.bayes], 0.5}} {
		if math.Abs(c.got-c.want) > 0.15 {
			t.Errorf("%s: %.3f, want %.1f", c.name, c.got, c.want)
		}
	}
}

// TestBayesAloneBound: on the synthetic model Bayes at its most certain
// adds 0.5·7 = 3.5 nats, more than a bound of 2.5 points; the fit holds the
// spam side to the bound exactly, leaves the ham side free, and the other
// weights keep their shape.
func TestBayesAloneBound(t *testing.T) {
	o := DefaultOptions()
	o.BayesAlone = 2.5
	samples := synth(20000, 7)
	m, err := build(samples, o, true)
	if err != nil {
		t.Fatal(err)
	}
	k := o.k()
	if adds := k * m.lr.W[m.bayes+1] * 7; math.Abs(adds-o.BayesAlone) > 1e-4 {
		t.Errorf("Bayes alone adds %.4f points, want the bound %.1f", adds, o.BayesAlone)
	}
	if hs := m.lr.W[m.bayes]; math.Abs(hs-0.5) > 0.2 {
		t.Errorf("the ham side %.3f moved from 0.5", hs)
	}
	if a, b := m.lr.W[m.vocab["a"]], m.lr.W[m.vocab["b"]]; a < 1.5 || b > -0.5 {
		t.Errorf("a %.3f, b %.3f: the other weights lost their shape", a, b)
	}
	w, err := Fit(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	if w.Bayes.BayesLogitSpam == nil || *w.Bayes.BayesLogitSpam*7 > o.BayesAlone+1e-4 {
		t.Errorf("exported model: spam side %v", w.Bayes.BayesLogitSpam)
	}
	o.BayesAlone = 0
	m, err = build(samples, o, true)
	if err != nil {
		t.Fatal(err)
	}
	if adds := k * m.lr.W[m.bayes] * 7; adds < 5 {
		t.Errorf("without the bound Bayes adds %.2f; the synthetic case no longer tests the bound", adds)
	}
}

// TestRulePrior: a SpamAssassin rule that fired on 40 spam and no ham is
// all but a perfect separator; towards 0 with λ = 1 its weight runs far
// above its own score, with the prior it stays near RuleScale × score.
func TestRulePrior(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 1))
	var samples []Sample
	for i := range 2000 {
		s := Sample{Path: fmt.Sprint(i), Spam: i%2 == 0, Fold: i % 5}
		if s.Spam && i%50 == 0 {
			s.Signals, s.Prior = []string{"sa-RELAY_ODDITY"}, []float64{0.5}
		}
		if r.Float64() < 0.5 == s.Spam {
			s.Signals, s.Prior = append(s.Signals, "other"), append(s.Prior, 1)
		}
		samples = append(samples, s)
	}
	o := DefaultOptions()
	o.RuleStrength = 10
	weight := func(o Options) float64 {
		w, err := Fit(samples, o)
		if err != nil {
			t.Fatal(err)
		}
		return w.NoBayes.Signals["sa-RELAY_ODDITY"]
	}
	free := o
	free.RuleStrength = 0
	wf, wp := weight(free), weight(o)
	if wf < 4 {
		t.Errorf("without the prior: %.2f points; the case no longer shows the problem", wf)
	}
	t.Logf("free %.2f, with the prior %.2f", wf, wp)
	if wp < 0.5 || wp > 2.5 {
		t.Errorf("with the prior: %.2f points, want near %.1f", wp, o.RuleScale*0.5)
	}
}

func TestFitDeterministic(t *testing.T) {
	o := DefaultOptions()
	samples := synth(2000, 3)
	a, err := Fit(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Fit(samples, o)
	x, _ := a.Encode("c")
	y, _ := b.Encode("c")
	if string(x) != string(y) {
		t.Error("two fits of the same data differ")
	}
	if a.Bayes.BayesLogit <= 0 || a.NoBayes.BayesLogit != 0 {
		t.Errorf("bayes weights %v %v", a.Bayes.BayesLogit, a.NoBayes.BayesLogit)
	}
	// Weights are in points: k · nats.
	k := (o.Quarantine - o.AddHeader) / math.Log(o.FPCost)
	if math.Abs(a.Fit.PointsPerNat-k) > 1e-12 || a.Bayes.Signals["a"] < k*1.5 {
		t.Errorf("points per nat %v, a = %v", a.Fit.PointsPerNat, a.Bayes.Signals["a"])
	}
}

// Regularisation: a signal that fires only in spam, a handful of times,
// gets a finite weight (unpenalised it would diverge), and a rarer one none.
func TestRegularisedAndMinCount(t *testing.T) {
	o := DefaultOptions()
	samples := synth(1000, 5)
	for i := range 6 {
		samples[i].Spam = true
		samples[i].Signals = append(samples[i].Signals, "only-spam")
	}
	samples[10].Signals = append(samples[10].Signals, "rare")
	w, err := Fit(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	if v := w.NoBayes.Signals["only-spam"]; !(v > 0 && v < 20) {
		t.Errorf("only-spam weight %v", v)
	}
	if _, ok := w.NoBayes.Signals["rare"]; ok {
		t.Error("a signal below min_count got a weight")
	}
}

func TestMap(t *testing.T) {
	o := DefaultOptions()
	if got := o.Map(0); math.Abs(got-o.AddHeader) > 1e-9 {
		t.Errorf("even odds map to %v, want add_header", got)
	}
	if got := o.Map(math.Log(o.FPCost)); math.Abs(got-o.Quarantine) > 1e-9 {
		t.Errorf("odds C:1 map to %v, want quarantine", got)
	}
	if got := o.Map(3 * math.Log(o.FPCost)); math.Abs(got-20) > 1e-9 {
		t.Errorf("odds C³:1 map to %v, want 20 (reject)", got)
	}
}

func TestCrossValidate(t *testing.T) {
	o := DefaultOptions()
	cv, err := CrossValidate(synth(3000, 11), o)
	if err != nil {
		t.Fatal(err)
	}
	// The model is noisy by construction: Bayes helps, and both are better
	// than chance but far from perfect.
	if !(cv.Bayes.AUC > cv.NoBayes.AUC+0.02 && cv.NoBayes.AUC > 0.6 && cv.Bayes.AUC < 0.95) {
		t.Errorf("AUC with Bayes %.3f, without %.3f", cv.Bayes.AUC, cv.NoBayes.AUC)
	}
	if cv.Bayes.Ham+cv.Bayes.Spam != 3000 {
		t.Errorf("scored %d", cv.Bayes.Ham+cv.Bayes.Spam)
	}
	if err := (Options{}).Validate(); err == nil {
		t.Error("zero options validate")
	}
}

func TestCholSolve(t *testing.T) {
	A := []float64{4, 2, 2, 3}
	x, err := cholSolve(A, []float64{2, 1}, 2)
	if err != nil || math.Abs(x[0]-0.5) > 1e-12 || math.Abs(x[1]) > 1e-12 {
		t.Errorf("x %v err %v", x, err)
	}
	if _, err := cholSolve([]float64{0, 0, 0, 0}, []float64{1, 1}, 2); err != ErrSingular {
		t.Errorf("singular: %v", err)
	}
}

// Select tries every combination, sorts by cost, and the cost is the
// operator's (o.FPCost) whatever odds the combination maps with.
func TestSelect(t *testing.T) {
	train, val := synth(3000, 21), synth(1500, 22)
	// The validation ham is more spam-like to Bayes than the training ham:
	// mail from another site.
	for i := range val {
		if !val[i].Spam {
			val[i].BayesP = 1 - (1-val[i].BayesP)*0.3
		}
	}
	o := DefaultOptions()
	g := Grid{RuleStrength: []float64{0, 10}, BayesAlone: []float64{0, 2.5}, Odds: []float64{20, 1000}}
	cs, err := Select(train, val, o, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 8 {
		t.Fatalf("%d choices, want 8", len(cs))
	}
	for i, c := range cs {
		if want := o.FPCost*c.Stats.FPRate + 1 - c.Stats.Recall; math.Abs(c.Cost-want) > 1e-12 {
			t.Errorf("choice %d: cost %v, want %v", i, c.Cost, want)
		}
		if i > 0 && c.Cost < cs[i-1].Cost {
			t.Errorf("not sorted at %d", i)
		}
	}
	if cs[0].Stats.Ham+cs[0].Stats.Spam != len(val) {
		t.Errorf("scored %d of %d", cs[0].Stats.Ham+cs[0].Stats.Spam, len(val))
	}
}

// withPriors gives the synthetic signals configured weights: "a" and "b"
// written as spam evidence (positive), "noise" as nice (negative).
func withPriors(samples []Sample) []Sample {
	prior := map[string]float64{"a": 1.5, "b": 0.8, "noise": -0.5}
	for i := range samples {
		samples[i].Prior = nil
		for _, n := range samples[i].Signals {
			samples[i].Prior = append(samples[i].Prior, prior[n])
		}
	}
	return samples
}

// TestSignConstrained: "b" really lowers the odds, but it was written as
// spam evidence; the constrained fit turns it off (weight 0, exported so
// that its configured weight does not come back) and keeps "a".
func TestSignConstrained(t *testing.T) {
	samples := withPriors(synth(20000, 7))
	o := DefaultOptions()
	o.SignConstrained = false
	free, err := Fit(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	if free.Bayes.Signals["b"] >= 0 {
		t.Fatalf("unconstrained: b = %v, want negative (the data says so)", free.Bayes.Signals["b"])
	}
	o.SignConstrained = true
	w, err := Fit(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name string
		sig  map[string]float64
	}{{"bayes", w.Bayes.Signals}, {"nobayes", w.NoBayes.Signals}} {
		if b, ok := m.sig["b"]; !ok || b != 0 {
			t.Errorf("%s: b = %v (present %v), want an explicit 0", m.name, b, ok)
		}
		if m.sig["a"] <= 0 {
			t.Errorf("%s: a = %v, want positive", m.name, m.sig["a"])
		}
		if m.sig["noise"] > 0 {
			t.Errorf("%s: the nice signal got %v", m.name, m.sig["noise"])
		}
	}
	if !strings.Contains(w.Fit.Method, "configured score") {
		t.Errorf("method %q does not say the fit was constrained", w.Fit.Method)
	}
}

// TestMinPrior: a signal configured as informational (±0.001, as
// SpamAssassin's HTML_MESSAGE) is not fitted even where it separates the
// classes, and keeps its configured weight (absent from the file).
func TestMinPrior(t *testing.T) {
	samples := synth(5000, 11)
	for i := range samples {
		samples[i].Prior = nil
		for range samples[i].Signals {
			samples[i].Prior = append(samples[i].Prior, 1)
		}
		if samples[i].Spam {
			samples[i].Signals = append(samples[i].Signals, "info")
			samples[i].Prior = append(samples[i].Prior, 0.001)
		}
	}
	o := DefaultOptions()
	w, err := Fit(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := w.Bayes.Signals["info"]; ok {
		t.Errorf("informational signal fitted: %v", v)
	}
	if w.Bayes.Signals["a"] <= 0 {
		t.Errorf("a = %v", w.Bayes.Signals["a"])
	}
	o.MinPrior = 0
	if w, err = Fit(samples, o); err != nil || w.Bayes.Signals["info"] <= 1 {
		t.Errorf("with min-prior 0 the informational signal is fitted: %v %v", w.Bayes.Signals["info"], err)
	}
}

// TestPriorNoBayes: the model without Bayes takes each signal's configured
// weight from PriorNoBayes (SpamAssassin's score set without Bayes): a rule
// informational with Bayes (0.001) but scored without it is fitted in the
// no-Bayes model only, and a rule scored with Bayes but 0 without is left
// to its configured weight there.
func TestPriorNoBayes(t *testing.T) {
	samples := synth(5000, 12)
	for i := range samples {
		s := &samples[i]
		s.Prior, s.PriorNoBayes = nil, nil
		for range s.Signals {
			s.Prior = append(s.Prior, 1)
			s.PriorNoBayes = append(s.PriorNoBayes, 1)
		}
		if s.Spam {
			s.Signals = append(s.Signals, "sa-NB_ONLY", "sa-BAYES_ONLY")
			s.Prior = append(s.Prior, 0.001, 2)
			s.PriorNoBayes = append(s.PriorNoBayes, 2, 0)
		}
	}
	w, err := Fit(samples, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := w.Bayes.Signals["sa-NB_ONLY"]; ok {
		t.Errorf("with Bayes, the informational sa-NB_ONLY was fitted: %v", v)
	}
	if w.NoBayes.Signals["sa-NB_ONLY"] <= 0 {
		t.Errorf("without Bayes, sa-NB_ONLY = %v, want fitted above 0", w.NoBayes.Signals["sa-NB_ONLY"])
	}
	if w.Bayes.Signals["sa-BAYES_ONLY"] <= 0 {
		t.Errorf("with Bayes, sa-BAYES_ONLY = %v, want fitted above 0", w.Bayes.Signals["sa-BAYES_ONLY"])
	}
	if v, ok := w.NoBayes.Signals["sa-BAYES_ONLY"]; ok {
		t.Errorf("without Bayes, sa-BAYES_ONLY (configured 0) was fitted: %v", v)
	}
}
