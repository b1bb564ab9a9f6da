package policy

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// DefaultTimeout is a step's deadline when its section sets none.
const DefaultTimeout = 30 * time.Second

// ErrPanic marks the error of a step that panicked.
var ErrPanic = errors.New("policy: step panicked")

// guard is the one runner of every step on every path (check, rcpt,
// observe): it gives fn the step's deadline, recovers a panic (logged with
// its stack), abandons a step that ignores its context at the deadline so
// that the MTA gets an answer before its own milter timeout, and reports
// both failures to the metrics.
func (p *Pipeline) guard(ctx context.Context, stage Stage, s Step, fn func(context.Context) (Result, error)) (Result, error) {
	name := s.Check.Name()
	timeout := s.Timeout.D()
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type out struct {
		r   Result
		err error
	}
	done := make(chan out, 1)
	goWorker(func() {
		defer func() {
			if x := recover(); x != nil {
				p.log.Error("step panicked", "stage", string(stage), "check", name, "panic", fmt.Sprint(x), "stack", string(debug.Stack()))
				p.failed(stage, name, FailurePanic)
				done <- out{err: fmt.Errorf("%w: %s %s: %v", ErrPanic, stage, name, x)}
			}
		}()
		r, err := fn(cctx)
		done <- out{r, err}
	})
	select {
	case o := <-done:
		return o.r, o.err
	case <-cctx.Done():
		if errors.Is(cctx.Err(), context.DeadlineExceeded) {
			p.failed(stage, name, FailureDeadline)
		}
		return Result{}, fmt.Errorf("policy: %s %s: %w", stage, name, cctx.Err())
	}
}

func (p *Pipeline) failed(stage Stage, name string, f Failure) {
	if fm, ok := p.metrics.(FailureMetrics); ok {
		fm.StepFailed(stage, name, f)
	}
}
