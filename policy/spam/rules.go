package spam

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
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
}

// DefaultRulePaths are the paths used when [spam.rules] paths is empty.
func DefaultRulePaths() []string {
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
	for _, p := range r.Paths {
		if p == "" {
			errs = append(errs, policy.KeyErr("rules.paths", "empty path"))
		}
	}
	return errs
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
		Bayes:     cfg.Bayes.Enabled,
		Net:       len(cfg.DNSBL)+len(cfg.URIBL) > 0,
		Overrides: cfg.Rules.Scores,
		Budget:    cfg.Rules.Budget.D(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRules, err)
	}
	return e, nil
}

// ruleMessage gives the rules their view of a message: the header without
// the fields that are never evidence, the MIME parts, the envelope sender
// and the path with the SMTP client the MTA saw as the newest relay.
func ruleMessage(m *message.Message, ignore *HeaderSet) *sa.Message {
	var h bytes.Buffer
	kept := make(message.Header, 0, len(m.Header))
	for _, f := range m.Header {
		if !ignore.Match(strings.ToLower(f.Name)) {
			kept = append(kept, f)
		}
	}
	kept.WriteTo(&h)
	body, _ := io.ReadAll(io.LimitReader(m.BodyReader(), maxRuleBody))
	raw := append(h.Bytes(), body...)
	sm := sa.FromRaw(raw)
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
	return sm
}

// maxRuleBody bounds the body bytes the rules read (SpamAssassin's
// default body_part_scan_size is far smaller; whole messages up to this
// size are read here).
const maxRuleBody = 4 << 20

// ruleSignals runs the rules and adds their hits.
func (c *Check) ruleSignals(m *message.Message, now time.Time, add func(string, float64)) []string {
	if c.rules == nil {
		return nil
	}
	r := c.rules.Check(ruleMessage(m, c.ignore), sa.Input{Now: now})
	for _, h := range r.Hits {
		add(h.Signal(), h.Score)
	}
	if r.Truncated {
		return []string{"sa rules: time budget spent"}
	}
	return nil
}
