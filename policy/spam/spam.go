// Package spam scores how likely a message is to be spam, as a sum of
// named, weighted signals:
//
//   - the authentication outcome reported by the spf, dkim and dmarc checks
//     (RFC 7208, RFC 6376, RFC 7489), read as generic statuses from the
//     prior results so that this package does not depend on their code;
//   - built-in header and body heuristics (see Heuristics), each with a
//     stable name and a weight the operator can change;
//   - operator URI rules: regular expressions on the URLs of the body;
//   - DNS lists (RFC 5782) for the client address and for the registrable
//     domains of the URLs in the body;
//   - SpamAssassin rule files run natively (package sa, [spam.rules], on
//     by default when rule files are installed, see RulesState): each hit
//     is a signal "sa-RULE"; the SPF, DKIM and DMARC rules read the auth
//     checks' outcomes;
//   - a Bayesian classifier (package bayes) on header and body tokens of
//     the decoded MIME parts, HTML reduced to text, whose probability maps
//     to a weight per bucket, once enough ham and spam were learned.
//
// The weights that combine them are fitted (weights.go): by default the
// built-in weights, fitted by L2-regularised logistic regression on one
// part of the SpamAssassin public corpus and checked on another (one set
// with the rules on, one without, chosen by whether the rules run); an
// operator fits their own with `mailwarden learn --fit`. The fitted score
// is the model's log-odds mapped onto the [score] thresholds. Confident
// verdicts, judged without Bayes' vote, can be learned back into Bayes in
// the background (autolearn.go), with the store bounded by expiry.
//
// The check reports facts: its score, every signal for --explain and, as
// reason codes "spam-NAME", the top contributors. The core maps the total
// score of all checks to actions with the [score] thresholds; this package
// never decides an action itself. Its status says where its own score
// stands against those thresholds: "ham", "unsure" (at or above add_header)
// or "spam" (at or above quarantine).
//
// Spam-status header fields already in a message (X-Spam-* from another
// filter or from a corpus, and our own configured status fields) are never
// evidence: they are left out of the tokens and the heuristics.
package spam

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/spam/sa"
	"github.com/mailwarden/mailwarden/policy/store"
)

// Name is the check's name and its config section.
const Name = "spam"

// IsSpam reports whether r, the spam check's result, classified the
// message spam (its score reached the recipients' add_header level).
func IsSpam(r policy.Result) bool { return r.Status == StatusSpam }

// Statuses of the spam check.
const (
	StatusHam    policy.Status = "ham"
	StatusUnsure policy.Status = "unsure"
	StatusSpam   policy.Status = "spam"
)

// Config is the [spam] section.
type Config struct {
	policy.StepConfig
	// IgnoreHeaders are field names (with * wildcards, any case) that are
	// never evidence. The core's own status and flag fields are always
	// ignored too.
	IgnoreHeaders []string `toml:"ignore_headers"`
	// SkipDirections lists message directions not scored (e.g. "outbound").
	SkipDirections []policy.Direction `toml:"skip_directions"`
	// MaxReasons is how many top contributors become reason codes.
	MaxReasons int `toml:"max_reasons"`
	// MinReason is the smallest contribution that becomes a reason code.
	MinReason float64 `toml:"min_reason"`
	// Heuristics overrides built-in heuristic weights by name.
	Heuristics map[string]float64 `toml:"heuristics"`
	// Auth weights the authentication outcome: "CHECK-STATUS" (e.g.
	// "spf-fail", "dmarc-fail", "dkim-pass") and "unauthenticated".
	Auth map[string]float64 `toml:"auth"`
	// URIRules are operator regular expressions on the body's URLs.
	URIRules []URIRule `toml:"uri_rule"`
	// DNSBL lists are asked about the client address, URIBL lists about
	// the registrable domains of URLs.
	DNSBL []Zone `toml:"dnsbl"`
	URIBL []Zone `toml:"uribl"`
	// DNSTimeout bounds all DNS list queries of one message.
	DNSTimeout policy.Duration `toml:"dns_timeout"`
	// MaxURIDomains bounds the URIBL queries of one message.
	MaxURIDomains int `toml:"max_uri_domains"`

	Bayes BayesConfig `toml:"bayes"`

	// Weights names the fitted weights (see weights.go): "builtin" (the
	// default), "none" (the hand-set weights) or a file written by
	// `mailwarden learn --fit`.
	Weights string `toml:"weights"`
	// Autolearn is [spam.autolearn] (see autolearn.go).
	Autolearn AutolearnConfig `toml:"autolearn"`
	Rules     RulesConfig     `toml:"rules"`
}

// BayesConfig is [spam.bayes].
type BayesConfig struct {
	Enabled bool `toml:"enabled"`
	// MinSpam and MinHam: no Bayes signal until this many of each were
	// learned.
	MinSpam int64 `toml:"min_spam"`
	MinHam  int64 `toml:"min_ham"`
	// Weights maps probability buckets to a score: "00" (p < 1 %), "01"
	// (< 5 %), "05" (< 20 %), "20" (< 40 %), "40" (< 60 %), "60" (< 80 %),
	// "80" (< 95 %), "95" (< 99 %), "99" (< 99.9 %), "999" (≥ 99.9 %).
	Weights map[string]float64 `toml:"weights"`
	// Prefix namespaces the token keys in the shared store.
	Prefix string `toml:"prefix"`
	// CacheSize token counts read from the store are kept in memory for
	// CacheTTL (what this process learns is seen at once; what another
	// MTA learns within CacheTTL). 0 turns the cache off.
	CacheSize int             `toml:"cache_size"`
	CacheTTL  policy.Duration `toml:"cache_ttl"`
	// MemoryTokens: with an embedded store (bolt, memory), the whole token
	// table is loaded into memory (bayes.Table, ~19 bytes a token) unless
	// it holds more tokens than this; 0 turns it off.
	MemoryTokens int `toml:"memory_tokens"`
	// MaxTokens bounds the tokens this process learns (autolearn): past
	// it the least recently seen are forgotten, down to 75 % (see
	// bayes.Expiring). 0: no bound.
	MaxTokens int `toml:"max_tokens"`
}

// URIRule is one [[spam.uri_rule]].
type URIRule struct {
	Name    string  `toml:"name"`
	Pattern string  `toml:"pattern"`
	Score   float64 `toml:"score"`
	re      *regexp.Regexp
}

// bucket bounds, in the order of BayesBuckets.
var (
	BayesBuckets = []string{"00", "01", "05", "20", "40", "60", "80", "95", "99", "999"}
	bucketUpper  = []float64{0.01, 0.05, 0.20, 0.40, 0.60, 0.80, 0.95, 0.99, 0.999, 2}
)

// Default returns the section's defaults.
func Default() *Config {
	h := map[string]float64{}
	for _, x := range Heuristics {
		h[x.Name] = x.Weight
	}
	return &Config{
		StepConfig: policy.StepConfig{Enabled: true, Timeout: policy.Duration(20 * time.Second), OnError: policy.ActionAccept},
		// RFC 6648 retired X- names, but filters still use them.
		IgnoreHeaders: []string{"X-Spam*", "X-Mailwarden*"},
		MaxReasons:    3,
		MinReason:     1,
		Heuristics:    h,
		// The spf, dkim and dmarc checks add their own [auth.*] scores for
		// failures; these weights come on top, so by default only the
		// absence of any authentication is weighed here.
		Auth: map[string]float64{
			"spf-fail": 0, "spf-softfail": 0, "dkim-fail": 0, "dmarc-fail": 0,
			"unauthenticated": 0.5,
		},
		DNSTimeout:    policy.Duration(5 * time.Second),
		MaxURIDomains: 10,
		// On: the SpamAssassin rules the site has installed, combined by
		// the built-in weights fitted with them; without rule files the
		// check runs without them (see RulesState).
		Rules: RulesConfig{Enabled: true, Budget: policy.Duration(2 * time.Second)},
		Bayes: BayesConfig{
			Enabled: true, MinSpam: 200, MinHam: 200, Prefix: "bayes:",
			CacheSize: 200000, CacheTTL: policy.Duration(time.Minute), MemoryTokens: 2000000,
			Weights: map[string]float64{"00": -4, "01": -2, "05": -1, "20": 0, "40": 0, "60": 2, "80": 9, "95": 9, "99": 10, "999": 11},
		},
		Weights:   WeightsBuiltin,
		Autolearn: defaultAutolearn(),
	}
}

// Validate checks the section; errors name the key.
// Normalize compiles the URI rules (policy.Load calls it before Validate;
// New calls it too, for a config built in code). A bad pattern stays
// uncompiled; Validate reports it.
func (c *Config) Normalize() {
	for i := range c.URIRules {
		c.URIRules[i].re, _ = regexp.Compile(c.URIRules[i].Pattern)
	}
}

// Validate checks the section (after Normalize); it changes nothing.
func (c *Config) Validate() error {
	var errs []error
	known := map[string]bool{}
	for _, h := range Heuristics {
		known[h.Name] = true
	}
	for n := range c.Heuristics {
		if !known[n] {
			errs = append(errs, policy.KeyErr("heuristics."+n, "unknown heuristic (known: %s)", strings.Join(heuristicNames(), ", ")))
		}
	}
	for k := range c.Auth {
		if k != "unauthenticated" && !authKeyRE.MatchString(k) {
			errs = append(errs, policy.KeyErr("auth."+k, "want CHECK-STATUS (e.g. spf-fail, dmarc-fail) or unauthenticated"))
		}
	}
	for _, p := range c.IgnoreHeaders {
		if _, err := path.Match(strings.ToLower(p), ""); err != nil || p == "" {
			errs = append(errs, policy.KeyErr("ignore_headers", "bad pattern %q", p))
		}
	}
	for _, d := range c.SkipDirections {
		switch d {
		case policy.DirInbound, policy.DirOutbound, policy.DirInternal, policy.DirRelay:
		default:
			errs = append(errs, policy.KeyErr("skip_directions", "%q: want inbound, outbound, internal or relay", d))
		}
	}
	names := map[string]bool{}
	for i := range c.URIRules {
		r := &c.URIRules[i]
		key := fmt.Sprintf("uri_rule[%d]", i+1)
		if r.Name == "" || strings.ContainsAny(r.Name, " ,;\t") {
			errs = append(errs, policy.KeyErr(key+".name", "every URI rule needs a name without spaces or commas (it becomes spam-uri-NAME)"))
		} else if names[r.Name] {
			errs = append(errs, policy.KeyErr(key+".name", "duplicate URI rule name %q", r.Name))
		}
		names[r.Name] = true
		if _, err := regexp.Compile(r.Pattern); err != nil || r.Pattern == "" {
			errs = append(errs, policy.KeyErr(key+".pattern", "bad regular expression: %v", err))
		}
		if r.Score == 0 {
			errs = append(errs, policy.KeyErr(key+".score", "a URI rule needs a non-zero score"))
		}
	}
	for kind, zs := range map[string][]Zone{"dnsbl": c.DNSBL, "uribl": c.URIBL} {
		for i, z := range zs {
			key := fmt.Sprintf("%s[%d]", kind, i+1)
			if z.Zone == "" || strings.ContainsAny(z.Zone, " /@") {
				errs = append(errs, policy.KeyErr(key+".zone", "want a DNS zone such as zen.spamhaus.org"))
			}
			for _, a := range z.Answers {
				if net.ParseIP(a) == nil {
					errs = append(errs, policy.KeyErr(key+".answers", "%q is not an IP address", a))
				}
			}
		}
	}
	if c.DNSTimeout <= 0 {
		errs = append(errs, policy.KeyErr("dns_timeout", "must be positive"))
	}
	if c.MaxURIDomains < 0 {
		errs = append(errs, policy.KeyErr("max_uri_domains", "must not be negative"))
	}
	if c.MaxReasons < 0 {
		errs = append(errs, policy.KeyErr("max_reasons", "must not be negative"))
	}
	for k := range c.Bayes.Weights {
		if bucketIndex(k) < 0 {
			errs = append(errs, policy.KeyErr("bayes.weights."+k, "unknown bucket (known: %s)", strings.Join(BayesBuckets, ", ")))
		}
	}
	if c.Bayes.CacheSize < 0 || c.Bayes.CacheTTL < 0 || c.Bayes.MemoryTokens < 0 {
		errs = append(errs, policy.KeyErr("bayes.cache_size", "cache_size, cache_ttl and memory_tokens must not be negative"))
	}
	if c.Bayes.MaxTokens < 0 {
		errs = append(errs, policy.KeyErr("bayes.max_tokens", "must not be negative"))
	}
	errs = append(errs, c.Rules.validate()...)
	if c.Bayes.MinSpam < 1 || c.Bayes.MinHam < 1 {
		errs = append(errs, policy.KeyErr("bayes.min_spam", "min_spam and min_ham must be at least 1"))
	}
	if c.Weights != WeightsNone && c.Weights != WeightsBuiltin && c.Weights != "" {
		if _, err := LoadWeights(c.Weights, false); err != nil {
			errs = append(errs, policy.KeyErr("weights", "%v", err))
		}
	}
	errs = append(errs, c.Autolearn.validate()...)
	return errors.Join(errs...)
}

var authKeyRE = regexp.MustCompile(`^[a-z0-9_]+-[a-z]+$`)

func heuristicNames() []string {
	var n []string
	for _, h := range Heuristics {
		n = append(n, h.Name)
	}
	return n
}

func bucketIndex(k string) int {
	for i, b := range BayesBuckets {
		if b == k {
			return i
		}
	}
	return -1
}

// Bucket returns the Bayes bucket name of a probability.
func Bucket(p float64) string {
	for i, u := range bucketUpper {
		if p < u {
			return BayesBuckets[i]
		}
	}
	return BayesBuckets[len(BayesBuckets)-1]
}

// HeaderSet matches field names against wildcard patterns (path.Match).
type HeaderSet struct{ patterns []headerPattern }

// headerPattern is a lower-case pattern; the usual ones, a name or a name
// followed by one '*', are matched without path.Match, which was a visible
// cost at three calls per field of every message.
type headerPattern struct {
	p    string
	kind patternKind
}

type patternKind uint8

const (
	patternGlob   patternKind = iota // anything else: path.Match
	patternName                      // no wildcard: equal names
	patternPrefix                    // "name*": p without its '*' is a prefix
)

// NewHeaderSet builds a set from patterns such as "X-Spam*".
func NewHeaderSet(patterns ...string) *HeaderSet {
	s := &HeaderSet{}
	for _, p := range patterns {
		if p == "" {
			continue
		}
		p = strings.ToLower(p)
		hp := headerPattern{p: p, kind: patternGlob}
		switch i := strings.IndexAny(p, `*?[\`); {
		case i < 0:
			hp.kind = patternName
		case i == len(p)-1 && p[i] == '*':
			hp.p, hp.kind = p[:i], patternPrefix
		}
		s.patterns = append(s.patterns, hp)
	}
	return s
}

// Match reports whether a lower-case field name is in the set.
func (s *HeaderSet) Match(lname string) bool {
	if s == nil {
		return false
	}
	for _, hp := range s.patterns {
		switch hp.kind {
		case patternName:
			if lname == hp.p {
				return true
			}
		case patternPrefix:
			// path.Match's '*' matches no '/'.
			if strings.HasPrefix(lname, hp.p) && !strings.Contains(lname[len(hp.p):], "/") {
				return true
			}
		default:
			if ok, _ := path.Match(hp.p, lname); ok {
				return true
			}
		}
	}
	return false
}

// Module is the [spam] section and the "spam" check, with the daemon's
// resolver (DNS lists) and store (Bayes tokens).
func Module(r Resolver, st store.Store) policy.Module {
	return ModuleWith(Options{Resolver: r, Store: st})
}

// ConfigOf returns the [spam] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, Name); c != nil {
		return c
	}
	return Default()
}

// ModuleWith is Module with the check's whole world given (eval trains a
// memory token store per fold).
func ModuleWith(o Options) policy.Module {
	return policy.Module{
		Name:    Name,
		Default: func() any { return Default() },
		Build: func(sec any, env *policy.Env) ([]policy.Step, error) {
			cfg := sec.(*Config)
			if !cfg.Enabled {
				return nil, nil
			}
			c, err := New(cfg, env.Config, o)
			if err != nil {
				return nil, err
			}
			if c.Rules() == RulesMissing && env.Logger != nil {
				env.Logger.Warn("spam: no SpamAssassin rule files installed; scoring without [spam.rules], with the built-in weights fitted without rules",
					"looked_in", strings.Join(DefaultRulePaths(), ", "))
			}
			return []policy.Step{{Check: c, StepConfig: cfg.StepConfig}}, nil
		},
	}
}

// Options are the check's world: what the daemon shares, or what a test
// or `mailwarden eval` puts in its place.
type Options struct {
	// Resolver answers the DNS list queries (needed with dnsbl/uribl).
	Resolver Resolver
	// Store keeps the Bayes tokens (needed with bayes, unless Tokens).
	Store store.Store
	// Tokens, if set, replaces the Store-backed token store (eval, tests).
	Tokens bayes.TokenStore
	// Rules, if set, is the compiled [spam.rules] set to use instead of
	// reading the files again (eval builds one per run, not per fold).
	Rules *sa.Engine
	// RuleCache, if set (and Rules is not), keeps the compiled rules
	// across builds; the daemon holds one for its lifetime.
	RuleCache *RuleCache
	// Now is the clock for date rules (default time.Now).
	Now func() time.Time
}

// NewTokens is the Bayes token store over st: the shared store's counters
// (bayes.Store), behind a cache (cache_size, cache_ttl), and with an
// embedded store the whole table in memory (bayes.Table, memory_tokens).
// The daemon builds it once, with the store, so that the table outlives
// reloads (Options.Tokens); log may be nil.
func NewTokens(st store.Store, b *BayesConfig, log *slog.Logger) bayes.TokenStore {
	var ts bayes.TokenStore = &bayes.Store{S: st, Prefix: b.Prefix}
	if b.CacheSize > 0 && b.CacheTTL > 0 {
		ts = bayes.NewCache(ts, b.CacheTTL.D(), b.CacheSize)
	}
	if sc, ok := store.AsScanner(st); ok && b.MemoryTokens > 0 {
		ts = bayes.NewTable(ts, sc, b.Prefix, b.MemoryTokens, log)
	}
	return ts
}

// Check is the spam check.
type Check struct {
	cfg        *Config
	core       *policy.Config
	ignore     *HeaderSet
	heuristics []Heuristic // with the configured weights, zero weights dropped
	classifier *bayes.Classifier
	resolver   Resolver
	weights    *Weights // nil: the configured weights
	learner    *autolearner
	ruleInfo   RuleInfo
	expiry     *bayes.Expiring // nil without [spam.bayes] max_tokens
	rules      *sa.Engine      // nil unless [spam.rules] enabled and rule files found
	rulesState RulesState
	now        func() time.Time
}

// New builds the check. core may be nil (then the core's default
// thresholds apply).
func New(cfg *Config, core *policy.Config, o Options) (*Check, error) {
	cfg.Normalize()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if core == nil {
		core = policy.DefaultConfig()
	}
	c := &Check{cfg: cfg, core: core}
	c.ignore = NewHeaderSet(append(append([]string{}, cfg.IgnoreHeaders...), core.Headers.Status, core.Headers.Flag)...)
	for _, h := range Heuristics {
		if w, ok := cfg.Heuristics[h.Name]; ok {
			h.Weight = w
		}
		if h.Weight != 0 {
			c.heuristics = append(c.heuristics, h)
		}
	}
	if cfg.Bayes.Enabled {
		ts := o.Tokens
		if ts == nil {
			if o.Store == nil {
				return nil, errors.New("spam: bayes needs a token store")
			}
			ts = NewTokens(o.Store, &cfg.Bayes, nil)
		}
		var exp *bayes.Expiring
		if cfg.Bayes.MaxTokens > 0 {
			exp = bayes.NewExpiring(ts, time.Now)
			ts = exp
		}
		c.classifier = bayes.New(ts, cfg.Bayes.MinSpam, cfg.Bayes.MinHam)
		c.expiry = exp
	}
	if cfg.Autolearn.Enabled && c.classifier != nil {
		c.learner = newAutolearner(&cfg.Autolearn, c.classifier.Store)
		if c.expiry != nil {
			max := cfg.Bayes.MaxTokens
			c.learner.expire = func(ctx context.Context) error {
				_, err := c.expiry.Expire(ctx, c.expiry.Now(), max, 0)
				return err
			}
		}
	}
	c.now = o.Now
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.Rules.Enabled {
		c.rules, c.rulesState = o.Rules, RulesOn
		if c.rules == nil {
			load := LoadRules
			if o.RuleCache != nil {
				load = o.RuleCache.Load
			}
			e, err := load(cfg)
			switch {
			case errors.Is(err, sa.ErrNoRules) && len(cfg.Rules.Paths) == 0:
				// A fresh install without SpamAssassin's rule files: run
				// without them (the daemon logs it once per build).
				c.rulesState = RulesMissing
			case err != nil:
				return nil, err
			default:
				c.rules = e
			}
		}
	}
	// The built-in weights follow the rules: fitted with them when they
	// run, without them otherwise.
	w, err := LoadWeights(cfg.Weights, c.rules != nil)
	if err != nil {
		return nil, err
	}
	c.weights = w
	c.ruleInfo = c.saRuleInfo
	if len(cfg.DNSBL)+len(cfg.URIBL) > 0 {
		if o.Resolver == nil {
			return nil, errors.New("spam: DNS lists need a resolver")
		}
		c.resolver = o.Resolver
	}
	return c, nil
}

// Name implements policy.Check.
func (c *Check) Name() string { return Name }

// After implements policy.After: the authentication outcome is a signal.
func (c *Check) After() []string { return []string{auth.SPF, auth.DKIM, auth.DMARC} }

// TokenStore returns the classifier's store (nil without Bayes).
func (c *Check) TokenStore() bayes.TokenStore {
	if c.classifier == nil {
		return nil
	}
	return c.classifier.Store
}

// Ignore returns the set of header fields that are never evidence.
func (c *Check) Ignore() *HeaderSet { return c.ignore }

// Check implements policy.Check.
func (c *Check) Check(ctx context.Context, m *message.Message, prior policy.Results) (policy.Result, error) {
	for _, d := range c.cfg.SkipDirections {
		if c.core.DirectionOf(m) == d {
			return policy.Result{Status: policy.StatusSkip, Detail: "direction " + string(d)}, nil
		}
	}
	f := c.gather(ctx, m, prior)
	sigs, noBayes := c.score(f)
	res := c.result(sigs, f.Notes, c.core.ThresholdsFor(m.Rcpts))
	o := &Outcome{Score: res.Score, NoBayesScore: noBayes, Features: f}
	if c.learner != nil {
		o.ID = MessageID(m)
	}
	res.Data = o
	return res, nil
}

// Features are what the check found in a message before any weight is
// applied: the signals that fired (with their configured weights), the
// Bayes probability and the message's tokens. `mailwarden learn --fit`
// fits the weights on them.
type Features struct {
	Signals []policy.Signal
	// NoBayes holds the configured weight a signal has when Bayes did not
	// answer, where it differs from its Score (which may then be 0): a
	// SpamAssassin rule scores from the score set without Bayes, as
	// SpamAssassin does while Bayes has not learned enough.
	NoBayes map[string]float64
	BayesP  float64
	// BayesOK: the classifier answered (enough learned, store up).
	BayesOK bool
	Tokens  []string
	Notes   []string
}

// Features returns the features of m (prior: the auth checks' results, if
// any).
func (c *Check) Features(ctx context.Context, m *message.Message, prior policy.Results) Features {
	return c.gather(ctx, m, prior)
}

// score weighs the features: the signals and total with Bayes (as the
// message is scored), and the total without Bayes' vote (for autolearn).
func (c *Check) score(f Features) (sigs []policy.Signal, noBayes float64) {
	sum := func(ss []policy.Signal) (t float64) {
		for _, s := range ss {
			t += s.Score
		}
		return t
	}
	if c.weights == nil {
		noBayes = sum(configured(f.Signals, f.NoBayes))
		if !f.BayesOK {
			return configured(f.Signals, f.NoBayes), noBayes
		}
		sigs = configured(f.Signals, nil)
		b := Bucket(f.BayesP)
		if w := c.cfg.Bayes.Weights[b]; w != 0 {
			sigs = append(sigs, policy.Signal{Name: "bayes-" + b, Score: w})
		}
		return sigs, noBayes
	}
	noBayes = sum(c.weights.NoBayes.apply(f.Signals, f.NoBayes, 0, false))
	if f.BayesOK {
		return c.weights.Bayes.apply(f.Signals, nil, f.BayesP, true), noBayes
	}
	return c.weights.NoBayes.apply(f.Signals, f.NoBayes, 0, false), noBayes
}

// gather runs the tests.
func (c *Check) gather(ctx context.Context, m *message.Message, prior policy.Results) Features {
	var f Features
	var sigs []policy.Signal
	add := func(name string, w float64) {
		if w != 0 {
			sigs = append(sigs, policy.Signal{Name: name, Score: w})
		}
	}
	addRule := func(name string, w, noBayes float64) {
		if w == 0 && noBayes == 0 {
			return
		}
		sigs = append(sigs, policy.Signal{Name: name, Score: w})
		if noBayes != w {
			if f.NoBayes == nil {
				f.NoBayes = map[string]float64{}
			}
			f.NoBayes[name] = noBayes
		}
	}

	// Authentication outcome, from whichever auth checks ran.
	c.authSignals(prior, add)

	// DNS lists, concurrently with the local work below.
	var lookups []lookup
	if c.resolver != nil {
		lookups = c.dnsLookups(m)
	}
	dnsDone := make(chan struct{})
	if len(lookups) > 0 {
		dctx, cancel := context.WithTimeout(ctx, c.cfg.DNSTimeout.D())
		go func() {
			defer close(dnsDone)
			defer cancel()
			runLookups(dctx, c.resolver, lookups)
		}()
	} else {
		close(dnsDone)
	}

	v := newView(m, c.ignore)
	for _, h := range c.heuristics {
		if h.Test(v) {
			add(h.Name, h.Weight)
		}
	}
	f.Notes = append(f.Notes, c.ruleSignals(m, prior, c.now(), addRule)...)
	for _, r := range c.cfg.URIRules {
		for _, u := range v.urls {
			if r.re.MatchString(u) {
				add("uri-"+r.Name, r.Score)
				break
			}
		}
	}

	if c.classifier != nil {
		f.Tokens = tokens(m, c.ignore, v.urls)
		bv, err := c.classifier.Classify(ctx, f.Tokens)
		switch {
		case errors.Is(err, bayes.ErrNotReady):
			f.Notes = append(f.Notes, fmt.Sprintf("bayes not ready (%d spam, %d ham learned)", bv.Learnt.Spam, bv.Learnt.Ham))
		case err != nil:
			// The store is down: score without Bayes rather than fail
			// the message; the log says why.
			f.Notes = append(f.Notes, "bayes unavailable: "+err.Error())
		default:
			f.BayesP, f.BayesOK = bv.Prob, true
			f.Notes = append(f.Notes, fmt.Sprintf("bayes p=%.4f tokens=%d", bv.Prob, bv.Used))
		}
	}

	<-dnsDone
	for _, l := range lookups {
		switch {
		case l.err != nil:
			f.Notes = append(f.Notes, l.name+" lookup failed: "+l.err.Error())
		case l.listed:
			add(l.name, l.zone.Weight)
		}
	}
	dedup := map[string]bool{}
	for _, s := range sigs { // a URI domain on one list counts once
		if !dedup[s.Name] {
			dedup[s.Name] = true
			f.Signals = append(f.Signals, s)
		}
	}
	return f
}

func (c *Check) result(sigs []policy.Signal, notes []string, th policy.Thresholds) policy.Result {
	sort.SliceStable(sigs, func(i, j int) bool {
		a, b := sigs[i].Score, sigs[j].Score
		if a != b {
			return a > b
		}
		return sigs[i].Name < sigs[j].Name
	})
	res := policy.Result{Signals: sigs, Status: StatusHam}
	for _, s := range sigs {
		res.Score += s.Score
	}
	// The recipients' thresholds (per-domain overrides included), as the
	// core applies them to the total.
	switch {
	case th.Quarantine > 0 && res.Score >= th.Quarantine:
		res.Status = StatusSpam
	case th.AddHeader > 0 && res.Score >= th.AddHeader:
		res.Status = StatusUnsure
	}
	if res.Status != StatusHam {
		for _, s := range sigs {
			if len(res.Reasons) >= c.cfg.MaxReasons || s.Score < c.cfg.MinReason {
				break
			}
			if s.Name == SignalIntercept { // the prior odds explain nothing
				continue
			}
			res.Reasons = append(res.Reasons, "spam-"+s.Name)
		}
	}
	var d []string
	for _, s := range sigs {
		d = append(d, fmt.Sprintf("%s=%+.1f", s.Name, s.Score))
	}
	res.Detail = strings.Join(append([]string{fmt.Sprintf("score=%.2f", res.Score)}, append(d, notes...)...), " ")
	return res
}

// authSignals weighs the statuses of the auth checks that ran.
func (c *Check) authSignals(prior policy.Results, add func(string, float64)) {
	ran, passed := 0, false
	for _, name := range []string{auth.SPF, auth.DKIM, auth.DMARC} {
		r, ok := prior[name]
		if !ok {
			continue
		}
		ran++
		st := strings.ToLower(string(r.Status))
		if st == string(policy.StatusPass) {
			passed = true
		}
		add("auth-"+name+"-"+st, c.cfg.Auth[name+"-"+st])
	}
	if ran > 0 && !passed {
		add("auth-unauthenticated", c.cfg.Auth["unauthenticated"])
	}
}

// dnsLookups lists the DNS list queries for a message.
func (c *Check) dnsLookups(m *message.Message) []lookup {
	var ls []lookup
	a := m.Client.Addr
	if a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate() && !c.core.TrustedNetworks.Contains(a) {
		rev := reverseIP(a)
		for _, z := range c.cfg.DNSBL {
			ls = append(ls, lookup{name: z.signal("dnsbl"), query: rev + "." + strings.TrimSuffix(z.Zone, ".") + ".", zone: z})
		}
	}
	if len(c.cfg.URIBL) > 0 && c.cfg.MaxURIDomains > 0 {
		seen := map[string]bool{}
		var doms []string
		for _, u := range messageURLs(m, maxURLs) {
			h := urlHost(u)
			if h == "" || isIPHost(h) {
				continue
			}
			d := registrable(h)
			if !seen[d] && strings.Contains(d, ".") {
				seen[d] = true
				doms = append(doms, d)
			}
			if len(doms) >= c.cfg.MaxURIDomains {
				break
			}
		}
		for _, d := range doms {
			for _, z := range c.cfg.URIBL {
				ls = append(ls, lookup{name: z.signal("uribl"), query: d + "." + strings.TrimSuffix(z.Zone, ".") + ".", zone: z})
			}
		}
	}
	return ls
}

// MessageID is the digest that identifies a message for learning: the
// Message-ID, Subject and From fields and the body, so that the same
// message from two mailboxes is learned once.
func MessageID(m *message.Message) string {
	h := sha256.New()
	for _, n := range []string{"Message-ID", "Subject", "From"} {
		h.Write([]byte(m.Header.Get(n)))
		h.Write([]byte{0})
	}
	if m.Body != nil {
		buf := make([]byte, 32<<10)
		var off int64
		for off < m.Body.Size() {
			n, err := m.Body.ReadAt(buf, off)
			h.Write(buf[:n])
			off += int64(n)
			if err != nil || n == 0 {
				break
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
