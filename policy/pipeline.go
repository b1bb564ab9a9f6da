package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/mailwarden/mailwarden/policy/message"
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

// Env is what a module gets to build its steps. Services (resolver, store,
// scanners) are not here: the daemon builds them once and hands each
// module the ones it needs as typed constructor arguments, so that they
// outlive a reload.
type Env struct {
	Config *Config
	Logger *slog.Logger
	// Metrics receives per-check observations; never nil.
	Metrics Metrics

	closers []io.Closer
}

// OnClose registers a resource that belongs to this pipeline alone; it is
// closed with the pipeline, or at once if the build fails.
func (e *Env) OnClose(c io.Closer) { e.closers = append(e.closers, c) }

// Pipeline runs the configured checks on a message and merges their results
// into one Verdict. It is immutable; a reload builds a new one. Building
// one starts no goroutine: background loops belong to the services, which
// the daemon starts.
type Pipeline struct {
	cfg       *Config
	levels    [][]Step        // checks grouped so that each level only needs earlier ones
	deps      map[string]bool // checks named in some check's After set
	rcpt      []Step          // steps that also decide at RCPT time
	observers []Step          // steps that see the final verdict
	finishers []Step          // steps that change the delivered message (not checks)
	log       *slog.Logger
	metrics   Metrics
	modes     *ModeSwitch

	mu      sync.Mutex
	closers []io.Closer
}

// New builds a pipeline from a loaded config and the module list. log,
// modes and metrics may be nil.
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
	env := &Env{Config: cfg, Logger: log, Metrics: metrics}
	steps := []Step{
		{Check: &listCheck{cfg: cfg}, StepConfig: DefaultStep()},
		{Check: &ruleCheck{cfg: cfg}, StepConfig: DefaultStep()},
	}
	for _, m := range modules {
		if m.Build == nil {
			continue // a section only (a service's or the daemon's)
		}
		sec, ok := cfg.Sections[m.Name]
		if !ok {
			sec = m.Default()
		}
		s, err := m.Build(sec, env)
		if err != nil {
			closeAll(env.closers)
			return nil, fmt.Errorf("policy: %s: %w", m.Name, err)
		}
		steps = append(steps, s...)
	}
	var checks, finishers []Step
	for _, s := range steps {
		if _, ok := s.Check.(Finisher); ok {
			finishers = append(finishers, s)
			continue
		}
		checks = append(checks, s)
	}
	steps = checks
	levels, err := order(steps)
	if err != nil {
		closeAll(env.closers)
		return nil, err
	}
	p := &Pipeline{cfg: cfg, levels: levels, finishers: finishers, log: log, metrics: metrics, modes: modes, closers: env.closers}
	p.deps = map[string]bool{}
	for _, s := range steps {
		for _, d := range after(s) {
			p.deps[d] = true
		}
	}
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
		for _, d := range after(byName[n]) {
			if _, ok := byName[d]; !ok {
				continue // the dependency is disabled: run without it
			}
			dl, err := visit(d, append(path, n))
			if err != nil {
				return 0, err
			}
			l = max(l, dl+1)
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

// after is the step's After set (nil without dependencies).
func after(s Step) []string {
	if a, ok := s.Check.(After); ok {
		return a.After()
	}
	return nil
}

// Config returns the pipeline's configuration.
func (p *Pipeline) Config() *Config { return p.cfg }

// Close releases what the pipeline's modules registered with Env.OnClose
// and what a reload retired with it (Holder.Swap). Call it once no message
// uses the pipeline any more.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	c := p.closers
	p.closers = nil
	p.mu.Unlock()
	return closeAll(c)
}

// retire adds resources to close with the pipeline.
func (p *Pipeline) retire(c []io.Closer) {
	p.mu.Lock()
	p.closers = append(p.closers, c...)
	p.mu.Unlock()
}

func closeAll(cs []io.Closer) error {
	var errs []error
	for _, c := range cs {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

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

// Describe returns "NAME: line" for every check that is a Describer.
func (p *Pipeline) Describe() []string {
	var d []string
	for _, l := range p.levels {
		for _, s := range l {
			if x, ok := s.Check.(Describer); ok {
				d = append(d, s.Check.Name()+": "+x.Describe())
			}
		}
	}
	return d
}

// Run decides on a complete message.
func (p *Pipeline) Run(ctx context.Context, m *message.Message) *Verdict {
	start := time.Now()
	v := &Verdict{Mode: p.Mode()}
	defer func() {
		v.Duration = time.Since(start)
		p.metrics.MessageDone(v)
	}()
	switch v.Mode {
	case ModeAcceptAll:
		v.Action, v.WouldBe, v.Reasons = ActionAccept, ActionAccept, []string{ReasonAcceptAll}
		// No check runs, but a forged Authentication-Results claiming our
		// id must still go (RFC 8601 §5): downstream filters trust it.
		v.Delete = dedupRefs(p.forged(m))
		return v
	case ModeTempfailAll:
		v.Action, v.WouldBe, v.Reasons = ActionTempfail, ActionTempfail, []string{ReasonTempfailAll}
		v.Reply = p.cfg.Replies.Tempfail
		return v
	}
	if m.Oversize {
		p.oversize(m, v)
		return v
	}
	// Sized once: a CheckReport is large, and growing v.Checks by
	// appending copied it over and over (~10 KB of garbage per message).
	n := 0
	for _, level := range p.levels {
		n += len(level)
	}
	// Only the results some check reads are kept for the next levels: a
	// Result is large, so each entry of the map is an allocation of its own.
	results := make(Results, len(p.deps))
	if n > 0 {
		v.Checks = make([]CheckReport, n)
	}
	off := 0
	for _, level := range p.levels {
		reports := v.Checks[off : off+len(level)]
		p.runLevel(ctx, m, level, results, reports)
		for _, r := range reports {
			if p.deps[r.Name] {
				results[r.Name] = r.Result
			}
		}
		off += len(level)
	}
	p.merge(m, v)
	p.observe(ctx, m, v)
	p.finish(ctx, m, v)
	return v
}

// oversize decides on a message whose body was not kept: no check can
// judge it, and scanning only part of it would let malware through behind
// padding.
func (p *Pipeline) oversize(m *message.Message, v *Verdict) {
	v.WouldBe = p.cfg.MaxMessageSizeAction
	v.Reasons = []string{ReasonOversize}
	v.Reply = p.cfg.Replies.Oversize
	if v.WouldBe == ActionTempfail && v.Reply.Code/100 == 5 {
		v.Reply = p.cfg.Replies.Tempfail
	}
	v.QuarantineReason = ReasonOversize
	v.Action = v.WouldBe
	if v.Mode == ModeMonitor {
		v.Action = ActionAccept
	}
	v.Delete = dedupRefs(p.forged(m))
}

// runLevel runs one level's checks concurrently. Each check gets its own
// prior: exactly the results of its After set, copied, so that a check
// abandoned at its deadline may keep reading it while later levels write
// theirs (a concurrent map read and write is a fatal error, not a panic).
// The reports go into reports, one per step (a slice of the verdict's,
// which is sized once).
func (p *Pipeline) runLevel(ctx context.Context, m *message.Message, level []Step, results Results, reports []CheckReport) {
	var wg sync.WaitGroup
	for i, s := range level {
		prior := Results{}
		for _, d := range after(s) {
			if r, ok := results[d]; ok {
				prior[d] = r
			}
		}
		wg.Add(1)
		goWorker(func() {
			defer wg.Done()
			reports[i] = p.runStep(ctx, m, s, prior)
		})
	}
	wg.Wait()
}

// runStep runs one check through the guard and turns an error into the
// step's on_error result.
func (p *Pipeline) runStep(ctx context.Context, m *message.Message, s Step, prior Results) CheckReport {
	name := s.Check.Name()
	start := time.Now()
	r, err := p.guard(ctx, StageCheck, s, func(ctx context.Context) (Result, error) {
		return s.Check.Check(ctx, m, prior)
	})
	rep := CheckReport{Name: name, Duration: time.Since(start)}
	if err != nil {
		rep.Error = err.Error()
		r = errorResult(s, err)
		r.Status = StatusError
		r.Mandatory = s.Mandatory
		p.log.Debug("check failed", "queue_id", m.QueueID, "check", name, "error", err)
	} else if r.Status == "" {
		r.Status = StatusNone
	}
	rep.Result = r
	rep.Status, rep.Score, rep.Action, rep.Reasons, rep.Detail, rep.Signals = r.Status, r.Score, r.Action, r.Reasons, r.Detail, r.Signals
	p.metrics.CheckDone(name, rep.Status, rep.Duration)
	if err == nil {
		p.log.Debug("check done", "queue_id", m.QueueID, "check", name, "status", string(r.Status), "score", r.Score, "action", r.Action.String(), "reasons", r.Reasons, "detail", r.Detail, "duration", rep.Duration)
	}
	return rep
}

// errorResult is what a step that could not run asks for: its on_error
// action with the reason NAME-error (none when on_error is accept).
func errorResult(s Step, err error) Result {
	r := Result{Action: s.OnError, Reasons: []string{s.Check.Name() + "-error"}, Detail: err.Error()}
	if s.OnError == ActionAccept {
		r.Reasons = nil
	}
	return r
}

// observe hands the verdict to the checks that want it, each through the
// guard; errors are logged and change nothing.
func (p *Pipeline) observe(ctx context.Context, m *message.Message, v *Verdict) {
	for _, s := range p.observers {
		_, err := p.guard(ctx, StageObserve, s, func(ctx context.Context) (Result, error) {
			return Result{}, s.Check.(Observer).Observe(ctx, m, v)
		})
		if err != nil {
			p.log.Warn("observer failed", "queue_id", m.QueueID, "check", s.Check.Name(), "error", err)
		}
	}
}

// finish runs the finishers on a delivering verdict. Each sees the header
// with the changes of the verdict and of the finishers before it. A
// failing finisher applies its on_error action (merged like a check's)
// and adds nothing.
func (p *Pipeline) finish(ctx context.Context, m *message.Message, v *Verdict) {
	for _, s := range p.finishers {
		if v.Action != ActionAccept && v.Action != ActionQuarantine {
			return
		}
		var fields []message.Field
		_, err := p.guard(ctx, StageFinish, s, func(ctx context.Context) (Result, error) {
			var err error
			fields, err = s.Check.(Finisher).Finish(ctx, m, FinalHeader(m.Header, v), v)
			return Result{}, err
		})
		if err != nil {
			p.log.Warn("finisher failed", "queue_id", m.QueueID, "step", s.Check.Name(), "error", err)
			r := errorResult(s, err)
			addReason(v, r.Reasons...)
			if r.Action > v.WouldBe {
				v.WouldBe = r.Action
			}
			if r.Action > v.Action && v.Mode != ModeMonitor {
				v.Action = r.Action
				v.Reply = p.cfg.Replies.Tempfail
				if r.Action == ActionReject {
					v.Reply = p.cfg.Replies.Reject
				}
			}
			continue
		}
		v.Prepend = append(append([]message.Field(nil), fields...), v.Prepend...)
	}
}

// FinalHeader is the header a verdict delivers: the message's fields
// without those the verdict deletes, below the fields it prepends.
func FinalHeader(h message.Header, v *Verdict) message.Header {
	out := append(message.Header(nil), v.Prepend...)
	seen := map[string]int{}
	for _, f := range h {
		key := strings.ToLower(f.Name)
		seen[key]++
		deleted := false
		for _, d := range v.Delete {
			if strings.EqualFold(d.Name, f.Name) && d.Index == seen[key] {
				deleted = true
				break
			}
		}
		if !deleted {
			out = append(out, f)
		}
	}
	return out
}

// Rcpt decides on one recipient at RCPT time. It returns the action for
// that recipient (accept unless a RCPT-time check objects) and the reply.
func (p *Pipeline) Rcpt(ctx context.Context, env *message.Envelope, rcpt string) (Action, Reply, []string) {
	mode := p.Mode()
	if mode == ModeAcceptAll || mode == ModeTempfailAll {
		return ActionAccept, Reply{}, nil // decided at end of message
	}
	action, reply := ActionAccept, Reply{}
	var reasons []string
	for _, s := range p.rcpt {
		// A copy: a check abandoned at its deadline may still read it while
		// the transport collects the next recipient's macros. The recipients
		// are not copied (that made a transaction quadratic in its
		// recipients): the transport only appends, and a slice capped at its
		// length is a view no later append can change (an append through it
		// reallocates).
		e := *env
		e.Macros, e.Rcpts = maps.Clone(env.Macros), env.Rcpts[:len(env.Rcpts):len(env.Rcpts)]
		r, err := p.guard(ctx, StageRcpt, s, func(ctx context.Context) (Result, error) {
			return s.Check.(RcptChecker).CheckRcpt(ctx, &e, rcpt)
		})
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
