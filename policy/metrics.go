package policy

import "time"

// Metrics is the seam to the metrics library, so that policy does not
// depend on it. The daemon's implementation lives with the binary.
type Metrics interface {
	CheckDone(check string, status Status, d time.Duration)
	MessageDone(v *Verdict)
}

// RcptMetrics is an optional extension of Metrics: recipients refused at
// RCPT time (deny lists, relay guard, SRS), which never reach MessageDone.
type RcptMetrics interface {
	RcptDone(action Action, reasons []string)
}

// FailureMetrics is an optional extension of Metrics: a step that panicked
// or overran its deadline, on any path (check, rcpt, observe).
type FailureMetrics interface {
	StepFailed(stage Stage, check string, cause Failure)
}

// Stage names the path a step ran on.
type Stage string

const (
	StageCheck   Stage = "check"   // end of message: Check.Check
	StageRcpt    Stage = "rcpt"    // RCPT time: RcptChecker.CheckRcpt
	StageObserve Stage = "observe" // after the verdict: Observer.Observe
	StageFinish  Stage = "finish"  // a delivering verdict: Finisher.Finish
)

// Failure is why a guarded step did not return normally.
type Failure string

const (
	FailurePanic    Failure = "panic"
	FailureDeadline Failure = "deadline"
)

type noMetrics struct{}

func (noMetrics) CheckDone(string, Status, time.Duration) {}
func (noMetrics) MessageDone(*Verdict)                    {}
