package spam

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/spam/sa"
)

const testRules = `
body     SA_PASSWORD   /verify your password/i
score    SA_PASSWORD   2.5
describe SA_PASSWORD   Asks for a password
header   SA_NO_RDNS    X-Spam-Relays-Untrusted =~ /^[^\]]+ rdns= /
score    SA_NO_RDNS    1.2
header   SA_ENV_NULL   EnvelopeFrom =~ /^$/
score    SA_ENV_NULL   0.7
header   SA_SEES_XSPAM X-Spam-Status =~ /yes/i
score    SA_SEES_XSPAM 9
body     SA_NICE       /regards/
score    SA_NICE       -1
`

func rulesCheck(t *testing.T, scores map[string]float64) *Check {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "local.cf"), []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Weights = WeightsNone // SpamAssassin's own scores, not fitted ones
	cfg.Bayes.Enabled = false
	cfg.Heuristics = map[string]float64{}
	for _, h := range Heuristics {
		cfg.Heuristics[h.Name] = 0
	}
	cfg.Auth = map[string]float64{}
	cfg.Rules = RulesConfig{Enabled: true, Paths: []string{dir}, Scores: scores}
	c, err := New(cfg, nil, Options{Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const phish = "From: a@example.com\nTo: b@example.org\nSubject: account\nX-Spam-Status: Yes\n\nPlease verify your password.\n\nregards\n"

func TestRulesSignals(t *testing.T) {
	c := rulesCheck(t, nil)
	m := msg(t, phish)
	m.Client = message.Client{Addr: netip.MustParseAddr("192.0.2.9"), Name: "unknown", HELO: "x"}
	r, err := c.Check(context.Background(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := signals(r)
	want := map[string]float64{"sa-SA_PASSWORD": 2.5, "sa-SA_NO_RDNS": 1.2, "sa-SA_ENV_NULL": 0.7, "sa-SA_NICE": -1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("signal %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if _, ok := got["sa-SA_SEES_XSPAM"]; ok {
		t.Error("X-Spam-* fields are never evidence, for the rules either")
	}
	if math.Abs(r.Score-(2.5+1.2+0.7-1)) > 1e-9 {
		t.Errorf("score %v", r.Score)
	}
}

func TestRulesClientWithRDNS(t *testing.T) {
	c := rulesCheck(t, nil)
	m := msg(t, phish)
	m.MailFrom = "bounce@example.com"
	m.Client = message.Client{Addr: netip.MustParseAddr("192.0.2.9"), Name: "mx.example.com", HELO: "mx.example.com"}
	r, _ := c.Check(context.Background(), m, nil)
	got := signals(r)
	if _, ok := got["sa-SA_NO_RDNS"]; ok {
		t.Error("the client has reverse DNS")
	}
	if _, ok := got["sa-SA_ENV_NULL"]; ok {
		t.Error("the envelope sender is not null")
	}
}

func TestRulesOverrides(t *testing.T) {
	c := rulesCheck(t, map[string]float64{"sa-SA_PASSWORD": 6, "SA_NICE": 0})
	r, _ := c.Check(context.Background(), msg(t, phish), nil)
	got := signals(r)
	if got["sa-SA_PASSWORD"] != 6 {
		t.Errorf("override: %v", got)
	}
	if _, ok := got["sa-SA_NICE"]; ok {
		t.Error("a rule scored 0 is off")
	}
}

func TestRulesConfigErrors(t *testing.T) {
	cfg := Default()
	cfg.Bayes.Enabled = false
	cfg.Rules = RulesConfig{Enabled: true, Paths: []string{filepath.Join(t.TempDir(), "none")}}
	if _, err := New(cfg, nil, Options{}); !errors.Is(err, ErrRules) {
		t.Errorf("missing rule files: err = %v, want ErrRules", err)
	}
	cfg.Rules = RulesConfig{Budget: -1, Scores: map[string]float64{"a b": 1}, Paths: []string{""}}
	if err := cfg.Validate(); err == nil {
		t.Error("bad [spam.rules] accepted")
	}
	cfg.Rules = RulesConfig{CacheMB: -1}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "cache_mb") {
		t.Errorf("cache_mb = -1: err = %v", err)
	}
}

// withSystemRules stands in a system whose SpamAssassin directories are
// dirs.
func withSystemRules(t *testing.T, dirs ...string) {
	t.Helper()
	old := systemRulePaths
	systemRulePaths = func() []string { return dirs }
	t.Cleanup(func() { systemRulePaths = old })
}

func TestRulesDefaultOn(t *testing.T) {
	if !Default().Rules.Enabled {
		t.Fatal("[spam.rules] is off by default")
	}
}

// A fresh install without SpamAssassin's rule files: the check builds,
// runs without rules and weighs with the built-in rules-off weights.
func TestRulesMissingFallsBack(t *testing.T) {
	withSystemRules(t, filepath.Join(t.TempDir(), "share"), filepath.Join(t.TempDir(), "etc"))
	cfg := Default()
	cfg.Bayes.Enabled = false
	c, err := New(cfg, nil, Options{})
	if err != nil {
		t.Fatalf("no rule files installed: %v", err)
	}
	if c.Rules() != RulesMissing || c.rules != nil {
		t.Errorf("state %v, engine %v", c.Rules(), c.rules)
	}
	if want := DefaultWeights(false); c.weights.NoBayes.Intercept != want.NoBayes.Intercept || countSA(c.weights.NoBayes.Signals) != 0 {
		t.Errorf("without rules the weights are not the rules-off set: intercept %v", c.weights.NoBayes.Intercept)
	}
	if d := c.Describe(); !strings.Contains(d, "no rule files installed") || !strings.Contains(d, "without rules") {
		t.Errorf("Describe: %q", d)
	}
	if _, err := c.Check(context.Background(), msg(t, phish), nil); err != nil {
		t.Fatal(err)
	}

	// Configured paths without rule files are the operator's mistake.
	cfg = Default()
	cfg.Bayes.Enabled = false
	cfg.Rules.Paths = []string{filepath.Join(t.TempDir(), "none")}
	if _, err := New(cfg, nil, Options{}); !errors.Is(err, ErrRules) {
		t.Errorf("configured paths without rules: err = %v, want ErrRules", err)
	}
}

// Rule files installed: the rules run and the built-in weights are the
// set fitted with them.
func TestRulesOnPicksRuleWeights(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "local.cf"), []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	withSystemRules(t, dir)
	cfg := Default()
	cfg.Bayes.Enabled = false
	c, err := New(cfg, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Rules() != RulesOn || c.rules == nil {
		t.Fatalf("state %v", c.Rules())
	}
	if want := DefaultWeights(true); c.weights.NoBayes.Intercept != want.NoBayes.Intercept {
		t.Errorf("intercept %v, want the rules-on set's %v", c.weights.NoBayes.Intercept, want.NoBayes.Intercept)
	}
	if d := c.Describe(); !strings.Contains(d, "rules on") || !strings.Contains(d, "fitted with the rules") {
		t.Errorf("Describe: %q", d)
	}
	cfg = Default()
	cfg.Rules.Enabled = false
	cfg.Bayes.Enabled = false
	if c, err = New(cfg, nil, Options{}); err != nil || c.Rules() != RulesOff || !strings.Contains(c.Describe(), "rules off") {
		t.Errorf("off: %v %v", err, c.Rules())
	}
}

func TestRuleCache(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "local.cf")
	if err := os.WriteFile(f, []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Rules.Paths = []string{dir}
	var rc RuleCache
	a, err := rc.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := rc.Load(cfg); b != a {
		t.Error("an unchanged rule set was compiled again")
	}
	if st, ok := rc.CacheStats(); !ok || st.Limit != sa.DefaultCacheBytes {
		t.Errorf("default cache_mb: stats %+v, %v; want limit %d", st, ok, sa.DefaultCacheBytes)
	}
	cfg.Rules.CacheMB = 5
	a, _ = rc.Load(cfg)
	if st, _ := rc.CacheStats(); st.Limit != 5<<20 {
		t.Errorf("cache_mb = 5: limit %d", st.Limit)
	}
	cfg.Rules.Scores = map[string]float64{"SA_NICE": 0}
	b, _ := rc.Load(cfg)
	if b == a {
		t.Error("a new score override reused the old rules")
	}
	// A rule file changed on disk (sa-update): compiled again.
	later := time.Now().Add(time.Hour)
	if err := os.WriteFile(f, []byte(testRules+"body SA_NEW /new/\nscore SA_NEW 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(f, later, later)
	c, _ := rc.Load(cfg)
	if c == b || c.Stats().Run != b.Stats().Run+1 {
		t.Errorf("changed rule file: same engine %v, rules %d then %d", c == b, b.Stats().Run, c.Stats().Run)
	}
}

// The auth checks' typed outcomes reach SpamAssassin's SPF, DKIM and DMARC
// rules.
func TestRulesReadAuthResults(t *testing.T) {
	dir := t.TempDir()
	cf := `
header SA_SPF_FAIL   eval:check_for_spf_fail()
tflags SA_SPF_FAIL   net
score  SA_SPF_FAIL   0 0.9 0 0.9
full   SA_DKIM_AU    eval:check_dkim_valid_author_sig()
tflags SA_DKIM_AU    net nice
score  SA_DKIM_AU    -0.1
header SA_DMARC_REJ  eval:check_dmarc_reject()
tflags SA_DMARC_REJ  net
score  SA_DMARC_REJ  0 1.8 0 1.8
`
	if err := os.WriteFile(filepath.Join(dir, "local.cf"), []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Weights = WeightsNone
	cfg.Bayes.Enabled = false
	cfg.Auth = map[string]float64{}
	cfg.Rules = RulesConfig{Enabled: true, Paths: []string{dir}}
	c, err := New(cfg, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	prior := policy.Results{
		auth.SPF:   {Status: auth.StatusFail, Data: &auth.SPFOutcome{Status: auth.StatusFail, Identity: "mailfrom"}},
		auth.DKIM:  {Status: auth.StatusPass, Data: &auth.DKIMOutcome{Status: auth.StatusPass, Signatures: []auth.DKIMSignature{{Status: auth.StatusPass, Domain: "example.com"}}}},
		auth.DMARC: {Status: auth.StatusFail, Data: &auth.DMARCOutcome{Status: auth.StatusFail, Applied: auth.PolicyReject, Record: &auth.Record{Policy: auth.PolicyReject}}},
	}
	r, err := c.Check(context.Background(), msg(t, phish), prior)
	if err != nil {
		t.Fatal(err)
	}
	got := signals(r)
	for k, v := range map[string]float64{"sa-SA_SPF_FAIL": 0.9, "sa-SA_DKIM_AU": -0.1, "sa-SA_DMARC_REJ": 1.8} {
		if got[k] != v {
			t.Errorf("signal %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// Without the auth checks none of them fires.
	r, _ = c.Check(context.Background(), msg(t, phish), nil)
	for k := range signals(r) {
		if strings.HasPrefix(k, "sa-SA_") {
			t.Errorf("%s without auth results", k)
		}
	}
}

// TestRulesScoreSetFollowsBayes: while Bayes has not learned enough, a rule
// scores from SpamAssassin's set without Bayes, as SpamAssassin does; once
// Bayes answers, from the set with it. Unfitted rules keep those scores
// under fitted weights too, and autolearn judges by the set without Bayes.
func TestRulesScoreSetFollowsBayes(t *testing.T) {
	dir := t.TempDir()
	rules := "body SA_PW /verify your password/i\nscore SA_PW 4 4 1.5 1.5\nbody SA_ONLY_NB /verify/i\nscore SA_ONLY_NB 2 2 0 0\n"
	if err := os.WriteFile(filepath.Join(dir, "local.cf"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, weights := range []string{WeightsNone, "fitted"} {
		mem := bayes.NewMemory()
		c := newCheck(t, func(cfg *Config, o *Options) {
			cfg.Rules = RulesConfig{Enabled: true, Paths: []string{dir}}
			cfg.Bayes.MinHam, cfg.Bayes.MinSpam = 1, 1
			if weights == "fitted" {
				file := filepath.Join(t.TempDir(), "w.toml")
				os.WriteFile(file, []byte("[bayes]\nintercept = 1.0\n[nobayes]\nintercept = 1.0\n[nobayes.signals]\nhtml-only = 3.0\n"), 0o644)
				cfg.Weights = file
			}
			o.Tokens = mem
		})
		ctx := context.Background()
		r, _ := c.Check(ctx, msg(t, phish), nil)
		got := signals(r)
		if got["sa-SA_PW"] != 4 || got["sa-SA_ONLY_NB"] != 2 {
			t.Errorf("%s, Bayes not ready: signals %v, want SA_PW 4 and SA_ONLY_NB 2 (set 0)", weights, got)
		}
		if nb := OutcomeOf(r).NoBayesScore; nb < 6 {
			t.Errorf("%s, Bayes not ready: no-Bayes score %v, want the set-0 scores in it", weights, nb)
		}
		bayes.Learn(ctx, mem, "s", []string{"spamword"}, bayes.ClassSpam, false)
		bayes.Learn(ctx, mem, "h", []string{"hamword"}, bayes.ClassHam, false)
		r, _ = c.Check(ctx, msg(t, phish), nil)
		got = signals(r)
		if _, ok := got["sa-SA_ONLY_NB"]; ok || got["sa-SA_PW"] != 1.5 {
			t.Errorf("%s, Bayes ready: signals %v, want SA_PW 1.5 and no SA_ONLY_NB (set 2)", weights, got)
		}
		if nb := OutcomeOf(r).NoBayesScore; nb < 6 {
			t.Errorf("%s, Bayes ready: no-Bayes score %v, want the set-0 scores in it", weights, nb)
		}
	}
}

// spooled is a body that is not in memory as a BytesBody (the filter's
// spool).
type spooled struct{ message.BytesBody }

// ruleMessage gives the rules the message that sa.FromRaw builds from the
// kept header in wire form and the body, whatever holds the body.
func TestRuleMessageRaw(t *testing.T) {
	ham, spam := corpus(t, 200)
	c := newCheck(t, nil)
	for _, m := range append(ham, spam...) {
		var raw bytes.Buffer
		var kept message.Header
		for _, f := range m.Header {
			if !c.ignore.Match(strings.ToLower(f.Name)) {
				kept = append(kept, f)
			}
		}
		kept.WriteTo(&raw)
		raw.ReadFrom(m.BodyReader())
		want := sa.FromRaw(raw.Bytes())
		want.Raw = nil
		for _, body := range []message.Body{m.Body, spooled{m.Body.(message.BytesBody)}} {
			got := ruleMessage(&message.Message{Header: m.Header, Body: body}, c.ignore, nil)
			got.EnvelopeFrom, got.HasEnvelopeFrom, got.Relays = "", false, nil
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%T body: ruleMessage differs from sa.FromRaw of %q", body, m.Header.Get("Message-ID"))
			}
		}
	}
}
