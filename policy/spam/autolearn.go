package spam

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
)

// Autolearn, as SpamAssassin's AutoLearnThreshold plugin does it: a
// message is fed to Bayes without anyone's intervention only when the
// verdict is confident, and confidence is judged WITHOUT Bayes' own vote
// (the no-Bayes model of the fitted weights, or the configured weights
// without the bayes-* bucket), so the classifier never teaches itself what
// it already believes. Signals marked noautolearn (NoAutolearn) are left
// out of that score too. To learn as spam the score must reach spam_above
// with at least min_header_points from header signals and min_body_points
// from body signals (SpamAssassin: 12, 3 and 3 on its 5-point scale; ours
// are doubled, since our quarantine is 10), and the check must have called
// the message spam; to learn as ham it must stay below ham_below (0.1 in
// SpamAssassin) and the check must have called it ham.
//
// With [spam.bayes] max_tokens, each write is followed by an expiry that
// keeps the store under that many tokens (bayes.Expiring).
//
// The write happens after the verdict, in the background (Observe returns
// at once): it never delays mail. At most max_pending writes run at a
// time; past that a message is not learned (Dropped counts them).

// AutolearnConfig is [spam.autolearn].
type AutolearnConfig struct {
	Enabled         bool    `toml:"enabled"`
	HamBelow        float64 `toml:"ham_below"`
	SpamAbove       float64 `toml:"spam_above"`
	MinHeaderPoints float64 `toml:"min_header_points"`
	MinBodyPoints   float64 `toml:"min_body_points"`
	MaxPending      int     `toml:"max_pending"`
	// Timeout bounds one background write.
	Timeout policy.Duration `toml:"timeout"`
}

func defaultAutolearn() AutolearnConfig {
	return AutolearnConfig{HamBelow: 0.2, SpamAbove: 24, MinHeaderPoints: 6, MinBodyPoints: 6, MaxPending: 4, Timeout: policy.Duration(10 * time.Second)}
}

func (a *AutolearnConfig) validate() []error {
	var errs []error
	if a.HamBelow >= a.SpamAbove {
		errs = append(errs, policy.KeyErr("autolearn.ham_below", "must be below spam_above"))
	}
	if a.MaxPending < 1 {
		errs = append(errs, policy.KeyErr("autolearn.max_pending", "must be at least 1"))
	}
	if a.Timeout <= 0 {
		errs = append(errs, policy.KeyErr("autolearn.timeout", "must be positive"))
	}
	return errs
}

// SignalKind says where a signal looked, for autolearn's header and body
// minimums.
type SignalKind int

const (
	KindOther SignalKind = iota
	KindHeader
	KindBody
)

// headerHeuristics are the heuristics that read the header only; the
// others read the body.
var headerHeuristics = map[string]bool{
	"missing-date": true, "bad-date": true, "missing-message-id": true, "bad-message-id": true,
	"missing-to": true, "from-name-address": true, "subject-shouting": true, "subject-exclaim": true,
	"subject-encoded-ascii": true, "forged-mailer": true,
}

// SignalInfo tells autolearn where a signal looked and whether it is
// excluded (SpamAssassin's tflags noautolearn, learn, userconf). Rule
// engines that report signals set RuleInfo for theirs.
type SignalInfo struct {
	Kind        SignalKind
	NoAutolearn bool
}

// RuleInfo, if set, describes signals the built-in table does not know
// (e.g. sa-RULE signals); ok false means "unknown".
type RuleInfo func(name string) (SignalInfo, bool)

func (c *Check) signalInfo(name string) SignalInfo {
	if c.ruleInfo != nil {
		if i, ok := c.ruleInfo(name); ok {
			return i
		}
	}
	switch {
	case headerHeuristics[name]:
		return SignalInfo{Kind: KindHeader}
	case strings.HasPrefix(name, "uri-"), strings.HasPrefix(name, "uribl-"):
		return SignalInfo{Kind: KindBody}
	case strings.HasPrefix(name, "dnsbl-"), strings.HasPrefix(name, "auth-"):
		return SignalInfo{Kind: KindHeader}
	case strings.HasPrefix(name, "bayes"), name == SignalIntercept:
		return SignalInfo{NoAutolearn: true}
	}
	for _, h := range Heuristics {
		if h.Name == name {
			return SignalInfo{Kind: KindBody}
		}
	}
	return SignalInfo{}
}

// Outcome is the spam check's typed result (policy.Result.Data).
type Outcome struct {
	Score float64
	// NoBayesScore is the score without Bayes' vote.
	NoBayesScore float64
	Features     Features
	// ID identifies the message for learning (set with autolearn on).
	ID string
}

// OutcomeOf returns the spam check's outcome in r (nil when it has none).
func OutcomeOf(r policy.Result) *Outcome {
	o, _ := r.Data.(*Outcome)
	return o
}

// AutolearnClass decides what a message may be learned as ("" = not
// confident): the rules above, applied to the no-Bayes weights.
func (c *Check) AutolearnClass(o *Outcome, status policy.Status) bayes.Class {
	if o == nil {
		return ""
	}
	sigs := configured(o.Features.Signals, o.Features.NoBayes)
	if c.weights != nil {
		sigs = c.weights.NoBayes.apply(o.Features.Signals, o.Features.NoBayes, 0, false)
	}
	a := &c.cfg.Autolearn
	var total, head, body float64
	for _, s := range sigs {
		i := c.signalInfo(s.Name)
		if i.NoAutolearn {
			continue
		}
		total += s.Score
		switch i.Kind {
		case KindHeader:
			head += s.Score
		case KindBody:
			body += s.Score
		}
	}
	if c.weights != nil {
		// The intercept is part of the score, not of any rule.
		total += c.weights.NoBayes.Intercept
	}
	switch {
	case status == StatusSpam && total >= a.SpamAbove && head >= a.MinHeaderPoints && body >= a.MinBodyPoints:
		return bayes.ClassSpam
	case status == StatusHam && total < a.HamBelow:
		return bayes.ClassHam
	}
	return ""
}

type autolearner struct {
	cfg     *AutolearnConfig
	store   bayes.TokenStore
	pending chan struct{}
	// Learned and Dropped count background writes done and skipped.
	Learned, Dropped, Failed atomic.Int64
	// expire, if set, bounds the store after each write.
	expire func(context.Context) error
	// done, if set, is called after each write (tests).
	done func(bayes.Class, error)
}

func newAutolearner(cfg *AutolearnConfig, ts bayes.TokenStore) *autolearner {
	return &autolearner{cfg: cfg, store: ts, pending: make(chan struct{}, max(cfg.MaxPending, 1))}
}

// Observe implements policy.Observer: with autolearn on, a confident
// verdict is learned in the background.
func (c *Check) Observe(_ context.Context, _ *message.Message, v *policy.Verdict) error {
	if c.learner == nil {
		return nil
	}
	r, ok := v.Result(Name)
	if !ok {
		return nil
	}
	o := OutcomeOf(r)
	class := c.AutolearnClass(o, r.Status)
	if class == "" || o.ID == "" || len(o.Features.Tokens) == 0 {
		return nil
	}
	l := c.learner
	select {
	case l.pending <- struct{}{}:
	default:
		l.Dropped.Add(1)
		return nil
	}
	go func() {
		defer func() { <-l.pending }()
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout.D())
		defer cancel()
		_, err := bayes.Learn(ctx, l.store, o.ID, o.Features.Tokens, class, false)
		if err == nil && l.expire != nil {
			err = l.expire(ctx)
		}
		if err != nil {
			l.Failed.Add(1)
		} else {
			l.Learned.Add(1)
		}
		if l.done != nil {
			l.done(class, err)
		}
	}()
	return nil
}
