package policy

import (
	"time"

	"github.com/mailwarden/mailwarden/policy/message"
)

// Reason codes the pipeline itself gives (checks give their own).
const (
	ReasonSpamScore     = "spam-score"       // the total score reached quarantine or reject
	ReasonAllowlisted   = "allowlisted"      // an allow list softened the action
	ReasonProtectedRcpt = "protected-rcpt"   // postmaster/abuse softened the action
	ReasonOversize      = "message-oversize" // bigger than max_message_size
	ReasonAcceptAll     = "mode-accept-all"
	ReasonTempfailAll   = "mode-tempfail-all"
)

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
	// Flagged is the verdict's spam class: the score reached the
	// add_header level of the recipients' thresholds (Config.ThresholdsFor).
	Flagged bool
	Reasons []string
	// Reply is the SMTP reply for reject and tempfail.
	Reply            Reply
	QuarantineReason string
	// Prepend are header fields to insert at the top, in order.
	Prepend []message.Field
	// Delete are header fields to remove.
	Delete      []HeaderRef
	ChangeFrom  string
	AddRcpts    []string
	DeleteRcpts []string
	Checks      []CheckReport
	Duration    time.Duration
}

// Result returns the result of the check called name, if it ran. Checks
// export their name as a constant (virus.Name, spam.Name, ...).
func (v *Verdict) Result(name string) (Result, bool) {
	for _, c := range v.Checks {
		if c.Name == name {
			return c.Result, true
		}
	}
	return Result{}, false
}

// HasReason reports whether code is among the verdict's reasons.
func (v *Verdict) HasReason(code string) bool { return contains(v.Reasons, code) }
