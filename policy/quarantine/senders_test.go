package quarantine

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
)

// A user changes and reads only their own list; an admin any; every
// change is audited; the null sender is never listed.
func TestSenderListRoles(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	it := e.put(t, CategorySpam, "a@example.org", "b@example.org")
	a := user("a@example.org", "alias@example.org")
	if err := e.q.ListSender(ctx, a, "A@Example.org", "<Bounce@Spam.Example>", ListAllow, it); err != nil {
		t.Fatal(err)
	}
	if err := e.q.ListSender(ctx, a, "alias@example.org", "x@spam.example", ListDeny, nil); err != nil {
		t.Errorf("user's second address: %v", err)
	}
	for _, err := range []error{
		e.q.ListSender(ctx, a, "b@example.org", "bounce@spam.example", ListAllow, it),
		e.q.UnlistSender(ctx, a, "b@example.org", "bounce@spam.example"),
		func() error { _, err := e.q.SenderList(ctx, a, "b@example.org"); return err }(),
		e.q.ListSender(ctx, Actor{Name: "nobody"}, "a@example.org", "s@y", ListAllow, nil),
	} {
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("another's list: %v, want ErrForbidden", err)
		}
	}
	if err := e.q.ListSender(ctx, admin, "b@example.org", "bounce@spam.example", ListDeny, it); err != nil {
		t.Errorf("admin: %v", err)
	}
	if err := e.q.ListSender(ctx, a, "a@example.org", "", ListAllow, it); !errors.Is(err, ErrNullSender) {
		t.Errorf("null sender: %v", err)
	}
	l, err := e.q.SenderList(ctx, a, "a@example.org")
	if err != nil || len(l) != 1 || l[0].Sender != "bounce@spam.example" || l[0].Kind != ListAllow || l[0].By != "a@example.org" || l[0].ID != it.ID || !l[0].At.Equal(t0) {
		t.Errorf("a's list: %+v %v", l, err)
	}
	p, err := e.q.Personal(ctx, "Bounce@spam.example", []string{"A@example.org", "b@example.org", "c@example.org"})
	if err != nil || !slices.Equal(p.Allow, []string{"A@example.org"}) || !slices.Equal(p.Deny, []string{"b@example.org"}) {
		t.Errorf("Personal: %+v %v", p, err)
	}
	if p, _ := e.q.Personal(ctx, "", []string{"a@example.org"}); len(p.Allow)+len(p.Deny) != 0 {
		t.Errorf("null sender looked up: %+v", p)
	}
	if err := e.q.UnlistSender(ctx, admin, "a@example.org", "bounce@spam.example"); err != nil {
		t.Errorf("admin removes a's entry: %v", err)
	}
	if err := e.q.UnlistSender(ctx, a, "a@example.org", "bounce@spam.example"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing a missing entry: %v", err)
	}
	log, _ := e.q.Audit(ctx, 100)
	var acts []string
	for _, x := range log {
		acts = append(acts, x.Action.String()+":"+x.Actor+":"+x.Rcpt+":"+x.Detail)
	}
	want := []string{"unlist:admin:a@example.org:bounce@spam.example", "deny:admin:b@example.org:bounce@spam.example",
		"deny:a@example.org:alias@example.org:x@spam.example", "allow:a@example.org:a@example.org:bounce@spam.example"}
	if !slices.Equal(acts, want) {
		t.Errorf("audit:\n%q\nwant\n%q", acts, want)
	}
}

func TestPersonalApply(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.Score.Thresholds = policy.Thresholds{AddHeader: 5, Quarantine: 10, Reject: 20}
	rc := []string{"a@x", "b@x"}
	spamQ := func() *policy.Verdict {
		return &policy.Verdict{Action: policy.ActionQuarantine, WouldBe: policy.ActionQuarantine, Score: 12, Reasons: []string{"spam-score"}}
	}
	spamR := func() *policy.Verdict {
		return &policy.Verdict{Action: policy.ActionReject, WouldBe: policy.ActionReject, Score: 25, Reply: cfg.Replies.Reject}
	}
	ham := func() *policy.Verdict { return &policy.Verdict{Action: policy.ActionAccept} }
	virus := func() *policy.Verdict {
		return &policy.Verdict{Action: policy.ActionQuarantine, Checks: []policy.CheckReport{{Name: "virus",
			Result: policy.Result{Action: policy.ActionQuarantine, Mandatory: true}}}}
	}
	for _, c := range []struct {
		name       string
		v          *policy.Verdict
		cat        Category
		p          Personal
		deny       policy.Action
		split      bool
		wantAction policy.Action
		wantHeld   []string
		wantCat    Category
		wantReason string
	}{
		{"no lists", spamQ(), CategorySpam, Personal{}, policy.ActionQuarantine, true, policy.ActionQuarantine, rc, CategorySpam, ""},
		{"one allows spam", spamQ(), CategorySpam, Personal{Allow: []string{"A@x"}}, policy.ActionQuarantine, true, policy.ActionQuarantine, []string{"b@x"}, CategorySpam, ReasonSenderAllowed},
		{"all allow spam", spamQ(), CategorySpam, Personal{Allow: rc}, policy.ActionQuarantine, true, policy.ActionAccept, nil, CategorySpam, ReasonSenderAllowed},
		{"one allows a spam reject: the other's copy held", spamR(), CategorySpam, Personal{Allow: []string{"a@x"}}, policy.ActionQuarantine, true, policy.ActionQuarantine, []string{"b@x"}, CategorySpam, ReasonSenderAllowed},
		{"all allow a spam reject", spamR(), CategorySpam, Personal{Allow: rc}, policy.ActionQuarantine, true, policy.ActionAccept, nil, CategorySpam, ReasonSenderAllowed},
		{"hold mode, one allows: unchanged", spamQ(), CategorySpam, Personal{Allow: []string{"a@x"}}, policy.ActionQuarantine, false, policy.ActionQuarantine, rc, CategorySpam, ""},
		{"virus is never allowed", virus(), CategoryVirus, Personal{Allow: rc}, policy.ActionQuarantine, true, policy.ActionQuarantine, rc, CategoryVirus, ""},
		{"dmarc is not spam", &policy.Verdict{Action: policy.ActionQuarantine, Checks: []policy.CheckReport{{Name: "dmarc", Result: policy.Result{Action: policy.ActionQuarantine}}}}, CategoryDMARC, Personal{Allow: rc}, policy.ActionQuarantine, true, policy.ActionQuarantine, rc, CategoryDMARC, ""},
		{"one denies ham", ham(), CategorySpam, Personal{Deny: []string{"b@x"}}, policy.ActionQuarantine, true, policy.ActionQuarantine, []string{"b@x"}, CategoryPolicy, ReasonSenderDenied},
		{"hold mode, one denies: unchanged", ham(), CategorySpam, Personal{Deny: []string{"b@x"}}, policy.ActionQuarantine, false, policy.ActionAccept, nil, CategorySpam, ""},
		{"all deny, reject", ham(), CategorySpam, Personal{Deny: rc}, policy.ActionReject, true, policy.ActionReject, nil, CategorySpam, ReasonSenderDenied},
		{"one denies, reject asked: that copy held", ham(), CategorySpam, Personal{Deny: []string{"a@x"}}, policy.ActionReject, true, policy.ActionQuarantine, []string{"a@x"}, CategoryPolicy, ReasonSenderDenied},
		{"allow wins over deny for spam", spamQ(), CategorySpam, Personal{Allow: []string{"a@x"}, Deny: []string{"b@x"}}, policy.ActionQuarantine, true, policy.ActionQuarantine, []string{"b@x"}, CategorySpam, ReasonSenderAllowed},
		{"accept-all mode", &policy.Verdict{Action: policy.ActionAccept, WouldBe: policy.ActionAccept, Mode: policy.ModeAcceptAll}, CategorySpam, Personal{Deny: rc}, policy.ActionQuarantine, true, policy.ActionAccept, nil, CategorySpam, ""},
		{"monitor mode", &policy.Verdict{Action: policy.ActionAccept, WouldBe: policy.ActionQuarantine, Mode: policy.ModeMonitor}, CategorySpam, Personal{Deny: rc}, policy.ActionQuarantine, true, policy.ActionAccept, nil, CategorySpam, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			plan := c.p.Apply(cfg, c.v, rc, c.cat, c.deny, c.split)
			if c.v.Action != c.wantAction || !slices.Equal(plan.Held, c.wantHeld) || plan.Category != c.wantCat {
				t.Errorf("action %v held %v category %v; want %v %v %v", c.v.Action, plan.Held, plan.Category, c.wantAction, c.wantHeld, c.wantCat)
			}
			if c.wantReason != "" && !slices.Contains(c.v.Reasons, c.wantReason) {
				t.Errorf("reasons %v lack %s", c.v.Reasons, c.wantReason)
			}
			if c.wantReason == "" && (slices.Contains(c.v.Reasons, ReasonSenderAllowed) || slices.Contains(c.v.Reasons, ReasonSenderDenied)) {
				t.Errorf("reasons %v", c.v.Reasons)
			}
			if c.v.Action == policy.ActionReject && c.v.Reply.Code/100 != 5 {
				t.Errorf("reject without a 5xx reply: %+v", c.v.Reply)
			}
			if c.v.Action != policy.ActionReject && !c.v.Reply.IsZero() {
				t.Errorf("reply %+v on %v", c.v.Reply, c.v.Action)
			}
		})
	}
}
