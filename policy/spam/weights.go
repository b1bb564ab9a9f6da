package spam

import (
	_ "embed"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/mailwarden/mailwarden/policy"
)

// Fitted weights.
//
// `mailwarden learn --fit` fits the weights that combine the signals (the
// heuristics, the URI rules, any other named signal the check reports, and
// the Bayes probability) by L2-regularised logistic regression on the
// operator's corpus, and writes them to the file named by [spam] weights.
// The check then scores a message as
//
//	score = intercept + Σ weight(signal present) + bayes_logit · clamp(logit(p), ±BayesLogitClamp)
//
// where each weight is the fitted log-odds coefficient already mapped onto
// the [score] threshold scale (points = Q + k·(z − ln C), see FitInfo):
// a message whose fitted odds are even scores add_header, one whose odds
// are C:1 (the cost of a false positive relative to a missed spam) scores
// quarantine. Two models are kept, as SpamAssassin keeps score sets: one
// for when Bayes answered, one for when it did not (a fresh install, a
// store that is down), each fitted on its own features.
//
// Signals the fit never saw often enough (an operator's new URI rule, a DNS
// list, an authentication outcome, which an offline corpus cannot show)
// keep their configured weight.

// BayesLogitClamp bounds the Bayes log-odds feature: the chi-square
// combination saturates at 0 and 1, where logit is infinite.
const BayesLogitClamp = 7.0

// SignalIntercept and SignalBayesLogit are the names of the fitted model's
// intercept and Bayes term in --explain.
const (
	SignalIntercept  = "fit-intercept"
	SignalBayesLogit = "bayes-logit"
)

// WeightsBuiltin and WeightsNone are the special values of [spam] weights:
// the weights shipped with mailwarden (the default), and none (the hand-set
// weights of [spam.heuristics] and [spam.bayes] weights). The built-in
// weights come in two sets fitted on the same corpus part: one with the
// SpamAssassin rules on (used when [spam.rules] loaded rule files), one
// without them (rules off, or no rule files installed).
const (
	WeightsBuiltin = "builtin"
	WeightsNone    = "none"
)

//go:embed default_weights.toml
var defaultWeights []byte

//go:embed default_weights_rules.toml
var defaultRulesWeights []byte

// Weights is a weights file.
type Weights struct {
	Fit FitInfo `toml:"fit"`
	// Bayes is used when the classifier answered, NoBayes when it did not.
	Bayes   Model `toml:"bayes"`
	NoBayes Model `toml:"nobayes"`
}

// FitInfo records how the weights were fitted (informational, except that
// it documents the mapping onto the threshold scale).
type FitInfo struct {
	Method string `toml:"method"`
	Corpus string `toml:"corpus"`
	Ham    int    `toml:"ham"`
	Spam   int    `toml:"spam"`
	// Lambda is the L2 penalty; MinCount the fewest messages a signal
	// must fire in to get its own weight.
	Lambda   float64 `toml:"lambda"`
	MinCount int     `toml:"min_count"`
	// FPCost is C: quarantine is where the fitted odds reach C:1.
	FPCost float64 `toml:"fp_cost"`
	// AddHeader and Quarantine are the thresholds the mapping used;
	// PointsPerNat is k = (quarantine − add_header) / ln C.
	AddHeader    float64 `toml:"add_header"`
	Quarantine   float64 `toml:"quarantine"`
	PointsPerNat float64 `toml:"points_per_nat"`
	// BayesAlone is the bound on what Bayes scores on its own (0: none).
	BayesAlone float64 `toml:"bayes_alone"`
	// Cross-validated figures of the fit on its own corpus, at quarantine.
	Folds    int     `toml:"folds"`
	CVFPRate float64 `toml:"cv_fp_rate"`
	CVRecall float64 `toml:"cv_recall"`
	CVAUC    float64 `toml:"cv_auc"`
}

// Model is one set of fitted weights, in points.
type Model struct {
	Intercept float64 `toml:"intercept"`
	// BayesLogit weighs the Bayes log-odds; BayesLogitSpam, when set,
	// replaces it on the spam side (log-odds above 0), so that what Bayes
	// adds on its own can be bounded without bounding what it takes away.
	BayesLogit     float64            `toml:"bayes_logit"`
	BayesLogitSpam *float64           `toml:"bayes_logit_spam"`
	Signals        map[string]float64 `toml:"signals"`
}

// bayes is the model's Bayes term for log-odds l.
func (m *Model) bayes(l float64) float64 {
	if l > 0 && m.BayesLogitSpam != nil {
		return *m.BayesLogitSpam * l
	}
	return m.BayesLogit * l
}

// ParseWeights reads a weights file.
func ParseWeights(name string, data []byte) (*Weights, error) {
	var w Weights
	md, err := toml.Decode(string(data), &w)
	if err != nil {
		return nil, fmt.Errorf("spam: weights %s: %w", name, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, fmt.Errorf("spam: weights %s: unknown key %s", name, u[0])
	}
	for _, m := range []*Model{&w.Bayes, &w.NoBayes} {
		if m.BayesLogitSpam != nil && (math.IsNaN(*m.BayesLogitSpam) || math.IsInf(*m.BayesLogitSpam, 0)) {
			return nil, fmt.Errorf("spam: weights %s: bayes_logit_spam: not a number", name)
		}
		for k, v := range m.Signals {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("spam: weights %s: signal %s: not a number", name, k)
			}
		}
	}
	return &w, nil
}

// LoadWeights returns the weights a [spam] weights value names: nil for
// "none", the built-in weights for "" and "builtin" (the set fitted with
// the SpamAssassin rules when rules is set, else the set fitted without
// them), else the file.
func LoadWeights(v string, rules bool) (*Weights, error) {
	switch v {
	case WeightsNone:
		return nil, nil
	case "", WeightsBuiltin:
		if rules {
			return ParseWeights(WeightsBuiltin, defaultRulesWeights)
		}
		return ParseWeights(WeightsBuiltin, defaultWeights)
	}
	data, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("spam: weights: %w", err)
	}
	return ParseWeights(v, data)
}

// DefaultWeights returns the built-in weights: with rules, the set fitted
// with the SpamAssassin rules on.
func DefaultWeights(rules bool) *Weights {
	w, err := LoadWeights(WeightsBuiltin, rules)
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return w
}

// Logit is the Bayes feature: the log-odds of p, clamped.
func Logit(p float64) float64 {
	p = min(max(p, 1e-12), 1-1e-12)
	return min(max(math.Log(p/(1-p)), -BayesLogitClamp), BayesLogitClamp)
}

// apply re-weighs the signals with the model: fitted signals get their
// weight (dropped when it is 0), others keep their configured one (from
// noBayes where it has one: see Features.NoBayes); the intercept and,
// with bayesOK, the Bayes term are added as signals.
func (m *Model) apply(sigs []policy.Signal, noBayes map[string]float64, bayesP float64, bayesOK bool) []policy.Signal {
	out := make([]policy.Signal, 0, len(sigs)+2)
	for _, s := range sigs {
		if w, ok := m.Signals[s.Name]; ok {
			s.Score = w
		} else if w, ok := noBayes[s.Name]; ok {
			s.Score = w
		}
		if s.Score != 0 {
			out = append(out, s)
		}
	}
	if m.Intercept != 0 {
		out = append(out, policy.Signal{Name: SignalIntercept, Score: m.Intercept})
	}
	if bayesOK {
		if b := m.bayes(Logit(bayesP)); b != 0 {
			out = append(out, policy.Signal{Name: SignalBayesLogit, Score: b})
		}
	}
	return out
}

// configured returns the signals with their configured weights, from
// noBayes where it has one, without those of weight 0.
func configured(sigs []policy.Signal, noBayes map[string]float64) []policy.Signal {
	out := make([]policy.Signal, 0, len(sigs))
	for _, s := range sigs {
		if w, ok := noBayes[s.Name]; ok {
			s.Score = w
		}
		if s.Score != 0 {
			out = append(out, s)
		}
	}
	return out
}

// Encode writes w as a weights file, with comment lines first.
func (w *Weights) Encode(comment string) ([]byte, error) {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(comment), "\n") {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	b.WriteString("\n")
	if err := toml.NewEncoder(&b).Encode(struct {
		Fit FitInfo `toml:"fit"`
	}{w.Fit}); err != nil {
		return nil, err
	}
	for _, x := range []struct {
		name string
		m    *Model
	}{{"bayes", &w.Bayes}, {"nobayes", &w.NoBayes}} {
		fmt.Fprintf(&b, "\n[%s]\nintercept = %.4f\nbayes_logit = %.4f\n", x.name, x.m.Intercept, x.m.BayesLogit)
		if x.m.BayesLogitSpam != nil {
			fmt.Fprintf(&b, "bayes_logit_spam = %.4f\n", *x.m.BayesLogitSpam)
		}
		fmt.Fprintf(&b, "\n[%s.signals]\n", x.name)
		names := make([]string, 0, len(x.m.Signals))
		for n := range x.m.Signals {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "%q = %.4f\n", n, x.m.Signals[n])
		}
	}
	return []byte(b.String()), nil
}
