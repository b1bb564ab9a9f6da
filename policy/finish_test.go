package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy/message"
)

// fakeFinisher records the header it was given and returns fields or err.
type fakeFinisher struct {
	name   string
	err    error
	got    message.Header
	called int
}

func (f *fakeFinisher) Name() string { return f.name }
func (f *fakeFinisher) Check(context.Context, *message.Message, Results) (Result, error) {
	panic("a finisher must not run as a check")
}
func (f *fakeFinisher) Finish(_ context.Context, _ *message.Message, h message.Header, _ *Verdict) ([]message.Field, error) {
	f.called++
	f.got = h
	if f.err != nil {
		return nil, f.err
	}
	return []message.Field{{Name: "DKIM-Signature", Value: " v=1; d=" + f.name}}, nil
}

// TestFinisher: a finisher sees the header as it will leave (our
// Authentication-Results on top, a forged one claiming our id gone), its
// fields go to the very top, a second finisher sees the first's fields;
// an error tempfails (on_error) or delivers unchanged (accept); a
// rejected message is not finished.
func TestFinisher(t *testing.T) {
	a, b := &fakeFinisher{name: "a"}, &fakeFinisher{name: "b"}
	p := newPipeline(t, "", step(a), step(b))
	m := testMessage()
	m.Header = append(m.Header, message.Field{Name: "Authentication-Results", Value: " mx.test; spf=pass"})
	v := p.Run(context.Background(), m)
	if v.Action != ActionAccept || a.called != 1 || b.called != 1 {
		t.Fatalf("action %s, calls %d %d", v.Action, a.called, b.called)
	}
	for _, c := range v.Checks {
		if c.Name == "a" || c.Name == "b" {
			t.Errorf("finisher %s ran as a check", c.Name)
		}
	}
	if got := names(a.got); got != "Authentication-Results,X-Spam-Status,From,Subject" {
		t.Errorf("a saw %s", got)
	}
	if strings.Contains(a.got[0].Value, "spf=pass") {
		t.Error("a saw the forged Authentication-Results")
	}
	if got := names(b.got); got != "DKIM-Signature,Authentication-Results,X-Spam-Status,From,Subject" {
		t.Errorf("b saw %s", got)
	}
	if len(v.Prepend) < 3 || v.Prepend[0].Value != " v=1; d=b" || v.Prepend[1].Value != " v=1; d=a" || v.Prepend[2].Name != "Authentication-Results" {
		t.Errorf("prepend %+v", v.Prepend)
	}

	bad := &fakeFinisher{name: "sign", err: errors.New("no key")}
	p = newPipeline(t, "", step(bad))
	v = p.Run(context.Background(), testMessage())
	if v.Action != ActionTempfail || !v.HasReason("sign-error") || v.Reply.Code/100 != 4 {
		t.Errorf("failing finisher: %s %v %+v", v.Action, v.Reasons, v.Reply)
	}
	if _, ok := header(v, "DKIM-Signature"); ok {
		t.Error("failing finisher added a field")
	}
	p = newPipeline(t, "", step(&fakeFinisher{name: "sign", err: errors.New("no key")}, onError(ActionAccept)))
	if v = p.Run(context.Background(), testMessage()); v.Action != ActionAccept {
		t.Errorf("on_error accept: %s", v.Action)
	}

	late := &fakeFinisher{name: "late"}
	p = newPipeline(t, "", step(returns("virus", Result{Status: "infected", Action: ActionReject})), step(late))
	if v = p.Run(context.Background(), testMessage()); v.Action != ActionReject || late.called != 0 {
		t.Errorf("rejected message: %s, finisher called %d times", v.Action, late.called)
	}
}

func names(h message.Header) string {
	var n []string
	for _, f := range h {
		n = append(n, f.Name)
	}
	return strings.Join(n, ",")
}
