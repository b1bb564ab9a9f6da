package auth

import (
	"os"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns"
)

func load(t *testing.T, text string) (*Config, error) {
	t.Helper()
	cfg, err := policy.Load("t.toml", []byte(text), []policy.Module{dns.Section(), Module(nil, nil)})
	if err != nil {
		return nil, err
	}
	return cfg.Sections["auth"].(*Config), nil
}

func TestConfigLoad(t *testing.T) {
	// actions tables merge with the defaults.
	c, err := load(t, "[auth.spf]\nactions = { fail = \"reject\" }\nreceived_spf = true\n[auth]\nexempt_domains = [\"Lists.Example\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.SPF.Actions["fail"] != policy.ActionReject || c.SPF.Actions["temperror"] != policy.ActionTempfail || !c.SPF.ReceivedSPF {
		t.Errorf("spf %+v", c.SPF)
	}
	a := newAuth(c, nil, nil, nil)
	if !a.exemptDomain("bounces.lists.example") || a.exemptDomain("example") {
		t.Error("exempt domains")
	}
	for _, bad := range []struct{ text, key string }{
		{"[auth.spf]\nactions = { failed = \"reject\" }\n", "auth.spf.actions.failed"},
		{"[auth.dkim]\nscores = { softfail = 1.0 }\n", "auth.dkim.scores.softfail"},
		{"[auth.dmarc]\nreject_reply = \"451 4.7.1 later\"\n", "auth.dmarc.reject_reply"},
		{"[auth.spf]\nmax_lookups = 0\n", "auth.spf.max_lookups"},
		{"[auth.dkim]\nmax_signatures = 0\n", "auth.dkim.max_signatures"},
		{"[auth]\nexempt_domains = [\"a b\"]\n", "auth.exempt_domains"},
		{"[auth.dmarc]\nhonour_policy = true\n", "auth.dmarc.honour_policy"},
	} {
		_, err := load(t, bad.text)
		if err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("%q: %v, want an error naming %s", bad.text, err, bad.key)
		}
	}
}

// The shipped example config loads with these modules and keeps the
// defaults (the example documents them).
func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../../examples/mailwarden.toml")
	if err != nil {
		t.Skip(err)
	}
	// Other modules' sections are not ours: keep only [dns] and [auth*].
	var keep []string
	on := false
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "[") {
			on = strings.HasPrefix(l, "[dns]") || strings.HasPrefix(l, "[auth")
		}
		if on {
			keep = append(keep, l)
		}
	}
	c, err := load(t, strings.Join(keep, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.SPF.MaxLookups != d.SPF.MaxLookups || c.DKIM.MaxSignatures != d.DKIM.MaxSignatures || c.DMARC.RejectReply != d.DMARC.RejectReply ||
		c.DMARC.HonorPolicy != d.DMARC.HonorPolicy || len(c.SPF.Scores) != len(d.SPF.Scores) || c.SPF.Scores["fail"] != d.SPF.Scores["fail"] {
		t.Errorf("example differs from the defaults: %+v", c)
	}
}
