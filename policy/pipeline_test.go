package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy/message"
)

// fakeCheck is a Check whose behaviour the test supplies.
type fakeCheck struct {
	name  string
	after []string
	fn    func(ctx context.Context, m *message.Message, prior Results) (Result, error)
	calls atomic.Int32
}

func (c *fakeCheck) Name() string    { return c.name }
func (c *fakeCheck) After() []string { return c.after }
func (c *fakeCheck) Check(ctx context.Context, m *message.Message, prior Results) (Result, error) {
	c.calls.Add(1)
	if c.fn == nil {
		return Result{Status: StatusPass}, nil
	}
	return c.fn(ctx, m, prior)
}

// returns is a check that always gives r.
func returns(name string, r Result) *fakeCheck {
	return &fakeCheck{name: name, fn: func(context.Context, *message.Message, Results) (Result, error) { return r, nil }}
}

func step(c Check, mod ...func(*StepConfig)) Step {
	s := Step{Check: c, StepConfig: DefaultStep()}
	for _, f := range mod {
		f(&s.StepConfig)
	}
	return s
}

func timeout(d time.Duration) func(*StepConfig) {
	return func(s *StepConfig) { s.Timeout = Duration(d) }
}
func onError(a Action) func(*StepConfig) { return func(s *StepConfig) { s.OnError = a } }

func stepsModule(steps ...Step) Module {
	return Module{
		Name:    "fakes",
		Default: func() any { return &struct{}{} },
		Build:   func(any, *Env) ([]Step, error) { return steps, nil },
	}
}

const baseTOML = `
authserv_id = "mx.test"
local_domains = ["example.org"]
`

func newPipeline(t testing.TB, extra string, steps ...Step) *Pipeline {
	t.Helper()
	cfg, err := Load("test.toml", []byte(baseTOML+extra), []Module{stepsModule(steps...)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, []Module{stepsModule(steps...)}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func testMessage(rcpts ...string) *message.Message {
	if len(rcpts) == 0 {
		rcpts = []string{"user@example.org"}
	}
	return &message.Message{
		QueueID:  "Q1",
		Client:   message.Client{Addr: netip.MustParseAddr("198.51.100.1"), HELO: "mail.sender.test", Name: "mail.sender.test"},
		MailFrom: "alice@sender.test",
		Rcpts:    rcpts,
		Header:   message.Header{{Name: "From", Value: " alice@sender.test"}, {Name: "Subject", Value: " hello"}},
		Body:     message.BytesBody("just a test\r\n"),
	}
}

func report(t *testing.T, v *Verdict, name string) CheckReport {
	t.Helper()
	for _, c := range v.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no report for check %q in %+v", name, v.Checks)
	return CheckReport{}
}

func header(v *Verdict, name string) (string, bool) {
	for _, f := range v.Prepend {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

func TestPipelineRunsIndependentChecksConcurrently(t *testing.T) {
	aStarted, bStarted := make(chan struct{}), make(chan struct{})
	rendezvous := func(mine, other chan struct{}) func(context.Context, *message.Message, Results) (Result, error) {
		return func(ctx context.Context, _ *message.Message, _ Results) (Result, error) {
			close(mine)
			select {
			case <-other:
				return Result{Status: StatusPass}, nil
			case <-time.After(10 * time.Second): // fires only when the checks run one after the other
				return Result{}, errors.New("the other check never started: checks run sequentially")
			}
		}
	}
	p := newPipeline(t, "",
		step(&fakeCheck{name: "a", fn: rendezvous(aStarted, bStarted)}),
		step(&fakeCheck{name: "b", fn: rendezvous(bStarted, aStarted)}))
	v := p.Run(context.Background(), testMessage())
	for _, n := range []string{"a", "b"} {
		if r := report(t, v, n); r.Status != StatusPass || r.Error != "" {
			t.Errorf("%s: %+v", n, r)
		}
	}
	if v.Action != ActionAccept {
		t.Errorf("action %v", v.Action)
	}
}

func TestPipelineAfterOrdering(t *testing.T) {
	var mu sync.Mutex
	var finished []string
	done := func(name string, r Result) func(context.Context, *message.Message, Results) (Result, error) {
		return func(context.Context, *message.Message, Results) (Result, error) {
			mu.Lock()
			finished = append(finished, name)
			mu.Unlock()
			return r, nil
		}
	}
	var seen Results
	a := &fakeCheck{name: "a", fn: done("a", Result{Status: "fail", Data: "from-a", Score: 1})}
	c := &fakeCheck{name: "c", fn: done("c", Result{Status: StatusPass})}
	b := &fakeCheck{name: "b", after: []string{"a", "disabled-check"}, fn: func(_ context.Context, _ *message.Message, prior Results) (Result, error) {
		seen = prior
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(finished, "a") {
			return Result{}, errors.New("b ran before a finished")
		}
		return Result{Status: StatusPass, Data: prior["a"].Data.(string) + "+b"}, nil
	}}
	d := &fakeCheck{name: "d", after: []string{"b"}, fn: func(_ context.Context, _ *message.Message, prior Results) (Result, error) {
		if prior["b"].Data != "from-a+b" {
			return Result{}, fmt.Errorf("d saw b=%v", prior["b"].Data)
		}
		return Result{Status: StatusPass}, nil
	}}
	p := newPipeline(t, "", step(d), step(b), step(a), step(c))
	order := p.Checks()
	pos := func(n string) int { return slices.Index(order, n) }
	if !(pos("a") < pos("b") && pos("b") < pos("d") && pos("c") < pos("b")) || pos("lists") < 0 || pos("rules") < 0 {
		t.Errorf("run order %v", order)
	}
	v := p.Run(context.Background(), testMessage())
	for _, n := range []string{"a", "b", "c", "d"} {
		if r := report(t, v, n); r.Error != "" {
			t.Errorf("%s: %s", n, r.Error)
		}
	}
	if seen["a"].Status != "fail" || seen["a"].Data != "from-a" {
		t.Errorf("prior of b: %+v", seen)
	}
	if _, ok := seen["b"]; ok {
		t.Error("a check must not see its own result in prior")
	}
	if _, ok := seen["d"]; ok {
		t.Error("prior of b holds a later check")
	}
	if v.Score != 1 {
		t.Errorf("score %v", v.Score)
	}
}

func TestPipelineDependencyErrors(t *testing.T) {
	x := &fakeCheck{name: "x", after: []string{"y"}}
	y := &fakeCheck{name: "y", after: []string{"x"}}
	cfg, _ := Load("t", nil, nil)
	if _, err := New(cfg, []Module{stepsModule(step(x), step(y))}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "depend on each other") {
		t.Errorf("cycle: %v", err)
	}
	if _, err := New(cfg, []Module{stepsModule(step(&fakeCheck{name: "rules"}))}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "two checks named") {
		t.Errorf("duplicate name: %v", err)
	}
	closed := 0
	failing := Module{Name: "failing", Default: func() any { return &struct{}{} }, Build: func(_ any, env *Env) ([]Step, error) {
		env.OnClose(closerFunc(func() error { closed++; return nil }))
		return nil, errors.New("cannot build")
	}}
	if _, err := New(cfg, []Module{failing}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "failing: cannot build") {
		t.Errorf("build error: %v", err)
	}
	if closed != 1 {
		t.Errorf("services of a failed build closed %d times, want 1", closed)
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func TestPipelineAbandonsHungCheck(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	hang := &fakeCheck{name: "hang", fn: func(context.Context, *message.Message, Results) (Result, error) {
		<-block // ignores its context
		return Result{Status: StatusPass}, nil
	}}
	p := newPipeline(t, "", step(hang, timeout(30*time.Millisecond)), step(returns("ok", Result{Status: StatusPass, Score: 1})))
	v := p.Run(context.Background(), testMessage())
	if v.Action != ActionTempfail || !slices.Contains(v.Reasons, "hang-error") {
		t.Errorf("verdict %v %v", v.Action, v.Reasons)
	}
	if v.Reply != p.Config().Replies.Tempfail {
		t.Errorf("reply %v", v.Reply)
	}
	r := report(t, v, "hang")
	if r.Status != StatusError || !strings.Contains(r.Error, "deadline") {
		t.Errorf("report %+v", r)
	}
	if report(t, v, "ok").Status != StatusPass || v.Score != 1 {
		t.Error("the other check's result is kept")
	}
}

// A check abandoned at its deadline that keeps reading prior must not race
// with the pipeline writing the results of later levels (with -race).
func TestPipelineAbandonedCheckReadsPrior(t *testing.T) {
	finished := make(chan struct{}, 3)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	first := returns("first", Result{Status: StatusPass})
	late := &fakeCheck{name: "late", after: []string{"first"}, fn: func(ctx context.Context, _ *message.Message, prior Results) (Result, error) {
		go func() {
			<-ctx.Done()
			time.Sleep(20 * time.Millisecond) // let Run go on to the next level
			for range 100 {
				_ = prior["first"]
				_ = len(prior)
			}
			finished <- struct{}{}
		}()
		<-stop // ignores its context: abandoned
		return Result{}, nil
	}}
	next := &fakeCheck{name: "next", after: []string{"late"}}
	p := newPipeline(t, "", step(first), step(late, timeout(10*time.Millisecond)), step(next))
	for range 3 {
		v := p.Run(context.Background(), testMessage())
		if report(t, v, "late").Status != StatusError || report(t, v, "next").Status != StatusPass {
			t.Errorf("checks %+v", v.Checks)
		}
		<-finished
	}
}

func TestPipelineCheckErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fn      func(context.Context, *message.Message, Results) (Result, error)
		onError Action
		want    Action
		reasons []string
	}{
		{"panic", func(context.Context, *message.Message, Results) (Result, error) { panic("boom") }, ActionReject, ActionReject, []string{"x-error"}},
		{"nil map panic", func(context.Context, *message.Message, Results) (Result, error) {
			var m map[string]int
			m["a"]++
			return Result{}, nil
		}, ActionTempfail, ActionTempfail, []string{"x-error"}},
		{"error", func(context.Context, *message.Message, Results) (Result, error) {
			return Result{}, errors.New("no server")
		}, ActionTempfail, ActionTempfail, []string{"x-error"}},
		{"error, on_error quarantine", func(context.Context, *message.Message, Results) (Result, error) { return Result{}, errors.New("x") }, ActionQuarantine, ActionQuarantine, []string{"x-error"}},
		{"error, on_error accept", func(context.Context, *message.Message, Results) (Result, error) {
			return Result{Action: ActionReject}, errors.New("no server")
		}, ActionAccept, ActionAccept, nil},
		{"context respected", func(ctx context.Context, _ *message.Message, _ Results) (Result, error) {
			<-ctx.Done()
			return Result{}, ctx.Err()
		}, ActionDiscard, ActionDiscard, []string{"x-error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(t, "", step(&fakeCheck{name: "x", fn: tc.fn}, onError(tc.onError), timeout(50*time.Millisecond)))
			v := p.Run(context.Background(), testMessage())
			if v.Action != tc.want || !slices.Equal(v.Reasons, tc.reasons) {
				t.Errorf("got %v %q, want %v %q", v.Action, v.Reasons, tc.want, tc.reasons)
			}
			r := report(t, v, "x")
			if r.Status != StatusError || r.Error == "" {
				t.Errorf("report %+v", r)
			}
			if r.Action != tc.onError {
				t.Errorf("report action %v", r.Action)
			}
		})
	}
}

func TestPipelineMergeBySeverity(t *testing.T) {
	all := []Action{ActionAccept, ActionQuarantine, ActionTempfail, ActionDiscard, ActionReject}
	for _, a := range all {
		for _, b := range all {
			p := newPipeline(t, "",
				step(returns("a", Result{Status: "x", Action: a, Reasons: []string{"a-" + a.String()}})),
				step(returns("b", Result{Status: "x", Action: b, Reasons: []string{"b-" + b.String()}})))
			v := p.Run(context.Background(), testMessage())
			if want := max(a, b); v.Action != want || v.WouldBe != want {
				t.Errorf("%v + %v = %v, want %v", a, b, v.Action, want)
			}
			if !slices.Contains(v.Reasons, "a-"+a.String()) || !slices.Contains(v.Reasons, "b-"+b.String()) {
				t.Errorf("%v + %v: reasons %q must keep both", a, b, v.Reasons)
			}
		}
	}
}

func TestPipelineReplySelection(t *testing.T) {
	custom := Reply{554, "5.7.0", "Custom"}
	cfg := DefaultConfig()
	for _, tc := range []struct {
		name    string
		results []Result
		want    Reply
	}{
		{"generic reject", []Result{{Action: ActionReject}}, cfg.Replies.Reject},
		{"check's own reject reply", []Result{{Action: ActionReject, Reply: custom}}, custom},
		{"reply of the winning action", []Result{{Action: ActionTempfail, Reply: Reply{421, "4.3.2", "busy"}}, {Action: ActionReject, Reply: custom}}, custom},
		{"lower action's reply is dropped", []Result{{Action: ActionReject}, {Action: ActionTempfail, Reply: Reply{421, "4.3.2", "busy"}}}, cfg.Replies.Reject},
		{"same action: first reply kept", []Result{{Action: ActionReject, Reply: custom}, {Action: ActionReject, Reply: Reply{550, "5.1.1", "other"}}}, custom},
		{"same action: later reply fills in", []Result{{Action: ActionReject}, {Action: ActionReject, Reply: custom}}, custom},
		{"tempfail with a 5xx reply gets the generic 4xx", []Result{{Action: ActionTempfail, Reply: custom}}, cfg.Replies.Tempfail},
		{"reject with a 4xx reply gets the generic 5xx", []Result{{Action: ActionReject, Reply: Reply{451, "4.7.1", "x"}}}, cfg.Replies.Reject},
		{"accept has no reply", []Result{{Action: ActionAccept, Reply: custom}}, Reply{}},
	} {
		var steps []Step
		for i, r := range tc.results {
			steps = append(steps, step(returns(fmt.Sprintf("c%d", i), r)))
		}
		p := newPipeline(t, "", steps...)
		v := p.Run(context.Background(), testMessage())
		if v.Reply != tc.want {
			t.Errorf("%s: reply %v, want %v", tc.name, v.Reply, tc.want)
		}
	}
	// Quarantine reason: the check's own, with the reason codes.
	p := newPipeline(t, "", step(returns("q", Result{Action: ActionQuarantine, Reasons: []string{"q-hit"}, QuarantineReason: "q-special"})))
	v := p.Run(context.Background(), testMessage())
	if v.QuarantineReason != "q-special (q-hit)" {
		t.Errorf("quarantine reason %q", v.QuarantineReason)
	}
	p = newPipeline(t, "", step(returns("q", Result{Action: ActionQuarantine, Reasons: []string{"q-hit"}})))
	if v := p.Run(context.Background(), testMessage()); v.QuarantineReason != "held by mailwarden (q-hit)" {
		t.Errorf("default quarantine reason %q", v.QuarantineReason)
	}
}

func TestPipelineScoreThresholds(t *testing.T) {
	for _, tc := range []struct {
		score    float64
		want     Action
		flag     bool
		status   string
		spamCode bool
	}{
		{0, ActionAccept, false, "No, score=0.0 required=5.0", false},
		{4.9, ActionAccept, false, "No, score=4.9 required=5.0", false},
		{5, ActionAccept, true, "Yes, score=5.0 required=5.0", false},
		{10, ActionQuarantine, true, "Yes, score=10.0 required=5.0 reasons=spam-score", true},
		{19.9, ActionQuarantine, true, "Yes, score=19.9 required=5.0 reasons=spam-score", true},
		{20, ActionReject, true, "Yes, score=20.0 required=5.0 reasons=spam-score", true},
		{-3, ActionAccept, false, "No, score=-3.0 required=5.0", false},
	} {
		p := newPipeline(t, "", step(returns("s", Result{Status: "x", Score: tc.score})))
		v := p.Run(context.Background(), testMessage())
		if v.Action != tc.want || v.Score != tc.score {
			t.Errorf("score %v: %v (score %v), want %v", tc.score, v.Action, v.Score, tc.want)
		}
		if _, ok := header(v, "X-Spam-Flag"); ok != tc.flag {
			t.Errorf("score %v: flag header %v, want %v", tc.score, ok, tc.flag)
		}
		if st, _ := header(v, "X-Spam-Status"); strings.TrimSpace(st) != tc.status {
			t.Errorf("score %v: status %q, want %q", tc.score, st, tc.status)
		}
		if slices.Contains(v.Reasons, "spam-score") != tc.spamCode {
			t.Errorf("score %v: reasons %q", tc.score, v.Reasons)
		}
		if tc.want == ActionQuarantine && !strings.HasPrefix(v.QuarantineReason, "spam-score") {
			t.Errorf("score %v: quarantine reason %q", tc.score, v.QuarantineReason)
		}
	}
	// A check's own action above the score's keeps its reply.
	p := newPipeline(t, "", step(returns("s", Result{Score: 12, Action: ActionReject, Reply: Reply{554, "5.7.1", "virus"}})))
	if v := p.Run(context.Background(), testMessage()); v.Action != ActionReject || v.Reply.Code != 554 {
		t.Errorf("reject + quarantine score: %v %v", v.Action, v.Reply)
	}
	// Disabled levels.
	p = newPipeline(t, "[score]\nadd_header = 0\nquarantine = 0\nreject = 0\n", step(returns("s", Result{Score: 100})))
	v := p.Run(context.Background(), testMessage())
	if v.Action != ActionAccept {
		t.Errorf("all levels off: %v", v.Action)
	}
	if _, ok := header(v, "X-Spam-Flag"); ok {
		t.Error("add_header = 0 adds no flag")
	}
}

func TestPipelinePerDomainThresholds(t *testing.T) {
	extra := `
[score.domain."strict.test"]
add_header = 1.0
quarantine = 2.0
reject = 3.0

[score.domain."lenient.test"]
add_header = 5.0
quarantine = 15.0
reject = 40.0

[score.domain."noreject.test"]
add_header = 5.0
quarantine = 10.0
reject = 0.0
`
	for _, tc := range []struct {
		score float64
		rcpts []string
		want  Action
	}{
		{3, []string{"a@strict.test"}, ActionReject},
		{2, []string{"a@strict.test"}, ActionQuarantine},
		{3, []string{"a@STRICT.test"}, ActionReject}, // domains compare without case
		{25, []string{"a@lenient.test"}, ActionQuarantine},
		{25, []string{"a@other.test"}, ActionReject},                        // the global thresholds
		{25, []string{"a@strict.test", "b@lenient.test"}, ActionQuarantine}, // most lenient wins
		{12, []string{"a@strict.test", "b@lenient.test"}, ActionAccept},
		{12, []string{"a@other.test", "b@lenient.test"}, ActionAccept},
		{100, []string{"a@noreject.test"}, ActionQuarantine},
		{100, []string{"a@strict.test", "b@noreject.test"}, ActionQuarantine}, // 0 = never: the most lenient
		{100, nil, ActionReject},
	} {
		p := newPipeline(t, extra, step(returns("s", Result{Score: tc.score})))
		m := testMessage()
		m.Rcpts = tc.rcpts
		if v := p.Run(context.Background(), m); v.Action != tc.want {
			t.Errorf("score %v to %v: %v, want %v", tc.score, tc.rcpts, v.Action, tc.want)
		}
	}
	// The status header shows the threshold that applied.
	p := newPipeline(t, extra, step(returns("s", Result{Score: 1.5})))
	m := testMessage("a@strict.test")
	st, _ := header(p.Run(context.Background(), m), "X-Spam-Status")
	if !strings.Contains(st, "Yes, score=1.5 required=1.0") {
		t.Errorf("status %q", st)
	}
}

func TestPipelineAllowListAndMandatory(t *testing.T) {
	extra := "[lists]\nallow_senders = [\"friend.test\"]\nallow_ips = [\"192.0.2.0/24\"]\n"
	for _, tc := range []struct {
		name   string
		from   string
		ip     string
		r      Result
		want   Action
		reason string
	}{
		{"allow-listed sender softens reject", "a@friend.test", "198.51.100.1", Result{Action: ActionReject, Reasons: []string{"x"}}, ActionAccept, "allowlisted"},
		{"allow-listed IP softens tempfail", "a@other.test", "192.0.2.9", Result{Action: ActionTempfail}, ActionAccept, "allowlisted"},
		{"allow-listed sender softens a high score", "a@friend.test", "198.51.100.1", Result{Score: 50}, ActionAccept, "allowlisted"},
		{"mandatory is not softened", "a@friend.test", "198.51.100.1", Result{Action: ActionReject, Mandatory: true, Reasons: []string{"virus-infected"}}, ActionReject, "virus-infected"},
		{"not listed", "a@other.test", "198.51.100.1", Result{Action: ActionReject, Reasons: []string{"x"}}, ActionReject, "x"},
	} {
		p := newPipeline(t, extra, step(returns("x", tc.r)))
		m := testMessage()
		m.MailFrom = tc.from
		m.Client.Addr = netip.MustParseAddr(tc.ip)
		v := p.Run(context.Background(), m)
		if v.Action != tc.want || !slices.Contains(v.Reasons, tc.reason) {
			t.Errorf("%s: %v %q, want %v with %q", tc.name, v.Action, v.Reasons, tc.want, tc.reason)
		}
		if tc.want == ActionAccept && !v.Reply.IsZero() {
			t.Errorf("%s: accepted with a reply %v", tc.name, v.Reply)
		}
	}
}

func TestPipelineProtectedRecipients(t *testing.T) {
	reject := Result{Action: ActionReject, Reasons: []string{"rule-x"}}
	for _, tc := range []struct {
		name   string
		rcpts  []string
		r      Result
		want   Action
		reason string
	}{
		{"postmaster only", []string{"postmaster@example.org"}, reject, ActionAccept, "protected-rcpt"},
		{"postmaster and abuse", []string{"postmaster@example.org", "abuse@example.org"}, reject, ActionAccept, "protected-rcpt"},
		{"postmaster and a user", []string{"postmaster@example.org", "user@example.org"}, reject, ActionQuarantine, "protected-rcpt"},
		{"discard, mixed", []string{"postmaster@example.org", "user@example.org"}, Result{Action: ActionDiscard}, ActionQuarantine, "protected-rcpt"},
		{"quarantine, mixed, stays", []string{"abuse@example.org", "user@example.org"}, Result{Action: ActionQuarantine, Reasons: []string{"q"}}, ActionQuarantine, "q"},
		{"tempfail is not softened", []string{"postmaster@example.org"}, Result{Action: ActionTempfail, Reasons: []string{"t"}}, ActionTempfail, "t"},
		{"malware to postmaster", []string{"postmaster@example.org"}, Result{Action: ActionReject, Mandatory: true, Reasons: []string{"virus-infected"}}, ActionReject, "virus-infected"},
		{"postmaster of another domain", []string{"postmaster@other.test"}, reject, ActionReject, "rule-x"},
	} {
		p := newPipeline(t, "", step(returns("x", tc.r)))
		v := p.Run(context.Background(), testMessage(tc.rcpts...))
		if v.Action != tc.want || !slices.Contains(v.Reasons, tc.reason) {
			t.Errorf("%s: %v %q, want %v with %q", tc.name, v.Action, v.Reasons, tc.want, tc.reason)
		}
		if tc.want == ActionQuarantine && tc.reason == "protected-rcpt" && !strings.HasPrefix(v.QuarantineReason, "protected-rcpt") {
			t.Errorf("%s: quarantine reason %q", tc.name, v.QuarantineReason)
		}
	}
}

func TestPipelineModes(t *testing.T) {
	rule := "[[rule]]\nname = \"bad\"\nheader = \"Subject\"\npattern = \"hello\"\naction = \"reject\"\n"
	t.Run("monitor", func(t *testing.T) {
		p := newPipeline(t, "mode = \"monitor\"\n"+rule)
		v := p.Run(context.Background(), testMessage())
		if v.Mode != ModeMonitor || v.Action != ActionAccept || v.WouldBe != ActionReject || !slices.Contains(v.Reasons, "rule-bad") {
			t.Errorf("verdict %+v", v)
		}
		st, _ := header(v, "X-Spam-Status")
		if !strings.Contains(st, "would=reject") || !strings.Contains(st, "reasons=rule-bad") {
			t.Errorf("status header %q", st)
		}
		if _, ok := header(v, "Authentication-Results"); !ok {
			t.Error("monitor mode adds our headers")
		}
	})
	t.Run("monitor, clean", func(t *testing.T) {
		p := newPipeline(t, "mode = \"monitor\"\n")
		v := p.Run(context.Background(), testMessage())
		if st, _ := header(v, "X-Spam-Status"); strings.Contains(st, "would=") {
			t.Errorf("status header %q", st)
		}
	})
	for _, mode := range []Mode{ModeAcceptAll, ModeTempfailAll} {
		t.Run(string(mode), func(t *testing.T) {
			c := &fakeCheck{name: "counted"}
			p := newPipeline(t, "mode = \""+string(mode)+"\"\n"+rule, step(c))
			v := p.Run(context.Background(), testMessage())
			if c.calls.Load() != 0 || len(v.Checks) != 0 {
				t.Errorf("%s ran checks: %d calls, %d reports", mode, c.calls.Load(), len(v.Checks))
			}
			if len(v.Prepend) != 0 || len(v.Delete) != 0 {
				t.Errorf("%s changes headers: %+v %+v", mode, v.Prepend, v.Delete)
			}
			want, reply := ActionAccept, Reply{}
			if mode == ModeTempfailAll {
				want, reply = ActionTempfail, p.Config().Replies.Tempfail
			}
			if v.Action != want || v.WouldBe != want || v.Reply != reply || !slices.Equal(v.Reasons, []string{"mode-" + string(mode)}) {
				t.Errorf("verdict %+v", v)
			}
			if a, _, _ := p.Rcpt(context.Background(), &message.Envelope{}, "x@example.org"); a != ActionAccept {
				t.Errorf("rcpt in %s: %v", mode, a)
			}
		})
	}
	t.Run("switch overrides config", func(t *testing.T) {
		cfg, _ := Load("t", []byte(baseTOML+rule), nil)
		sw := &ModeSwitch{}
		p, err := New(cfg, nil, nil, sw, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if v := p.Run(context.Background(), testMessage()); v.Action != ActionReject {
			t.Errorf("enforce: %v", v.Action)
		}
		sw.Set(ModeMonitor)
		if v := p.Run(context.Background(), testMessage()); v.Action != ActionAccept || v.WouldBe != ActionReject || p.Mode() != ModeMonitor {
			t.Errorf("switched to monitor: %v/%v", v.Action, v.WouldBe)
		}
		sw.Clear()
		if p.Mode() != ModeEnforce {
			t.Error("Clear returns to the configured mode")
		}
		var nilSwitch *ModeSwitch
		if _, ok := nilSwitch.Get(); ok {
			t.Error("nil switch")
		}
	})
}

func TestPipelineOversize(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  Action
		reply Reply
	}{
		{"", ActionReject, Reply{552, "5.3.4", "Message too big"}},
		{"max_message_size_action = \"tempfail\"\n", ActionTempfail, Reply{451, "4.7.1", "Message deferred, please try again later"}},
		{"max_message_size_action = \"tempfail\"\n[replies]\noversize = \"452 4.3.1 Insufficient system storage\"\n", ActionTempfail, Reply{452, "4.3.1", "Insufficient system storage"}},
		{"max_message_size_action = \"quarantine\"\n", ActionQuarantine, Reply{552, "5.3.4", "Message too big"}},
	} {
		c := &fakeCheck{name: "counted"}
		p := newPipeline(t, tc.extra, step(c))
		m := testMessage()
		m.Oversize = true
		v := p.Run(context.Background(), m)
		if v.Action != tc.want || v.WouldBe != tc.want || !slices.Equal(v.Reasons, []string{"message-oversize"}) {
			t.Errorf("%q: %v %q", tc.extra, v.Action, v.Reasons)
		}
		if tc.want != ActionQuarantine && v.Reply != tc.reply {
			t.Errorf("%q: reply %v, want %v", tc.extra, v.Reply, tc.reply)
		}
		if tc.want == ActionQuarantine && v.QuarantineReason != "message-oversize" {
			t.Errorf("quarantine reason %q", v.QuarantineReason)
		}
		if c.calls.Load() != 0 {
			t.Error("no check runs on an oversize message")
		}
	}
	p := newPipeline(t, "mode = \"monitor\"\n")
	m := testMessage()
	m.Oversize = true
	m.Header = append(m.Header, message.Field{Name: "Authentication-Results", Value: " mx.test; dkim=pass header.d=bank.test"}, message.Field{Name: "X-Spam-Flag", Value: " NO"})
	v := p.Run(context.Background(), m)
	if v.Action != ActionAccept || v.WouldBe != ActionReject {
		t.Errorf("monitor: %v/%v", v.Action, v.WouldBe)
	}
	// Accepted unchecked, but never with a forged result of ours.
	if len(v.Delete) != 2 || v.Delete[0] != (HeaderRef{"Authentication-Results", 1}) || v.Delete[1] != (HeaderRef{"X-Spam-Flag", 1}) {
		t.Errorf("oversize accepted with forged headers: delete %v", v.Delete)
	}
}

func TestPipelineHeaders(t *testing.T) {
	p := newPipeline(t, "",
		step(returns("auth", Result{
			AuthResults: []authres.Result{&authres.SPFResult{Value: authres.ResultPass, From: "alice@sender.test"}},
			Headers:     []message.Field{{Name: "X-Check", Value: " one"}},
		})),
		step(returns("remover", Result{RemoveHeaders: []string{"X-Remove-Me"}})))
	m := testMessage()
	m.Header = message.Header{
		{Name: "Authentication-Results", Value: " other.test; spf=pass smtp.mailfrom=a@b.test"},
		{Name: "Received", Value: " from x by y"},
		{Name: "authentication-results", Value: " mx.test; dkim=pass header.d=forged.test"},
		{Name: "X-Spam-Status", Value: " No, score=-100"},
		{Name: "Authentication-Results", Value: " other.test; dkim=pass"},
		{Name: "Authentication-Results", Value: " (comment) MX.TEST;\n\tspf=pass smtp.mailfrom=x@y.test"},
		{Name: "X-Spam-Flag", Value: " NO"},
		{Name: "X-Remove-Me", Value: " 1"},
		{Name: "x-spam-status", Value: " No"},
		{Name: "X-Remove-Me", Value: " 2"},
		{Name: "Authentication-Results", Value: " mx.test.evil; none"},
		{Name: "Authentication-Results", Value: ` "mx.test"; dkim=pass header.d=quoted.test`},
		{Name: "Authentication-Results", Value: " mx.test(no space); spf=pass"},
		{Name: "Subject", Value: " hello"},
	}
	v := p.Run(context.Background(), m)
	gotDel := map[string]bool{}
	for _, d := range v.Delete {
		gotDel[fmt.Sprintf("%s#%d", strings.ToLower(d.Name), d.Index)] = true
	}
	wantDel := []string{
		"authentication-results#2", "authentication-results#4", // ours, forged: 1-based among same-name fields
		"authentication-results#6", "authentication-results#7", // quoted id, comment touching the id
		"x-spam-status#1", "x-spam-status#2", "x-spam-flag#1",
		"x-remove-me#1", "x-remove-me#2",
	}
	for _, w := range wantDel {
		if !gotDel[w] {
			t.Errorf("not deleted: %s (deleted %v)", w, v.Delete)
		}
	}
	if len(v.Delete) != len(wantDel) {
		t.Errorf("deleted %v, want %v", v.Delete, wantDel)
	}
	var names []string
	for _, f := range v.Prepend {
		names = append(names, f.Name)
	}
	if !slices.Equal(names, []string{"Authentication-Results", "X-Spam-Status", "X-Check"}) {
		t.Errorf("prepend order %v", names)
	}
	if v.Prepend[0].Value != " mx.test; spf=pass smtp.mailfrom=alice@sender.test" {
		t.Errorf("A-R %q", v.Prepend[0].Value)
	}
	// Without a status header name, none is added and none removed.
	p = newPipeline(t, "[headers]\nstatus = \"\"\nflag = \"\"\n")
	v = p.Run(context.Background(), m)
	if len(v.Prepend) != 1 {
		t.Errorf("prepend %+v", v.Prepend)
	}
	for _, d := range v.Delete {
		if !strings.EqualFold(d.Name, "Authentication-Results") {
			t.Errorf("deleted %v with status headers disabled", d)
		}
	}
}

func TestPipelineEnvelopeChanges(t *testing.T) {
	p := newPipeline(t, "",
		step(returns("a", Result{ChangeFrom: "srs0=x@example.org", AddRcpts: []string{"archive@example.org"}})),
		step(returns("b", Result{DeleteRcpts: []string{"user@example.org"}})))
	v := p.Run(context.Background(), testMessage())
	if v.ChangeFrom != "srs0=x@example.org" || !slices.Equal(v.AddRcpts, []string{"archive@example.org"}) || !slices.Equal(v.DeleteRcpts, []string{"user@example.org"}) {
		t.Errorf("%+v", v)
	}
}

type observer struct {
	fakeCheck
	mu     sync.Mutex
	seen   []*Verdict
	err    error
	block  chan struct{}
	panics bool
}

func (o *observer) Observe(_ context.Context, m *message.Message, v *Verdict) error {
	if o.block != nil {
		<-o.block // ignores its context
	}
	if o.panics {
		panic("observer bug")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, v)
	if o.err != nil {
		return o.err
	}
	return nil
}

func TestPipelineObserver(t *testing.T) {
	o := &observer{fakeCheck: fakeCheck{name: "obs"}}
	bad := &observer{fakeCheck: fakeCheck{name: "bad"}, err: errors.New("store down")}
	hung := &observer{fakeCheck: fakeCheck{name: "hung"}, block: make(chan struct{})}
	defer close(hung.block)
	boom := &observer{fakeCheck: fakeCheck{name: "boom"}, panics: true}
	p := newPipeline(t, "", step(o), step(bad), step(hung, timeout(time.Second)), step(boom),
		step(returns("q", Result{Action: ActionQuarantine, Score: 3, Reasons: []string{"q"}})))
	v := p.Run(context.Background(), testMessage())
	if len(o.seen) != 1 || o.seen[0] != v {
		t.Fatalf("observer saw %v", o.seen)
	}
	if o.seen[0].Action != ActionQuarantine || o.seen[0].Score != 3 || len(o.seen[0].Prepend) == 0 {
		t.Errorf("observer saw an unfinished verdict: %+v", o.seen[0])
	}
	if v.Action != ActionQuarantine || len(bad.seen) != 1 {
		t.Error("a failing observer does not change the verdict")
	}
}

type metricsRecorder struct {
	mu       sync.Mutex
	checks   map[string]Status
	messages int
}

func (r *metricsRecorder) CheckDone(c string, s Status, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[c] = s
}
func (r *metricsRecorder) MessageDone(*Verdict) { r.mu.Lock(); r.messages++; r.mu.Unlock() }

func TestPipelineMetrics(t *testing.T) {
	rec := &metricsRecorder{checks: map[string]Status{}}
	mods := []Module{stepsModule(step(returns("x", Result{Status: "infected"})))}
	cfg, _ := Load("t", []byte(baseTOML), mods)
	p, err := New(cfg, mods, nil, nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	v := p.Run(context.Background(), testMessage())
	if rec.messages != 1 || rec.checks["x"] != "infected" || rec.checks["lists"] != StatusNone {
		t.Errorf("metrics %+v", rec)
	}
	if v.Duration <= 0 {
		t.Error("verdict duration")
	}
}

type rcptFake struct {
	fakeCheck
	fn func(env *message.Envelope, rcpt string) (Result, error)
}

func (r *rcptFake) CheckRcpt(_ context.Context, env *message.Envelope, rcpt string) (Result, error) {
	return r.fn(env, rcpt)
}

func TestPipelineRcpt(t *testing.T) {
	extra := "[lists]\ndeny_recipients = [\"blocked@example.org\", \"*.spamtrap.test\"]\n"
	block := make(chan struct{})
	defer close(block)
	relay := &rcptFake{fakeCheck: fakeCheck{name: "relay"}, fn: func(env *message.Envelope, rcpt string) (Result, error) {
		switch rcpt {
		case "busy@example.org":
			return Result{Action: ActionTempfail, Reasons: []string{"relay-busy"}}, nil
		case "err@example.org":
			return Result{}, errors.New("lookup failed")
		case "panic@example.org":
			panic("oops")
		case "hold@example.org":
			return Result{Action: ActionQuarantine, Reasons: []string{"held"}}, nil
		case "hang@example.org":
			<-block // ignores its context: abandoned at the deadline
			return Result{Status: StatusPass}, nil
		case "custom@example.org":
			return Result{Action: ActionReject, Reply: Reply{550, "5.1.1", "No such user"}, Reasons: []string{"no-user"}}, nil
		}
		return Result{Status: StatusPass}, nil
	}}
	p := newPipeline(t, extra, step(relay, timeout(time.Second)))
	env := &message.Envelope{Client: message.Client{Addr: netip.MustParseAddr("198.51.100.1")}, MailFrom: "a@sender.test"}
	for _, tc := range []struct {
		rcpt    string
		want    Action
		reply   Reply
		reasons []string
	}{
		{"user@example.org", ActionAccept, Reply{}, nil},
		{"Blocked@Example.org", ActionReject, p.Config().Replies.Reject, []string{"denylist-rcpt"}},
		{"x@a.spamtrap.test", ActionReject, p.Config().Replies.Reject, []string{"denylist-rcpt"}},
		{"busy@example.org", ActionTempfail, p.Config().Replies.Tempfail, []string{"relay-busy"}},
		{"err@example.org", ActionTempfail, p.Config().Replies.Tempfail, []string{"relay-error"}},
		{"panic@example.org", ActionTempfail, p.Config().Replies.Tempfail, []string{"relay-error"}},
		{"hold@example.org", ActionAccept, Reply{}, []string{"held"}}, // decided at end of message
		{"hang@example.org", ActionTempfail, p.Config().Replies.Tempfail, []string{"relay-error"}},
		{"custom@example.org", ActionReject, Reply{550, "5.1.1", "No such user"}, []string{"no-user"}},
	} {
		a, reply, reasons := p.Rcpt(context.Background(), env, tc.rcpt)
		if a != tc.want || reply != tc.reply || !slices.Equal(reasons, tc.reasons) {
			t.Errorf("%s: %v %v %q, want %v %v %q", tc.rcpt, a, reply, reasons, tc.want, tc.reply, tc.reasons)
		}
	}
	// Monitor mode logs but accepts.
	pm := newPipeline(t, "mode = \"monitor\"\n"+extra)
	if a, reply, reasons := pm.Rcpt(context.Background(), env, "blocked@example.org"); a != ActionAccept || !reply.IsZero() || !slices.Equal(reasons, []string{"denylist-rcpt"}) {
		t.Errorf("monitor: %v %v %q", a, reply, reasons)
	}
	// deny_action applies at RCPT time too.
	pt := newPipeline(t, extra+"deny_action = \"tempfail\"\n")
	if a, reply, _ := pt.Rcpt(context.Background(), env, "blocked@example.org"); a != ActionTempfail || reply.Code != 451 {
		t.Errorf("deny_action tempfail: %v %v", a, reply)
	}
}

func TestListCheck(t *testing.T) {
	extra := `[lists]
deny_ips = ["203.0.113.0/24"]
deny_helos = ["*.bad.test", "localhost"]
deny_senders = ["spammer@sender.test", "<>"]
deny_recipients = ["trap@example.org"]
allow_ips = ["203.0.113.5"]
allow_helos = ["good.test"]
allow_senders = ["*@friend.test"]
allow_recipients = ["postmaster@example.org", "abuse@example.org"]
`
	for _, tc := range []struct {
		name   string
		mod    func(m *message.Message)
		status Status
		want   Action
		reason string
	}{
		{"nothing listed", func(m *message.Message) {}, StatusNone, ActionAccept, ""},
		{"deny IP", func(m *message.Message) { m.Client.Addr = netip.MustParseAddr("203.0.113.9") }, StatusMatch, ActionReject, "denylist-ip"},
		{"deny beats allow", func(m *message.Message) { m.Client.Addr = netip.MustParseAddr("203.0.113.5") }, StatusMatch, ActionReject, "denylist-ip"},
		{"deny HELO", func(m *message.Message) { m.Client.HELO = "x.bad.test" }, StatusMatch, ActionReject, "denylist-helo"},
		{"deny HELO localhost", func(m *message.Message) { m.Client.HELO = "LOCALHOST" }, StatusMatch, ActionReject, "denylist-helo"},
		{"deny sender", func(m *message.Message) { m.MailFrom = "Spammer@Sender.test" }, StatusMatch, ActionReject, "denylist-sender"},
		{"deny null sender", func(m *message.Message) { m.MailFrom = "" }, StatusMatch, ActionReject, "denylist-sender"},
		{"deny recipient", func(m *message.Message) { m.Rcpts = []string{"user@example.org", "trap@example.org"} }, StatusMatch, ActionReject, "denylist-rcpt"},
		{"allow HELO", func(m *message.Message) { m.Client.HELO = "good.test" }, StatusPass, ActionAccept, ""},
		{"allow sender", func(m *message.Message) { m.MailFrom = "x@friend.test" }, StatusPass, ActionAccept, ""},
		{"allow recipients: all of them", func(m *message.Message) { m.Rcpts = []string{"postmaster@example.org", "abuse@example.org"} }, StatusPass, ActionAccept, ""},
		{"allow recipients: not all", func(m *message.Message) { m.Rcpts = []string{"postmaster@example.org", "user@example.org"} }, StatusNone, ActionAccept, ""},
	} {
		p := newPipeline(t, extra)
		m := testMessage()
		tc.mod(m)
		v := p.Run(context.Background(), m)
		r := report(t, v, "lists")
		if r.Status != tc.status || r.Action != tc.want || (tc.reason != "" && !slices.Contains(r.Reasons, tc.reason)) {
			t.Errorf("%s: %s %v %q", tc.name, r.Status, r.Action, r.Reasons)
		}
		if v.Action != tc.want {
			t.Errorf("%s: verdict %v", tc.name, v.Action)
		}
	}
}

func TestRuleCheck(t *testing.T) {
	extra := `
[[rule]]
name = "subj"
header = "subject"
pattern = "(?i)cheap pills"
score = 3.5

[[rule]]
name = "second-received"
header = "X-Tag"
pattern = "^bad$"
action = "quarantine"

[[rule]]
name = "no-date"
header = "Date"
pattern = "."
negate = true
score = 1.0

[[rule]]
name = "body"
body = true
pattern = "wire transfer"
action = "reject"
reply = "554 5.7.1 Go away"

[[rule]]
name = "body2"
body = true
pattern = "urgent"
action = "tempfail"
`
	for _, tc := range []struct {
		name    string
		header  message.Header
		body    string
		score   float64
		action  Action
		reasons []string
		reply   Reply
	}{
		{"nothing", message.Header{{Name: "Date", Value: " now"}}, "hello", 0, ActionAccept, nil, Reply{}},
		{"negated rule", message.Header{}, "hello", 1, ActionAccept, []string{"rule-no-date"}, Reply{}},
		{"folded header", message.Header{{Name: "Date", Value: " now"}, {Name: "Subject", Value: " CHEAP\r\n pills"}}, "", 3.5, ActionAccept, []string{"rule-subj"}, Reply{}},
		{"header, unfolded on one line", message.Header{{Name: "Date", Value: " now"}, {Name: "Subject", Value: " cheap pills\n today"}}, "", 3.5, ActionAccept, []string{"rule-subj"}, Reply{}},
		{"any instance", message.Header{{Name: "Date", Value: " now"}, {Name: "X-Tag", Value: " ok"}, {Name: "X-Tag", Value: " bad"}}, "", 0, ActionQuarantine, []string{"rule-second-received"}, Reply{}},
		{"body rule with reply", message.Header{{Name: "Date", Value: " now"}}, "please send a wire transfer", 0, ActionReject, []string{"rule-body"}, Reply{554, "5.7.1", "Go away"}},
		{"two body rules: highest action, its reply", message.Header{{Name: "Date", Value: " now"}}, "urgent wire transfer", 0, ActionReject, []string{"rule-body", "rule-body2"}, Reply{554, "5.7.1", "Go away"}},
		{"tempfail rule", message.Header{{Name: "Date", Value: " now"}}, "urgent", 0, ActionTempfail, []string{"rule-body2"}, Reply{451, "4.7.1", "Message deferred, please try again later"}},
	} {
		p := newPipeline(t, extra)
		m := testMessage()
		m.Header = tc.header
		m.Body = message.BytesBody(tc.body)
		v := p.Run(context.Background(), m)
		r := report(t, v, "rules")
		if r.Score != tc.score || r.Action != tc.action || !slices.Equal(r.Reasons, tc.reasons) {
			t.Errorf("%s: score %v action %v reasons %q", tc.name, r.Score, r.Action, r.Reasons)
		}
		if v.Action != tc.action || v.Reply != tc.reply {
			t.Errorf("%s: verdict %v %v, want %v %v", tc.name, v.Action, v.Reply, tc.action, tc.reply)
		}
		if tc.score != 0 && (len(r.Signals) == 0 || r.Signals[0].Score == 0) {
			t.Errorf("%s: signals %+v", tc.name, r.Signals)
		}
	}
}

// closeCounter is a shared service that counts Close calls.
type closeCounter struct{ n *atomic.Int32 }

func (c closeCounter) Close() error { c.n.Add(1); return nil }

func TestHolderClosesSwappedPipelineAfterLastRelease(t *testing.T) {
	build := func() (*Pipeline, *atomic.Int32) {
		n := &atomic.Int32{}
		mod := Module{Name: "svc", Default: func() any { return &struct{}{} }, Build: func(_ any, env *Env) ([]Step, error) {
			env.OnClose(closeCounter{n})
			return nil, nil
		}}
		cfg, err := Load("t", []byte(baseTOML), []Module{mod})
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(cfg, []Module{mod}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p, n
	}
	p1, n1 := build()
	p2, n2 := build()
	p3, n3 := build()
	h := NewHolder(p1)
	a, releaseA := h.Acquire()
	b, releaseB := h.Acquire()
	if a != p1 || b != p1 || h.Current() != p1 {
		t.Fatal("Acquire returns the pipeline in force")
	}
	h.Swap(p2)
	if h.Current() != p2 {
		t.Fatal("Swap puts the new pipeline in force")
	}
	if c, rel := h.Acquire(); c != p2 {
		t.Fatal("new messages get the new pipeline")
	} else {
		defer rel()
	}
	if n1.Load() != 0 {
		t.Fatal("old pipeline closed while messages use it")
	}
	releaseA()
	releaseA() // a second call is harmless
	if n1.Load() != 0 {
		t.Fatal("old pipeline closed before its last release")
	}
	releaseB()
	if n1.Load() != 1 {
		t.Fatalf("old pipeline closed %d times after the last release, want 1", n1.Load())
	}
	h.Swap(p3) // p2 is still in use by the deferred release
	if n2.Load() != 0 {
		t.Fatal("p2 closed while in use")
	}
	// A pipeline nobody uses is closed at once when swapped out.
	p4, n4 := build()
	h.Swap(p4)
	if n3.Load() != 1 {
		t.Fatalf("unused p3 closed %d times, want 1", n3.Load())
	}
	h.Swap(p4) // swapping in the same pipeline closes nothing
	if n4.Load() != 0 {
		t.Fatal("Swap to the same pipeline closed it")
	}
	h.Close()
	if n4.Load() != 1 {
		t.Fatal("Holder.Close closes the pipeline in force")
	}
	t.Cleanup(func() {
		if n2.Load() != 1 {
			t.Errorf("p2 closed %d times after its release, want 1", n2.Load())
		}
	})
}

func TestHolderConcurrent(t *testing.T) {
	n := &atomic.Int32{}
	var closed []*atomic.Int32
	mk := func() *Pipeline {
		c := &atomic.Int32{}
		closed = append(closed, c)
		mod := Module{Name: "svc", Default: func() any { return &struct{}{} }, Build: func(_ any, env *Env) ([]Step, error) {
			env.OnClose(closeCounter{c})
			return nil, nil
		}}
		cfg, _ := Load("t", []byte(baseTOML), []Module{mod})
		p, err := New(cfg, []Module{mod}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	h := NewHolder(mk())
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				p, rel := h.Acquire()
				n.Add(1)
				p.Config()
				rel()
			}
		}()
	}
	for i := 0; i < 20; i++ {
		h.Swap(mk())
	}
	wg.Wait()
	h.Close()
	for i, c := range closed {
		if c.Load() != 1 {
			t.Errorf("pipeline %d closed %d times, want exactly 1", i, c.Load())
		}
	}
}

// A 10 MB body of one line: the MIME walk and the body rules stay bounded
// (MaxTextBytes) and still see its start; the checks see every byte.
func TestPipelineHugeOneLineBody(t *testing.T) {
	rule := "[[rule]]\nname = \"start\"\nbody = true\npattern = \"^urgent wire transfer\"\naction = \"reject\"\n"
	var size int64
	p := newPipeline(t, rule, step(&fakeCheck{name: "size", fn: func(_ context.Context, m *message.Message, _ Results) (Result, error) {
		size = m.Body.Size()
		return Result{Status: StatusPass}, nil
	}}))
	body := append([]byte("urgent wire transfer "), bytes.Repeat([]byte("x"), 10<<20)...)
	m := testMessage()
	m.Body = message.BytesBody(body)
	v := p.Run(context.Background(), m)
	if v.Action != ActionReject || !slices.Contains(v.Reasons, "rule-start") {
		t.Errorf("verdict %v %q", v.Action, v.Reasons)
	}
	if size != int64(len(body)) {
		t.Errorf("the check saw %d bytes, want %d", size, len(body))
	}
	if n := len(m.Text()); n > message.MaxTextBytes+1 {
		t.Errorf("Text is %d bytes, above MaxTextBytes", n)
	}
}

type rcptRecorder struct {
	metricsRecorder
	refused []string
}

func (r *rcptRecorder) RcptDone(a Action, reasons []string) {
	r.refused = append(r.refused, a.String()+":"+strings.Join(reasons, ","))
}

// Recipients refused at RCPT time never reach MessageDone; a Metrics that
// implements RcptMetrics counts them.
func TestPipelineRcptMetrics(t *testing.T) {
	rec := &rcptRecorder{metricsRecorder: metricsRecorder{checks: map[string]Status{}}}
	cfg, err := Load("t", []byte(baseTOML+"\n[lists]\ndeny_recipients = [\"trap@example.org\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, nil, nil, nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	env := &message.Envelope{MailFrom: "a@example.net"}
	p.Rcpt(context.Background(), env, "ok@example.org")
	p.Rcpt(context.Background(), env, "trap@example.org")
	if len(rec.refused) != 1 || rec.refused[0] != "reject:denylist-rcpt" {
		t.Errorf("RcptDone calls = %q, want one reject:denylist-rcpt", rec.refused)
	}
}

// accept-all runs no check, yet a forged Authentication-Results claiming
// our authserv-id is still removed (RFC 8601 §5); nothing is added.
func TestAcceptAllRemovesForgedAuthResults(t *testing.T) {
	p := newPipeline(t, "mode = \"accept-all\"\n")
	m := testMessage()
	m.Header = append(message.Header{{Name: "Authentication-Results", Value: " mx.test; spf=pass smtp.mailfrom=alice@sender.test"}, {Name: "Authentication-Results", Value: " other.example; dkim=pass"}}, m.Header...)
	v := p.Run(context.Background(), m)
	if len(v.Prepend) != 0 {
		t.Errorf("accept-all added headers: %+v", v.Prepend)
	}
	if len(v.Delete) != 1 || v.Delete[0] != (HeaderRef{Name: "Authentication-Results", Index: 1}) {
		t.Errorf("Delete = %+v, want only our forged Authentication-Results #1", v.Delete)
	}
}

func TestParseModeIgnoresCase(t *testing.T) {
	if m, err := ParseMode(" Monitor "); err != nil || m != ModeMonitor {
		t.Errorf("ParseMode(Monitor) = %q, %v", m, err)
	}
}

// A mandatory step's failure is not softened by an allow list; an ordinary
// step's failure is.
func TestMandatoryStepErrorNotSoftened(t *testing.T) {
	for _, mandatory := range []bool{false, true} {
		broken := &fakeCheck{name: "scanner", fn: func(context.Context, *message.Message, Results) (Result, error) {
			return Result{}, errors.New("clamd down")
		}}
		st := step(broken)
		st.Mandatory = mandatory
		p := newPipeline(t, "[lists]\nallow_senders = [\"sender.test\"]\n", st)
		v := p.Run(context.Background(), testMessage())
		want := ActionAccept
		if mandatory {
			want = ActionTempfail
		}
		if v.Action != want {
			t.Errorf("mandatory=%v: action %v, want %v (reasons %v)", mandatory, v.Action, want, v.Reasons)
		}
	}
}

// List patterns from the config match without regard to case or
// surrounding space (Load normalises them once).
func TestListPatternsFromConfigIgnoreCase(t *testing.T) {
	p := newPipeline(t, "[lists]\ndeny_senders = [\"  *@Sender.TEST \"]\n")
	if v := p.Run(context.Background(), testMessage()); v.Action != ActionReject || !slices.Contains(v.Reasons, "denylist-sender") {
		t.Errorf("alice@sender.test vs \"  *@Sender.TEST \": %v %v", v.Action, v.Reasons)
	}
}

// TestPipelineRcptLinear: the cost of one RCPT must not grow with the
// recipients already accepted (issue 11.6: 20,000 recipients took 27 s,
// each RCPT copying every earlier one for each check). Asserted on bytes
// allocated, not on time: one RCPT after 20,000 recipients allocates about
// what one after 10 does.
func TestPipelineRcptLinear(t *testing.T) {
	relay := &rcptFake{fakeCheck: fakeCheck{name: "relay"}, fn: func(env *message.Envelope, rcpt string) (Result, error) {
		return Result{Status: StatusPass}, nil
	}}
	p := newPipeline(t, "", step(relay, timeout(time.Second)))
	perRcpt := func(n int) uint64 {
		env := &message.Envelope{Client: message.Client{Addr: netip.MustParseAddr("198.51.100.1")}, MailFrom: "a@sender.test", Macros: map[string]string{"i": "Q"}}
		for i := range n {
			env.Rcpts = append(env.Rcpts, fmt.Sprintf("user%d@example.org", i))
		}
		const calls = 50
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range calls {
			p.Rcpt(context.Background(), env, "next@example.org")
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / calls
	}
	small, big := perRcpt(10), perRcpt(20000)
	t.Logf("bytes allocated per RCPT: %d after 10 recipients, %d after 20,000", small, big)
	if big > 2*small+4096 {
		t.Errorf("one RCPT allocates %d bytes after 20,000 recipients, %d after 10: the step grows with the recipients (quadratic transaction)", big, small)
	}
}
