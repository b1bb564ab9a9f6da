package spam

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
)

// alCheck is a check with autolearn on and a weights file whose no-Bayes
// model gives header and body signals known points, and whose Bayes model
// makes Bayes decide everything (so a Bayes-only verdict is easy to build).
func alCheck(t *testing.T, mem *bayes.Memory, mod func(*Config)) *Check {
	t.Helper()
	file := filepath.Join(t.TempDir(), "w.toml")
	os.WriteFile(file, []byte(`
[bayes]
intercept = 5.0
bayes_logit = 5.0
[nobayes]
intercept = 0.0
[nobayes.signals]
missing-date = 8.0
missing-message-id = 4.0
html-only = 7.0
hidden-text = 6.0
`), 0o644)
	return newCheck(t, func(cfg *Config, o *Options) {
		cfg.Weights = file
		cfg.Autolearn.Enabled = true
		cfg.Bayes.MinHam, cfg.Bayes.MinSpam = 1, 1
		o.Tokens = mem
		if mod != nil {
			mod(cfg)
		}
	})
}

const (
	// header 12 (missing-date, missing-message-id), body 13 (html-only,
	// hidden-text): 25 without Bayes.
	confidentSpam = "From: a@example.com\nTo: b@example.org\nSubject: x\nMIME-Version: 1.0\nContent-Type: text/html\n\n<p>Buy</p><div style=\"display:none\">words</div>\n"
	// header 12, body 0.
	headerOnly = "From: a@example.com\nTo: b@example.org\nSubject: x\n\nhello\n"
)

func TestAutolearnClass(t *testing.T) {
	c := alCheck(t, bayes.NewMemory(), nil)
	ctx := context.Background()
	cases := []struct {
		name   string
		raw    string
		status policy.Status
		want   bayes.Class
	}{
		{"confident spam", confidentSpam, StatusSpam, bayes.ClassSpam},
		{"check did not say spam", confidentSpam, StatusUnsure, ""},
		{"no body points", headerOnly, StatusSpam, ""},
		{"clean ham", plain, StatusHam, bayes.ClassHam},
		{"clean but check said spam", plain, StatusSpam, ""},
	}
	for _, tc := range cases {
		r, _ := c.Check(ctx, msg(t, tc.raw), nil)
		if got := c.AutolearnClass(OutcomeOf(r), tc.status); got != tc.want {
			t.Errorf("%s: %q, want %q (outcome %+v)", tc.name, got, tc.want, OutcomeOf(r))
		}
	}
	// Raise the bar above 25: no longer confident.
	c = alCheck(t, bayes.NewMemory(), func(cfg *Config) { cfg.Autolearn.SpamAbove = 26 })
	r, _ := c.Check(ctx, msg(t, confidentSpam), nil)
	if got := c.AutolearnClass(OutcomeOf(r), StatusSpam); got != "" {
		t.Errorf("below spam_above: %q", got)
	}
}

// Bayes' own vote never makes a message confident: a message that is spam
// only because Bayes says so is not learned.
func TestAutolearnIgnoresBayes(t *testing.T) {
	mem := bayes.NewMemory()
	c := alCheck(t, mem, nil)
	ctx := context.Background()
	m := msg(t, plain)
	bayes.Learn(ctx, mem, "s", Tokens(m, c.Ignore()), bayes.ClassSpam, false)
	bayes.Learn(ctx, mem, "h", []string{"unrelated"}, bayes.ClassHam, false)
	r, _ := c.Check(ctx, msg(t, plain), nil)
	if r.Status != StatusSpam {
		t.Fatalf("setup: Bayes should make it spam, got %v %s", r.Status, r.Detail)
	}
	if got := c.AutolearnClass(OutcomeOf(r), r.Status); got != "" {
		t.Errorf("learned %q from Bayes' own vote", got)
	}
}

// noautolearn signals (SpamAssassin tflags) do not count.
func TestAutolearnNoautolearnRules(t *testing.T) {
	c := alCheck(t, bayes.NewMemory(), nil)
	c.ruleInfo = func(name string) (SignalInfo, bool) {
		if name == "hidden-text" {
			return SignalInfo{Kind: KindBody, NoAutolearn: true}, true
		}
		return SignalInfo{}, false
	}
	r, _ := c.Check(context.Background(), msg(t, confidentSpam), nil)
	if got := c.AutolearnClass(OutcomeOf(r), StatusSpam); got != "" {
		t.Errorf("without the noautolearn hidden-text the score is 19 < 24, learned %q", got)
	}
}

// Observe learns in the background and returns at once.
func TestAutolearnObserve(t *testing.T) {
	mem := bayes.NewMemory()
	c := alCheck(t, mem, nil)
	done := make(chan bayes.Class, 1)
	c.learner.done = func(cl bayes.Class, err error) {
		if err != nil {
			t.Error(err)
		}
		done <- cl
	}
	ctx := context.Background()
	m := msg(t, confidentSpam)
	r, _ := c.Check(ctx, m, nil)
	r.Status = StatusSpam
	v := &policy.Verdict{Checks: []policy.CheckReport{{Name: Name, Result: r}}}
	if err := c.Observe(ctx, m, v); err != nil {
		t.Fatal(err)
	}
	if cl := <-done; cl != bayes.ClassSpam {
		t.Fatalf("learned %q", cl)
	}
	_, total, _ := mem.Counts(ctx, nil)
	if total.Spam != 1 || c.learner.Learned.Load() != 1 {
		t.Errorf("store %+v, learned %d", total, c.learner.Learned.Load())
	}
	// A full queue drops instead of waiting.
	for range cap(c.learner.pending) {
		c.learner.pending <- struct{}{}
	}
	c.Observe(ctx, m, v)
	if c.learner.Dropped.Load() != 1 {
		t.Errorf("dropped %d", c.learner.Dropped.Load())
	}
}

// With max_tokens, each autolearn write is followed by expiry.
func TestAutolearnExpires(t *testing.T) {
	mem := bayes.NewMemory()
	c := alCheck(t, mem, func(cfg *Config) { cfg.Bayes.MaxTokens = 4 })
	done := make(chan error, 1)
	c.learner.done = func(_ bayes.Class, err error) { done <- err }
	ctx := context.Background()
	m := msg(t, confidentSpam)
	r, _ := c.Check(ctx, m, nil)
	r.Status = StatusSpam
	c.Observe(ctx, m, &policy.Verdict{Checks: []policy.CheckReport{{Name: Name, Result: r}}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(OutcomeOf(r).Features.Tokens); n <= 4 {
		t.Fatalf("setup: only %d tokens", n)
	}
	// Everything was seen in the same second: minAge 0 lets all go but 3.
	if mem.Len() != 3 {
		t.Errorf("store holds %d tokens after expiry to 75 %% of 4", mem.Len())
	}
}
