package fit

import (
	"fmt"
	"math"
	"sort"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/eval"
	"github.com/mailwarden/mailwarden/policy/spam"
)

// Sample is one message's features: the names of the signals it fired and
// its Bayes probability from a classifier that did not learn it.
type Sample struct {
	Path    string
	Signals []string
	// Prior holds each signal's configured weight (SpamAssassin's score
	// for a rule, the heuristic's weight), parallel to Signals; nil when
	// unknown. Its sign is the direction the fit must keep (SignConstrained).
	Prior   []float64
	BayesP  float64
	BayesOK bool
	Spam    bool
	Fold    int
}

// Options are the fit's settings.
type Options struct {
	// Lambda is the L2 penalty (in units of the class-balanced sample
	// weights; 1 ≈ one message's worth of evidence pulling a weight to 0).
	Lambda float64
	// MinCount: a signal that fired in fewer training messages gets no
	// weight of its own (it keeps its configured one).
	MinCount int
	// FPCost is C: quarantine where the fitted odds reach C:1.
	FPCost float64
	// AddHeader and Quarantine are the thresholds mapped onto.
	AddHeader, Quarantine float64
	// Folds for the cross-validation.
	Folds int
	// SignConstrained keeps each fitted weight on the side of its
	// configured one: a rule written as spam evidence (positive score)
	// never gets a negative weight, a "nice" rule never a positive one.
	// A weight the data pushes across zero is fixed at 0 (the signal is
	// off) and the rest refitted, until no weight crosses (an active-set
	// method). A negative weight on a spam rule is the corpus's
	// collinearity talking (the rule fires with stronger ones), not
	// evidence that carries to other mail.
	SignConstrained bool
	// MinPrior: a signal whose configured weight is within ±MinPrior is
	// not fitted and keeps that weight. SpamAssassin scores its
	// informational rules (HTML_MESSAGE, FREEMAIL_FROM, the HTML ratio
	// rules) 0.001 and its untested T_ rules 0.01 on purpose: they feed
	// metas and are no evidence alone. Fitted on a corpus whose ham was
	// plain-text mailing lists (2002), they would become spam evidence on
	// today's mail, where most ham is HTML from large mailbox providers.
	// 0 fits them too.
	MinPrior float64
}

// DefaultOptions are the settings `mailwarden learn --fit` uses unless
// told otherwise. They were chosen before any held-out figure was seen:
// λ = 1, signals seen in at least 5 messages, and a false positive costs
// as much as 20 missed spams.
func DefaultOptions() Options {
	return Options{Lambda: 1, MinCount: 5, FPCost: 20, AddHeader: 5, Quarantine: 10, Folds: 5, SignConstrained: true, MinPrior: 0.01}
}

// k is the points per nat of log-odds: (quarantine − add_header) / ln C.
func (o Options) k() float64 { return (o.Quarantine - o.AddHeader) / math.Log(o.FPCost) }

// Map maps fitted log-odds z onto the threshold scale:
//
//	points = quarantine + k·(z − ln C),  k = (quarantine − add_header) / ln C
//
// so even odds (z = 0) score add_header, odds of C:1 score quarantine,
// and every further factor C of odds adds quarantine − add_header points
// (with the defaults 5, 10 and C = 20, reject at 20 means odds of 20³:1).
func (o Options) Map(z float64) float64 { return o.Quarantine + o.k()*(z-math.Log(o.FPCost)) }

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.Lambda <= 0:
		return fmt.Errorf("fit: lambda must be positive")
	case o.FPCost <= 1:
		return fmt.Errorf("fit: fp cost must be above 1")
	case o.Quarantine <= o.AddHeader:
		return fmt.Errorf("fit: quarantine must be above add_header")
	case o.Folds < 2:
		return fmt.Errorf("fit: at least 2 folds")
	}
	return nil
}

// model is one fitted model with its vocabulary.
type model struct {
	vocab map[string]int
	bayes int // index of the Bayes feature, -1 without
	lr    *LogReg
	// off are the signals fixed at 0 by the sign constraint.
	off []string
}

func build(train []Sample, o Options, withBayes bool) (*model, error) {
	count := map[string]int{}
	sign := map[string]float64{}
	for _, s := range train {
		for i, n := range s.Signals {
			if i < len(s.Prior) {
				sign[n] = s.Prior[i]
				if math.Abs(s.Prior[i]) <= o.MinPrior {
					continue // informational: keeps its configured weight
				}
			}
			count[n]++
		}
	}
	off := map[string]bool{}
	for round := 0; ; round++ {
		m, err := fitVocab(train, o, withBayes, count, off)
		if err != nil {
			return nil, err
		}
		crossed := false
		if o.SignConstrained {
			for n, i := range m.vocab {
				if w := m.lr.W[i]; (sign[n] > 0 && w < 0) || (sign[n] < 0 && w > 0) {
					off[n], crossed = true, true
				}
			}
		}
		if !crossed || round == 20 {
			for n := range off {
				m.off = append(m.off, n)
			}
			sort.Strings(m.off)
			return m, nil
		}
	}
}

// fitVocab fits the model on the signals seen often enough, less off.
func fitVocab(train []Sample, o Options, withBayes bool, count map[string]int, off map[string]bool) (*model, error) {
	var names []string
	for n, c := range count {
		if c >= o.MinCount && !off[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	m := &model{vocab: map[string]int{}, bayes: -1}
	for i, n := range names {
		m.vocab[n] = i
	}
	d := len(names)
	if withBayes {
		m.bayes = d
		d++
	}
	rows := make([]Row, len(train))
	for i, s := range train {
		rows[i] = m.row(s)
	}
	lr, err := Train(rows, d, o.Lambda)
	if err != nil {
		return nil, err
	}
	m.lr = lr
	return m, nil
}

func (m *model) row(s Sample) Row {
	r := Row{Spam: s.Spam}
	for _, n := range s.Signals {
		if i, ok := m.vocab[n]; ok {
			r.On = append(r.On, i)
		}
	}
	sort.Ints(r.On)
	if m.bayes >= 0 && s.BayesOK {
		r.Cont = map[int]float64{m.bayes: spam.Logit(s.BayesP)}
	}
	return r
}

func (m *model) export(o Options) spam.Model {
	k := o.k()
	out := spam.Model{Intercept: o.Map(m.lr.Bias), Signals: map[string]float64{}}
	for n, i := range m.vocab {
		out.Signals[n] = k * m.lr.W[i]
	}
	for _, n := range m.off {
		out.Signals[n] = 0 // fitted at 0: off, not its configured weight
	}
	if m.bayes >= 0 {
		out.BayesLogit = k * m.lr.W[m.bayes]
	}
	return out
}

// Fit fits both models (with and without Bayes) on all samples.
func Fit(samples []Sample, o Options) (*spam.Weights, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	w := &spam.Weights{Fit: spam.FitInfo{
		Method:   method(o),
		Lambda:   o.Lambda,
		MinCount: o.MinCount, FPCost: o.FPCost, AddHeader: o.AddHeader, Quarantine: o.Quarantine,
		PointsPerNat: o.k(), Folds: o.Folds,
	}}
	for _, s := range samples {
		if s.Spam {
			w.Fit.Spam++
		} else {
			w.Fit.Ham++
		}
	}
	for _, x := range []struct {
		bayes bool
		out   *spam.Model
	}{{true, &w.Bayes}, {false, &w.NoBayes}} {
		m, err := build(samples, o, x.bayes)
		if err != nil {
			return nil, err
		}
		*x.out = m.export(o)
	}
	return w, nil
}

func method(o Options) string {
	m := "L2-regularised logistic regression, class-balanced, Newton's method"
	if o.SignConstrained {
		m += ", each weight kept on the side of its configured score (active set)"
	}
	if o.MinPrior > 0 {
		m += fmt.Sprintf(", signals configured within ±%g (informational rules) not fitted", o.MinPrior)
	}
	return m + " (mailwarden learn --fit)"
}

// CV is a cross-validation's outcome.
type CV struct {
	Bayes, NoBayes eval.FoldStats
}

// CrossValidate fits on all folds but one and scores that one, for every
// fold (Sample.Fold), and reports the figures at quarantine. The Bayes
// probabilities themselves come from classifiers trained on all folds but
// the message's own, so a held-out fold's labels reach the fold's
// combination weights only through the other messages' Bayes
// probabilities; the held-out corpus figures (eval --train/--test) have no
// such leak.
func CrossValidate(samples []Sample, o Options) (CV, error) {
	var cv CV
	if err := o.Validate(); err != nil {
		return cv, err
	}
	for _, x := range []struct {
		bayes bool
		out   *eval.FoldStats
	}{{true, &cv.Bayes}, {false, &cv.NoBayes}} {
		var scored []*eval.Msg
		for f := 0; f < o.Folds; f++ {
			var train, test []Sample
			for _, s := range samples {
				if s.Fold == f {
					test = append(test, s)
				} else {
					train = append(train, s)
				}
			}
			if len(test) == 0 {
				continue
			}
			m, err := build(train, o, x.bayes)
			if err != nil {
				return cv, err
			}
			for _, s := range test {
				scored = append(scored, &eval.Msg{Path: s.Path, Spam: s.Spam, Score: o.Map(m.lr.Z(m.row(s)))})
			}
		}
		*x.out = eval.Stats("cv", scored, o.Quarantine)
	}
	return cv, nil
}
