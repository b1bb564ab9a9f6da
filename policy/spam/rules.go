package spam

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam/sa"
)

// RulesConfig is [spam.rules]: SpamAssassin rule files run natively
// (package sa). Each hit is a signal "sa-RULE" scored as SpamAssassin
// scores it, in the score set that matches this config: Bayes on or off
// ([spam.bayes] enabled), network tests on when DNS lists are configured.
type RulesConfig struct {
	Enabled bool `toml:"enabled"`
	// Paths are rule files or directories of *.cf files, read in order.
	// Empty means SpamAssassin's own: the newest sa-update directory under
	// /var/lib/spamassassin, else /usr/share/spamassassin, then
	// /etc/spamassassin.
	Paths []string `toml:"paths"`
	// Scores re-weight rules by name (0 turns a rule off).
	Scores map[string]float64 `toml:"scores"`
	// Budget bounds the rule work on one message; what is left when it is
	// spent does not run (the detail says so).
	Budget policy.Duration `toml:"budget"`
	// CacheMB bounds, in MiB, the memory of the rules' lazily built
	// automata together; 0 means sa.DefaultCacheBytes. Past it they are
	// all dropped and rebuilt as mail needs them (sa.CacheStats counts
	// it): less memory for a long-running daemon, for some CPU.
	CacheMB int `toml:"cache_mb"`
}

// DefaultRulePaths are the paths used when [spam.rules] paths is empty.
func DefaultRulePaths() []string { return systemRulePaths() }

// systemRulePaths looks at the system's SpamAssassin directories (a
// variable so that tests can stand in another system).
var systemRulePaths = func() []string {
	return sa.DefaultPaths("/var/lib/spamassassin", "/usr/share/spamassassin", "/etc/spamassassin")
}

func (r *RulesConfig) validate() []error {
	var errs []error
	for name := range r.Scores {
		n := strings.TrimPrefix(name, "sa-")
		if n == "" || strings.ContainsAny(n, " \t,;") {
			errs = append(errs, policy.KeyErr("rules.scores."+name, "want a rule name"))
		}
	}
	if r.Budget < 0 {
		errs = append(errs, policy.KeyErr("rules.budget", "must not be negative"))
	}
	if r.CacheMB < 0 {
		errs = append(errs, policy.KeyErr("rules.cache_mb", "must not be negative"))
	}
	for _, p := range r.Paths {
		if p == "" {
			errs = append(errs, policy.KeyErr("rules.paths", "empty path"))
		}
	}
	return errs
}

// RulesState says which case of [spam.rules] applies to a check.
type RulesState int

const (
	// RulesOff: [spam.rules] enabled = false.
	RulesOff RulesState = iota
	// RulesOn: the rule files were loaded; the built-in weights are the
	// set fitted with the rules on.
	RulesOn
	// RulesMissing: enabled with the default paths, but no SpamAssassin
	// rule files are installed (no sa-update directory, no
	// /usr/share/spamassassin): the check runs without rules and the
	// built-in weights are the set fitted without them. Configured paths
	// that hold no rule file are an error instead.
	RulesMissing
)

func (s RulesState) String() string {
	switch s {
	case RulesOn:
		return "on"
	case RulesMissing:
		return "missing"
	}
	return "off"
}

// Rules says which case of [spam.rules] applies.
func (c *Check) Rules() RulesState { return c.rulesState }

// Describe is one line on what the check runs: the rules case and the
// weights that combine the signals (for status, logs and --explain).
func (c *Check) Describe() string {
	var rules string
	switch c.rulesState {
	case RulesOn:
		rules = fmt.Sprintf("SpamAssassin rules on (%d rules)", c.rules.Stats().Run)
	case RulesMissing:
		rules = "SpamAssassin rules enabled but no rule files installed (" + strings.Join(DefaultRulePaths(), ", ") + "; apt-get install spamassassin, or sa-update): running without them"
	default:
		rules = "SpamAssassin rules off ([spam.rules] enabled = false)"
	}
	var weights string
	switch {
	case c.weights == nil:
		weights = "hand-set weights (weights = \"none\")"
	case c.cfg.Weights == "" || c.cfg.Weights == WeightsBuiltin:
		if c.rules != nil {
			weights = "built-in weights fitted with the rules"
		} else {
			weights = "built-in weights fitted without rules"
		}
	default:
		weights = "weights from " + c.cfg.Weights
	}
	return rules + "; " + weights
}

// ErrRules is returned when the configured rule files cannot be used.
var ErrRules = errors.New("spam: rules")

// LoadRules reads and compiles the rule files of cfg for the score set of
// that config.
func LoadRules(cfg *Config) (*sa.Engine, error) {
	paths := cfg.Rules.Paths
	if len(paths) == 0 {
		paths = DefaultRulePaths()
	}
	rs, err := sa.Load(paths, sa.Env{})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRules, strings.Join(paths, ", "), err)
	}
	e, err := sa.Compile(rs, sa.Options{
		Bayes:      cfg.Bayes.Enabled,
		Net:        len(cfg.DNSBL)+len(cfg.URIBL) > 0,
		Auth:       true, // ruleMessage passes the auth checks' results
		Overrides:  cfg.Rules.Scores,
		Budget:     cfg.Rules.Budget.D(),
		CacheBytes: int64(cfg.Rules.CacheMB) << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRules, err)
	}
	return e, nil
}

// CacheStats returns the figures of the memory budget of the cached
// rules' automata; false when no rules are compiled.
func (rc *RuleCache) CacheStats() (sa.CacheStats, bool) {
	rc.mu.Lock()
	e := rc.e
	rc.mu.Unlock()
	if e == nil {
		return sa.CacheStats{}, false
	}
	return e.CacheStats(), true
}

// ruleMessage gives the rules their view of a message: the header without
// the fields that are never evidence, the MIME parts, the envelope sender
// and the path with the SMTP client the MTA saw as the newest relay.
func ruleMessage(m *message.Message, ignore *HeaderSet, prior policy.Results) *sa.Message {
	kept := make(message.Header, 0, len(m.Header))
	for _, f := range m.Header {
		if !ignore.Match(strings.ToLower(f.Name)) {
			kept = append(kept, f)
		}
	}
	// Header and body go into one string of their size, the header written
	// in place: the rules read it as it is (sa.FromRaw would copy it).
	var n int64
	if m.Body != nil {
		n = min(m.Body.Size(), maxRuleBody)
	}
	var raw strings.Builder
	raw.Grow(kept.WireSize() + int(n))
	kept.WriteWire(&raw)
	if b, ok := m.Body.(message.BytesBody); ok {
		raw.Write(b[:n])
	} else if n > 0 {
		buf := copyBufs.Get().(*[32 << 10]byte)
		io.CopyBuffer(&raw, io.LimitReader(m.BodyReader(), n), buf[:])
		copyBufs.Put(buf)
	}
	sm := sa.FromText(raw.String())
	sm.EnvelopeFrom, sm.HasEnvelopeFrom = m.MailFrom, true
	var received []string
	for _, f := range kept {
		if strings.EqualFold(f.Name, "Received") {
			received = append(received, f.Value)
		}
	}
	relays, _ := sa.ParseRelays(received)
	if a := m.Client.Addr; a.IsValid() && (len(relays) == 0 || relays[0].IP != a.String()) {
		rdns := m.Client.Name
		if strings.EqualFold(rdns, "unknown") {
			rdns = ""
		}
		relays = append([]sa.Relay{{IP: a.String(), RDNS: rdns, HELO: m.Client.HELO}}, relays...)
	}
	if relays == nil {
		relays = []sa.Relay{}
	}
	sm.Relays = relays
	sm.Auth = ruleAuth(prior)
	return sm
}

// ruleAuth gives the rules of SpamAssassin's SPF, DKIM and DMARC plugins
// the auth checks' typed outcomes; nil when none of them ran.
func ruleAuth(prior policy.Results) *sa.Auth {
	var a sa.Auth
	ran := false
	if r, ok := prior[auth.SPF]; ok {
		ran = true
		st := strings.ToLower(string(r.Status))
		// RFC 7208 §2.3: the null sender is checked by its HELO identity.
		if o, ok := r.Data.(*auth.SPFOutcome); ok && o.Identity == "helo" {
			a.SPFHELO = st
		} else {
			a.SPF = st
		}
	}
	if r, ok := prior[auth.DKIM]; ok {
		ran = true
		if o, ok := r.Data.(*auth.DKIMOutcome); ok {
			for _, s := range o.Signatures {
				a.DKIM = append(a.DKIM, sa.DKIMSignature{Domain: s.Domain, Valid: s.Status == auth.StatusPass})
			}
		}
	}
	if r, ok := prior[auth.DMARC]; ok {
		ran = true
		switch r.Status {
		case auth.StatusPass, auth.StatusFail:
			a.DMARC = string(r.Status)
		case auth.StatusNone:
			a.DMARC = "none" // RFC 7489 §6.6.3: no policy record
		}
		if o, ok := r.Data.(*auth.DMARCOutcome); ok && o.Record != nil {
			a.DMARCPolicy = string(o.Applied)
			if a.DMARCPolicy == "" {
				a.DMARCPolicy = string(o.Record.Policy)
			}
		}
	}
	if !ran {
		return nil
	}
	return &a
}

// copyBufs recycle the buffers a spooled body is copied through.
var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// maxRuleBody bounds the body bytes the rules read (SpamAssassin's
// default body_part_scan_size is far smaller; whole messages up to this
// size are read here).
const maxRuleBody = 4 << 20

// ruleSignals runs the rules and adds their hits, each with its score and
// its score without Bayes.
func (c *Check) ruleSignals(m *message.Message, prior policy.Results, now time.Time, add func(name string, w, noBayes float64)) []string {
	if c.rules == nil {
		return nil
	}
	r := c.rules.Check(ruleMessage(m, c.ignore, prior), sa.Input{Now: now})
	for _, h := range r.Hits {
		add(h.Signal(), h.Score, h.ScoreNoBayes)
	}
	if r.Truncated {
		return []string{"sa rules: time budget spent"}
	}
	return nil
}

// RuleCache keeps one compiled rule set across pipeline builds (reloads,
// the daemon's dry-run checks): compiling SpamAssassin's ~2,600 rules
// costs seconds of CPU. The set is compiled again when the [spam.rules]
// settings that shape it change, or a rule file changed on disk (an
// sa-update run), as of the next build. The zero value is ready; it is
// safe for concurrent use.
type RuleCache struct {
	mu  sync.Mutex
	key string
	e   *sa.Engine
}

// Load returns the compiled rules of cfg, from the cache when nothing
// that shapes them changed.
func (rc *RuleCache) Load(cfg *Config) (*sa.Engine, error) {
	key := ruleKey(cfg)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.e != nil && rc.key == key {
		return rc.e, nil
	}
	e, err := LoadRules(cfg)
	if err != nil {
		return nil, err
	}
	rc.key, rc.e = key, e
	return e, nil
}

// ruleKey identifies what a compiled rule set depends on: the options of
// Compile and every rule file's name, size and modification time.
func ruleKey(cfg *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "bayes=%t net=%t budget=%v cache=%d\n", cfg.Bayes.Enabled, len(cfg.DNSBL)+len(cfg.URIBL) > 0, cfg.Rules.Budget, cfg.Rules.CacheMB)
	names := make([]string, 0, len(cfg.Rules.Scores))
	for n := range cfg.Rules.Scores {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "score %s=%g\n", n, cfg.Rules.Scores[n])
	}
	paths := cfg.Rules.Paths
	if len(paths) == 0 {
		paths = DefaultRulePaths()
	}
	for _, p := range paths {
		files := []string{p}
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			files, _ = filepath.Glob(filepath.Join(p, "*"))
		}
		for _, f := range files {
			if st, err := os.Stat(f); err == nil {
				fmt.Fprintf(&b, "%s %d %d\n", f, st.Size(), st.ModTime().UnixNano())
			} else {
				fmt.Fprintf(&b, "%s absent\n", f)
			}
		}
	}
	return b.String()
}
