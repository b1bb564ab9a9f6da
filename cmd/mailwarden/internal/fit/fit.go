package fit

import (
	"fmt"
	"math"
	"sort"
	"strings"

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
	Prior []float64
	// PriorNoBayes is Prior for the model without Bayes (see
	// spam.Features.NoBayes); nil: the same as Prior.
	PriorNoBayes []float64
	BayesP       float64
	BayesOK      bool
	Spam         bool
	Fold         int
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
	// BayesAlone bounds what Bayes adds on its own: at its most certain
	// (log-odds at spam.BayesLogitClamp) it adds at most this many points
	// to a message's other evidence. With a bound the Bayes log-odds
	// enter the fit as two features, the ham side and the spam side, and
	// only the spam side's weight is bounded (held at the bound, the rest refitted, when
	// the free fit exceeds it). 0: no bound.
	//
	// Why: cross-validation on one corpus measures Bayes on mail like its
	// training mail; on another site's mail (newsletters and commercial
	// ham it never saw) Bayes is confidently wrong far more often, and an
	// unbounded fit lets it quarantine alone. SpamAssassin bounds it the
	// same way (BAYES_99 + BAYES_999 = 3.7 of the 5 required points).
	// learn --fit --select-ham/--select-spam chooses it on mail from
	// another source. Off by default: on the shared corpus split by source
	// (fit on its mailing-list ham, chosen on its hard ham) no bound did
	// better than none.
	BayesAlone float64
	// RuleStrength is the L2 penalty on a SpamAssassin rule's weight
	// (signal sa-NAME), pulling it towards RuleScale × the rule's own
	// SpamAssassin score rather than towards 0. 0: rules are treated as
	// every other signal (Lambda, towards 0).
	//
	// Why: SpamAssassin's scores come from mass-checks over many sites'
	// mail; a rule that never fires on this corpus' ham (a relay test that
	// its mailing-list ham always passes) would otherwise get a weight no
	// other site's ham can bear. The prior keeps what the corpus does not
	// show strongly. Off by default for the same reason as BayesAlone:
	// --select preferred 0 on the shared corpus split by source.
	RuleStrength float64
	// RuleScale maps SpamAssassin points onto ours: 2 puts its required
	// score, 5, on quarantine, 10.
	RuleScale float64
}

// DefaultOptions are the settings `mailwarden learn --fit` uses unless
// told otherwise. They were chosen before any held-out figure was seen:
// λ = 1, signals seen in at least 5 messages, and a false positive costs
// as much as 20 missed spams.
func DefaultOptions() Options {
	return Options{Lambda: 1, MinCount: 5, FPCost: 20, AddHeader: 5, Quarantine: 10, Folds: 5, SignConstrained: true, MinPrior: 0.01, RuleScale: 2}
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
	case o.RuleStrength < 0 || o.RuleScale < 0:
		return fmt.Errorf("fit: rule strength and scale must not be negative")
	case o.BayesAlone < 0:
		return fmt.Errorf("fit: bayes-alone must not be negative")
	}
	return nil
}

// model is one fitted model with its vocabulary.
type model struct {
	vocab map[string]int
	bayes int // index of the Bayes feature, -1 without
	// split: the Bayes log-odds are two features, the ham side at bayes
	// and the spam side at bayes+1 (with Options.BayesAlone)
	split bool
	lr    *LogReg
	// off are the signals fixed at 0 by the sign constraint.
	off []string
}

func build(train []Sample, o Options, withBayes bool) (*model, error) {
	count := map[string]int{}
	sign := map[string]float64{}
	for _, s := range train {
		prior := s.Prior
		if !withBayes && s.PriorNoBayes != nil {
			prior = s.PriorNoBayes
		}
		for i, n := range s.Signals {
			if i < len(prior) {
				sign[n] = prior[i]
				if math.Abs(prior[i]) <= o.MinPrior {
					continue // informational: keeps its configured weight
				}
			}
			count[n]++
		}
	}
	off := map[string]bool{}
	for round := 0; ; round++ {
		m, err := fitVocab(train, o, withBayes, count, sign, off)
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
func fitVocab(train []Sample, o Options, withBayes bool, count map[string]int, prior map[string]float64, off map[string]bool) (*model, error) {
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
		if o.BayesAlone > 0 {
			// m.bayes the ham side, m.bayes+1 the spam side
			m.split = true
			d++
		}
	}
	pr := Prior{Lambda: o.Lambda}
	if o.RuleStrength > 0 {
		pr.Lambdas, pr.Mu = make([]float64, d), make([]float64, d)
		for i := range pr.Lambdas {
			pr.Lambdas[i] = o.Lambda
		}
		for i, n := range names {
			if strings.HasPrefix(n, "sa-") {
				pr.Lambdas[i], pr.Mu[i] = o.RuleStrength, o.RuleScale*prior[n]/o.k()
			}
		}
	}
	rows := make([]Row, len(train))
	for i, s := range train {
		rows[i] = m.row(s)
	}
	lr, err := TrainPrior(rows, d, pr)
	if err != nil {
		return nil, err
	}
	m.lr = lr
	if !withBayes || o.BayesAlone == 0 {
		return m, nil
	}
	// The bound is a box on one weight: when the free fit breaks it, the
	// optimum of this convex problem has the weight at the bound; hold it
	// there (a prior too strong to move) and fit the rest again.
	bound := o.BayesAlone / o.k() / spam.BayesLogitClamp
	if lr.W[m.bayes+1] <= bound {
		return m, nil
	}
	if pr.Lambdas == nil {
		pr.Lambdas, pr.Mu = make([]float64, d), make([]float64, d)
		for i := range pr.Lambdas {
			pr.Lambdas[i] = o.Lambda
		}
	}
	pr.Lambdas[m.bayes+1], pr.Mu[m.bayes+1] = 1e9, bound
	if lr, err = TrainPrior(rows, d, pr); err != nil {
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
		l := spam.Logit(s.BayesP)
		if m.split {
			r.Cont = map[int]float64{m.bayes: min(l, 0), m.bayes + 1: max(l, 0)}
		} else {
			r.Cont = map[int]float64{m.bayes: l}
		}
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
		if m.split {
			spamSide := k * m.lr.W[m.bayes+1]
			out.BayesLogitSpam = &spamSide
		}
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
		PointsPerNat: o.k(), Folds: o.Folds, BayesAlone: o.BayesAlone,
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
	if o.RuleStrength > 0 {
		m += fmt.Sprintf(", SpamAssassin rules pulled towards %g × their score (strength %g)", o.RuleScale, o.RuleStrength)
	}
	if o.BayesAlone > 0 {
		m += fmt.Sprintf(", Bayes alone adds at most %g points", o.BayesAlone)
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

// Choice is one setting tried by Select and its figures on the
// validation set.
type Choice struct {
	RuleStrength, BayesAlone, Odds float64
	Stats                          eval.FoldStats
	Cost                           float64
}

// Grid is what Select tries: every combination.
type Grid struct {
	RuleStrength, BayesAlone []float64
	// Odds are values of Options.FPCost for the mapping (quarantine where
	// the fitted odds reach Odds:1): on mail unlike the corpus the fitted
	// odds are overconfident, and a higher Odds moves quarantine up.
	Odds []float64
}

// Select fits on train with every combination in g, scores val (mail
// from another source or time, never used to fit) and returns all the
// choices, the best first: the lowest cost o.FPCost × FP rate + miss rate
// at quarantine, ties to the earlier in g's order.
func Select(train, val []Sample, o Options, g Grid) ([]Choice, error) {
	var out []Choice
	for _, st := range g.RuleStrength {
		for _, b := range g.BayesAlone {
			for _, c := range g.Odds {
				oo := o
				oo.RuleStrength, oo.BayesAlone, oo.FPCost = st, b, c
				if err := oo.Validate(); err != nil {
					return nil, err
				}
				mb, err := build(train, oo, true)
				if err != nil {
					return nil, err
				}
				mn, err := build(train, oo, false)
				if err != nil {
					return nil, err
				}
				var scored []*eval.Msg
				for _, s := range val {
					m := mn
					if s.BayesOK {
						m = mb
					}
					scored = append(scored, &eval.Msg{Path: s.Path, Spam: s.Spam, Score: oo.Map(m.lr.Z(m.row(s)))})
				}
				stats := eval.Stats("select", scored, oo.Quarantine)
				out = append(out, Choice{RuleStrength: st, BayesAlone: b, Odds: c, Stats: stats, Cost: o.FPCost*stats.FPRate + (1 - stats.Recall)})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Cost < out[j].Cost })
	return out, nil
}
