package quarantine

import (
	"slices"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
)

func TestHeld(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.Lists.AllowRecipients = []string{"boss@example.org"}
	cfg.Score.Thresholds = policy.Thresholds{AddHeader: 5, Quarantine: 10, Reject: 20}
	rcpts := []string{"a@example.org", "boss@example.org"}
	spamOnly := &policy.Verdict{Score: 12, Reasons: []string{policy.ReasonSpamScore}, Checks: []policy.CheckReport{{Name: "spam", Result: policy.Result{Score: 12}}}}
	if got := Held(cfg, spamOnly, rcpts); !slices.Equal(got, []string{"a@example.org"}) {
		t.Errorf("score quarantine: held %v, want the one not allow-listed", got)
	}
	cfg.Score.Domains = map[string]policy.Thresholds{"lenient.example": {AddHeader: 5, Quarantine: 30, Reject: 40}}
	if got := Held(cfg, spamOnly, []string{"x@lenient.example", "a@example.org"}); !slices.Equal(got, []string{"a@example.org"}) {
		t.Errorf("per-domain thresholds: held %v", got)
	}
	virus := &policy.Verdict{Checks: []policy.CheckReport{{Name: "virus", Result: policy.Result{Action: policy.ActionQuarantine, Mandatory: true}}}}
	if got := Held(cfg, virus, rcpts); !slices.Equal(got, rcpts) {
		t.Errorf("malware: held %v, want everyone", got)
	}
	oversize := &policy.Verdict{Action: policy.ActionQuarantine, Reasons: []string{policy.ReasonOversize}}
	if got := Held(cfg, oversize, []string{"a@example.org"}); !slices.Equal(got, []string{"a@example.org"}) {
		t.Errorf("oversize (no check ran, no score): held %v, want it held", got)
	}
	rule := &policy.Verdict{Checks: []policy.CheckReport{{Name: "rules", Result: policy.Result{Action: policy.ActionQuarantine}}}}
	if got := Held(cfg, rule, []string{"a@example.org"}); !slices.Equal(got, []string{"a@example.org"}) {
		t.Errorf("rule: held %v", got)
	}
}
