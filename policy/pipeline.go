package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-msgauth/authres"
)

// Step is a check with its own deadline and on-error action.
type Step struct {
	Check Check
	StepConfig
	// Mandatory makes the step's on_error action as hard as a mandatory
	// finding: allow lists and protected recipients cannot soften it (an
	// allow-listed sender must not get mail through unscanned while clamd
	// is down).
	Mandatory bool
}

// Env is what modules get to build their steps.
type Env struct {
	Config *Config
	Logger *slog.Logger
	// Shared holds services that several modules use (the DNS resolver, the
	// state store, the clamd client), built once per pipeline.
	Shared *Shared
	// Metrics receives per-check observations; never nil.
	Metrics Metrics
}

// Shared is a lazily built set of named services.
type Shared struct {
	mu sync.Mutex
	m  map[string]any
}

// Get returns the service called name, building it on first use.
func (s *Shared) Get(name string, build func() (any, error)) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[name]; ok {
		return v, nil
	}
	v, err := build()
	if err != nil {
		return nil, err
	}
	if s.m == nil {
		s.m = map[string]any{}
	}
	s.m[name] = v
	return v, nil
}

// Close closes every service that is an io.Closer.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, v := range s.m {
		if c, ok := v.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	s.m = nil
	return errors.Join(errs...)
}

// Metrics is the seam to the metrics library, so that policy does not
// depend on it.
type Metrics interface {
	CheckDone(check string, status Status, d time.Duration)
	MessageDone(v *Verdict)
}

// RcptMetrics is an optional extension of Metrics: recipients refused at
// RCPT time (deny lists, relay guard, SRS), which never reach MessageDone.
type RcptMetrics interface {
	RcptDone(action Action, reasons []string)
}

type noMetrics struct{}

func (noMetrics) CheckDone(string, Status, time.Duration) {}
func (noMetrics) MessageDone(*Verdict)                    {}

// ModeSwitch lets an operator override the configured mode at run time
// (control socket); it outlives pipeline reloads.
type ModeSwitch struct{ v atomic.Pointer[Mode] }

// Set overrides the mode; Clear returns to the configured one.
func (s *ModeSwitch) Set(m Mode) { s.v.Store(&m) }
func (s *ModeSwitch) Clear()     { s.v.Store(nil) }

// Get returns the override, if any.
func (s *ModeSwitch) Get() (Mode, bool) {
	if s == nil {
		return "", false
	}
	if p := s.v.Load(); p != nil {
		return *p, true
	}
	return "", false
}

// Pipeline runs the configured checks on a message and merges their results
// into one Verdict. It is immutable; a reload builds a new one.
type Pipeline struct {
	cfg       *Config
	levels    [][]Step // checks grouped so that each level only needs earlier ones
	rcpt      []Step   // steps that also decide at RCPT time
	observers []Step   // steps that see the final verdict
	log       *slog.Logger
	shared    *Shared
	metrics   Metrics
	modes     *ModeSwitch
}

// New builds a pipeline from a loaded config and the module list.
func New(cfg *Config, modules []Module, log *slog.Logger, modes *ModeSwitch, metrics Metrics) (*Pipeline, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if metrics == nil {
		metrics = noMetrics{}
	}
	if modes == nil {
		modes = &ModeSwitch{}
	}
	env := &Env{Config: cfg, Logger: log, Shared: &Shared{}, Metrics: metrics}
	steps := []Step{
		{Check: &listCheck{cfg: cfg}, StepConfig: DefaultStep()},
		{Check: &ruleCheck{cfg: cfg}, StepConfig: DefaultStep()},
	}
	for _, m := range modules {
		sec, ok := cfg.Sections[m.Name]
		if !ok {
			sec = m.Default()
		}
		s, err := m.Build(sec, env)
		if err != nil {
			env.Shared.Close()
			return nil, fmt.Errorf("policy: %s: %w", m.Name, err)
		}
		steps = append(steps, s...)
	}
	levels, err := order(steps)
	if err != nil {
		env.Shared.Close()
		return nil, err
	}
	p := &Pipeline{cfg: cfg, levels: levels, log: log, shared: env.Shared, metrics: metrics, modes: modes}
	for _, s := range steps {
		if _, ok := s.Check.(RcptChecker); ok {
			p.rcpt = append(p.rcpt, s)
		}
		if _, ok := s.Check.(Observer); ok {
			p.observers = append(p.observers, s)
		}
	}
	return p, nil
}

// order groups steps into levels by their After dependencies.
func order(steps []Step) ([][]Step, error) {
	byName := map[string]Step{}
	for _, s := range steps {
		if _, dup := byName[s.Check.Name()]; dup {
			return nil, fmt.Errorf("policy: two checks named %q", s.Check.Name())
		}
		byName[s.Check.Name()] = s
	}
	level := map[string]int{}
	var visit func(n string, path []string) (int, error)
	visit = func(n string, path []string) (int, error) {
		if l, ok := level[n]; ok {
			return l, nil
		}
		for _, p := range path {
			if p == n {
				return 0, fmt.Errorf("policy: checks depend on each other: %s", strings.Join(append(path, n), " → "))
			}
		}
		l := 0
		if a, ok := byName[n].Check.(After); ok {
			for _, d := range a.After() {
				if _, ok := byName[d]; !ok {
					continue // the dependency is disabled: run without it
				}
				dl, err := visit(d, append(path, n))
				if err != nil {
					return 0, err
				}
				l = max(l, dl+1)
			}
		}
		level[n] = l
		return l, nil
	}
	var levels [][]Step
	for _, s := range steps {
		l, err := visit(s.Check.Name(), nil)
		if err != nil {
			return nil, err
		}
		for len(levels) <= l {
			levels = append(levels, nil)
		}
		levels[l] = append(levels[l], s)
	}
	return levels, nil
}

// Config returns the pipeline's configuration.
func (p *Pipeline) Config() *Config { return p.cfg }

// Close releases the pipeline's shared services. Call it once no message
// uses the pipeline any more.
func (p *Pipeline) Close() error { return p.shared.Close() }

// Mode is the effective mode: the operator's override or the config's.
func (p *Pipeline) Mode() Mode {
	if m, ok := p.modes.Get(); ok {
		return m
	}
	return p.cfg.Mode
}

// Checks lists the check names in run order.
func (p *Pipeline) Checks() []string {
	var n []string
	for _, l := range p.levels {
		for _, s := range l {
			n = append(n, s.Check.Name())
		}
	}
	return n
}

// CheckReport is one check's line in a verdict.
type CheckReport struct {
	Name     string        `json:"name"`
	Status   Status        `json:"status"`
	Score    float64       `json:"score"`
	Action   Action        `json:"action"`
	Reasons  []string      `json:"reasons,omitempty"`
	Detail   string        `json:"detail,omitempty"`
	Signals  []Signal      `json:"signals,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	Result   Result        `json:"-"`
}

// HeaderRef names one header instance: the Index-th (1-based) field called
// Name, counted as the message arrived (the milter protocol's numbering).
type HeaderRef struct {
	Name  string
	Index int
}

// Verdict is the pipeline's decision on one message.
type Verdict struct {
	Mode    Mode
	Action  Action // what the MTA is told
	WouldBe Action // what enforce mode would do (differs in monitor mode)
	Score   float64
	Reasons []string
	// Reply is the SMTP reply for reject and tempfail.
	Reply            Reply
	QuarantineReason string
	// Prepend are header fields to insert at the top, in order.
	Prepend []Field
	// Delete are header fields to remove.
	Delete      []HeaderRef
	ChangeFrom  string
	AddRcpts    []string
	DeleteRcpts []string
	Checks      []CheckReport
	Duration    time.Duration
}

// Run decides on a complete message.
func (p *Pipeline) Run(ctx context.Context, m *Message) *Verdict {
	start := time.Now()
	v := &Verdict{Mode: p.Mode()}
	defer func() {
		v.Duration = time.Since(start)
		p.metrics.MessageDone(v)
	}()
	switch v.Mode {
	case ModeAcceptAll:
		v.Action, v.WouldBe, v.Reasons = ActionAccept, ActionAccept, []string{"mode-accept-all"}
		// No check runs, but a forged Authentication-Results claiming our
		// id must still go (RFC 8601 §5): downstream filters trust it.
		v.Delete = dedupRefs(p.forged(m))
		return v
	case ModeTempfailAll:
		v.Action, v.WouldBe, v.Reasons = ActionTempfail, ActionTempfail, []string{"mode-tempfail-all"}
		v.Reply = p.cfg.Replies.Tempfail
		return v
	}
	if m.Oversize {
		// The body was not kept, so no check can judge it; scanning only
		// part of it would let malware through behind padding.
		v.WouldBe = p.cfg.MaxMessageSizeAction
		v.Reasons = []string{"message-oversize"}
		v.Reply = p.cfg.Replies.Oversize
		if v.WouldBe == ActionTempfail && v.Reply.Code/100 == 5 {
			v.Reply = p.cfg.Replies.Tempfail
		}
		v.QuarantineReason = "message-oversize"
		v.Action = v.WouldBe
		if v.Mode == ModeMonitor {
			v.Action = ActionAccept
		}
		v.Delete = dedupRefs(p.forged(m))
		return v
	}

	results := Results{}
	for _, level := range p.levels {
		// Each level reads its own copy: a check abandoned at its deadline
		// may still read prior while later levels' results are written, and
		// a concurrent map read and write is a fatal error, not a panic.
		reports := p.runLevel(ctx, m, level, maps.Clone(results))
		for _, r := range reports {
			results[r.Name] = r.Result
			v.Checks = append(v.Checks, r)
		}
	}
	p.merge(m, v)
	p.observe(ctx, m, v)
	return v
}

// observe hands the verdict to the checks that want it.
func (p *Pipeline) observe(ctx context.Context, m *Message, v *Verdict) {
	for _, s := range p.observers {
		cctx, cancel := context.WithTimeout(ctx, max(s.Timeout.D(), time.Second))
		// Abandoned at the deadline like a check: the verdict must not
		// wait for an observer that ignores its context.
		done := make(chan error, 1)
		go func() {
			defer func() {
				if x := recover(); x != nil {
					done <- fmt.Errorf("policy: observer panicked: %v", x)
				}
			}()
			done <- s.Check.(Observer).Observe(cctx, m, v)
		}()
		var err error
		select {
		case err = <-done:
		case <-cctx.Done():
			err = fmt.Errorf("policy: observer: %w", cctx.Err())
		}
		cancel()
		if err != nil {
			p.log.Warn("observer failed", "queue_id", m.QueueID, "check", s.Check.Name(), "error", err)
		}
	}
}

func (p *Pipeline) runLevel(ctx context.Context, m *Message, level []Step, prior Results) []CheckReport {
	reports := make([]CheckReport, len(level))
	var wg sync.WaitGroup
	for i, s := range level {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i] = p.runStep(ctx, m, s, prior)
		}()
	}
	wg.Wait()
	return reports
}

// runStep runs one check with its deadline and panic recovery. A check that
// ignores its context is abandoned at the deadline.
func (p *Pipeline) runStep(ctx context.Context, m *Message, s Step, prior Results) CheckReport {
	name := s.Check.Name()
	start := time.Now()
	timeout := s.Timeout.D()
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type out struct {
		r   Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		defer func() {
			if x := recover(); x != nil {
				p.log.Error("check panicked", "check", name, "panic", fmt.Sprint(x), "stack", string(debug.Stack()))
				done <- out{err: fmt.Errorf("policy: check %s panicked: %v", name, x)}
			}
		}()
		r, err := s.Check.Check(cctx, m, prior)
		done <- out{r, err}
	}()
	var o out
	select {
	case o = <-done:
	case <-cctx.Done():
		o.err = fmt.Errorf("policy: check %s: %w", name, cctx.Err())
	}
	rep := CheckReport{Name: name, Duration: time.Since(start)}
	if o.err != nil {
		rep.Error = o.err.Error()
		rep.Result = Result{Status: StatusError, Action: s.OnError, Reasons: []string{name + "-error"}, Detail: o.err.Error(), Mandatory: s.Mandatory}
		if s.OnError == ActionAccept {
			rep.Result.Reasons = nil
		}
		p.log.Debug("check failed", "queue_id", m.QueueID, "check", name, "error", o.err)
	} else {
		rep.Result = o.r
		if rep.Result.Status == "" {
			rep.Result.Status = StatusNone
		}
	}
	r := rep.Result
	rep.Status, rep.Score, rep.Action, rep.Reasons, rep.Detail, rep.Signals = r.Status, r.Score, r.Action, r.Reasons, r.Detail, r.Signals
	p.metrics.CheckDone(name, rep.Status, rep.Duration)
	if o.err == nil {
		p.log.Debug("check done", "queue_id", m.QueueID, "check", name, "status", string(r.Status), "score", r.Score, "action", r.Action.String(), "reasons", r.Reasons, "detail", r.Detail, "duration", rep.Duration)
	}
	return rep
}

// thresholds returns the score levels for this message's recipients.
func (p *Pipeline) thresholds(m *Message) Thresholds { return p.cfg.ThresholdsFor(m.Rcpts) }

// merge combines the check results into the verdict: actions by severity,
// scores summed, reasons in check order, header changes collected.
func (p *Pipeline) merge(m *Message, v *Verdict) {
	cfg := p.cfg
	allowed, mandatory := false, false
	var authRes []authres.Result
	action := ActionAccept
	var reply Reply
	var quarantine string
	addReason := func(r ...string) {
		for _, x := range r {
			if x != "" && !contains(v.Reasons, x) {
				v.Reasons = append(v.Reasons, x)
			}
		}
	}
	for _, c := range v.Checks {
		r := c.Result
		if c.Name == "lists" && r.Status == StatusPass {
			allowed = true
		}
		v.Score += r.Score
		addReason(r.Reasons...)
		authRes = append(authRes, r.AuthResults...)
		v.Prepend = append(v.Prepend, r.Headers...)
		if r.ChangeFrom != "" {
			v.ChangeFrom = r.ChangeFrom
		}
		v.AddRcpts = append(v.AddRcpts, r.AddRcpts...)
		v.DeleteRcpts = append(v.DeleteRcpts, r.DeleteRcpts...)
		for _, h := range r.RemoveHeaders {
			v.Delete = appendAll(v.Delete, m.Header, h)
		}
		if r.Action > action || (r.Action == action && reply.IsZero()) {
			if r.Action > action {
				reply, quarantine = Reply{}, ""
			}
			action = r.Action
			if !r.Reply.IsZero() {
				reply = r.Reply
			}
			if r.QuarantineReason != "" {
				quarantine = r.QuarantineReason
			}
		}
		if r.Mandatory && r.Action != ActionAccept {
			mandatory = true
		}
	}
	// The total score maps to an action through the thresholds.
	th := p.thresholds(m)
	scoreAction := ActionAccept
	switch {
	case th.Reject > 0 && v.Score >= th.Reject:
		scoreAction = ActionReject
	case th.Quarantine > 0 && v.Score >= th.Quarantine:
		scoreAction = ActionQuarantine
	}
	if scoreAction != ActionAccept {
		addReason("spam-score")
		if scoreAction > action {
			action, reply, quarantine = scoreAction, Reply{}, "spam-score"
		}
	}

	// Allow lists and protected recipients soften what content found,
	// except for mandatory findings (malware).
	if action != ActionAccept && !mandatory {
		switch {
		case allowed:
			addReason("allowlisted")
			action, reply = ActionAccept, Reply{}
		case action != ActionTempfail && p.protectedOnly(m) == protectAll:
			addReason("protected-rcpt")
			action, reply = ActionAccept, Reply{}
		case action != ActionTempfail && action != ActionQuarantine && p.protectedOnly(m) == protectSome:
			// Rejecting would lose postmaster's copy; hold it for review.
			addReason("protected-rcpt")
			action, reply, quarantine = ActionQuarantine, Reply{}, "protected-rcpt"
		}
	}
	v.WouldBe = action
	v.Action = action
	if v.Mode == ModeMonitor {
		v.Action = ActionAccept
	}
	switch v.WouldBe {
	case ActionReject:
		if reply.Code/100 != 5 {
			reply = cfg.Replies.Reject
		}
	case ActionTempfail:
		if reply.Code/100 != 4 {
			reply = cfg.Replies.Tempfail
		}
	case ActionQuarantine:
		if quarantine == "" {
			quarantine = cfg.Replies.Quarantine
		}
		v.QuarantineReason = quarantine
		if others := strings.Join(v.Reasons, ","); others != "" && others != quarantine {
			v.QuarantineReason += " (" + others + ")"
		}
	}
	if v.WouldBe != ActionReject && v.WouldBe != ActionTempfail {
		reply = Reply{} // a reply only goes with a refusal
	}
	v.Reply = reply

	// Headers. Ours go on top: Authentication-Results first (RFC 8601 §5),
	// then the status fields.
	var top []Field
	top = append(top, Field{Name: "Authentication-Results", Value: formatAuthRes(cfg.AuthservID, authRes)})
	if cfg.Headers.Status != "" {
		val := fmt.Sprintf("%s, score=%.1f required=%.1f", yesNo(th.AddHeader > 0 && v.Score >= th.AddHeader), v.Score, th.AddHeader)
		if cfg.Headers.Reasons && len(v.Reasons) > 0 {
			val += " reasons=" + strings.Join(v.Reasons, ",")
		}
		if v.Mode == ModeMonitor && v.WouldBe != ActionAccept {
			val += " would=" + v.WouldBe.String()
		}
		top = append(top, Field{Name: cfg.Headers.Status, Value: val})
	}
	if cfg.Headers.Flag != "" && th.AddHeader > 0 && v.Score >= th.AddHeader {
		top = append(top, Field{Name: cfg.Headers.Flag, Value: "YES"})
	}
	v.Prepend = append(top, v.Prepend...)
	v.Delete = dedupRefs(append(v.Delete, p.forged(m)...))
}

// forged lists the incoming copies of what we add: an
// Authentication-Results that claims our authserv-id (RFC 8601 §5), and our
// own status fields. They go whatever the verdict, so that a message we
// accept unchecked (monitor mode, an oversize one) cannot carry them.
func (p *Pipeline) forged(m *Message) []HeaderRef {
	var refs []HeaderRef
	for i, f := range m.Header {
		if strings.EqualFold(f.Name, "Authentication-Results") && strings.EqualFold(authservID(f.Value), strings.TrimSuffix(p.cfg.AuthservID, ".")) {
			refs = append(refs, HeaderRef{Name: f.Name, Index: indexOf(m.Header, i)})
		}
	}
	for _, n := range []string{p.cfg.Headers.Status, p.cfg.Headers.Flag} {
		if n != "" {
			refs = appendAll(refs, m.Header, n)
		}
	}
	return refs
}

type protection int

const (
	protectNone protection = iota
	protectSome
	protectAll
)

func (p *Pipeline) protectedOnly(m *Message) protection {
	n := 0
	for _, r := range m.Rcpts {
		if p.cfg.IsProtected(r) {
			n++
		}
	}
	switch {
	case n == 0:
		return protectNone
	case n == len(m.Rcpts):
		return protectAll
	}
	return protectSome
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// indexOf returns the 1-based index of h[i] among the fields with its name.
func indexOf(h Header, i int) int {
	n := 0
	for j := 0; j <= i; j++ {
		if strings.EqualFold(h[j].Name, h[i].Name) {
			n++
		}
	}
	return n
}

func appendAll(refs []HeaderRef, h Header, name string) []HeaderRef {
	n := 0
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			n++
			refs = append(refs, HeaderRef{Name: f.Name, Index: n})
		}
	}
	return refs
}

func dedupRefs(refs []HeaderRef) []HeaderRef {
	seen := map[string]bool{}
	out := refs[:0]
	for _, r := range refs {
		k := strings.ToLower(r.Name) + "\x00" + fmt.Sprint(r.Index)
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

// Rcpt decides on one recipient at RCPT time. It returns the action for
// that recipient (accept unless a RCPT-time check objects) and the reply.
func (p *Pipeline) Rcpt(ctx context.Context, env *Envelope, rcpt string) (Action, Reply, []string) {
	mode := p.Mode()
	if mode == ModeAcceptAll || mode == ModeTempfailAll {
		return ActionAccept, Reply{}, nil // decided at end of message
	}
	action, reply := ActionAccept, Reply{}
	var reasons []string
	for _, s := range p.rcpt {
		cctx, cancel := context.WithTimeout(ctx, max(s.Timeout.D(), time.Second))
		// A copy: a check abandoned at its deadline may still read it while
		// the transport collects the next recipient's macros. The recipients
		// are not copied (that made a transaction quadratic in its
		// recipients): the transport only appends, and a slice capped at its
		// length is a view no later append can change (an append through it
		// reallocates).
		e := *env
		e.Macros, e.Rcpts = maps.Clone(env.Macros), env.Rcpts[:len(env.Rcpts):len(env.Rcpts)]
		r, err := safeRcpt(cctx, s.Check.(RcptChecker), &e, rcpt)
		cancel()
		if err != nil {
			r = Result{Action: s.OnError, Reasons: []string{s.Check.Name() + "-error"}, Detail: err.Error()}
		}
		reasons = append(reasons, r.Reasons...)
		if r.Action > action {
			action, reply = r.Action, r.Reply
		}
	}
	if action == ActionQuarantine || action == ActionDiscard {
		action = ActionAccept // not per-recipient actions; the message stage decides
	}
	if action == ActionReject && reply.Code/100 != 5 {
		reply = p.cfg.Replies.Reject
	}
	if action == ActionTempfail && reply.Code/100 != 4 {
		reply = p.cfg.Replies.Tempfail
	}
	if action != ActionAccept {
		if rm, ok := p.metrics.(RcptMetrics); ok {
			rm.RcptDone(action, reasons)
		}
		p.log.Info("recipient refused", "rcpt", rcpt, "from", env.MailFrom, "client", env.Client.Addr.String(), "action", action.String(), "reasons", reasons, "mode", string(mode))
		if mode == ModeMonitor {
			return ActionAccept, Reply{}, reasons
		}
	}
	return action, reply, reasons
}

// safeRcpt runs a RCPT-time check with panic recovery; one that ignores
// its context is abandoned at the deadline, as in runStep, so that the MTA
// gets an answer before its own milter timeout.
func safeRcpt(ctx context.Context, c RcptChecker, env *Envelope, rcpt string) (Result, error) {
	type out struct {
		r   Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		defer func() {
			if x := recover(); x != nil {
				done <- out{err: fmt.Errorf("policy: rcpt check panicked: %v", x)}
			}
		}()
		r, err := c.CheckRcpt(ctx, env, rcpt)
		done <- out{r, err}
	}()
	select {
	case o := <-done:
		return o.r, o.err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("policy: rcpt check: %w", ctx.Err())
	}
}
