package policy

import (
	"context"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy/message"
)

// Status is a check's outcome in the vocabulary of its RFC or domain:
// "pass", "fail", "softfail", "temperror", "infected", "limited", ...
type Status string

// Statuses used by more than one check.
const (
	StatusNone  Status = "none"  // nothing to check, or nothing matched
	StatusPass  Status = "pass"  // checked and good
	StatusMatch Status = "match" // a list or rule matched
	StatusError Status = "error" // the check could not run (set by the pipeline)
	StatusSkip  Status = "skip"  // not run (mode, oversize, disabled for this message)
)

// Check is one step of the pipeline. It reports facts about a message; the
// operator's configuration, applied by the check's own rules, decides what
// they cost. Only "could not run at all" is an error: the pipeline then
// applies the step's configured on_error action.
//
// prior holds exactly the results of the checks this one runs After (see
// After) that ran; it is the check's own copy.
type Check interface {
	Name() string
	Check(ctx context.Context, m *message.Message, prior Results) (Result, error)
}

// After is implemented by checks that need other checks' results (spam
// scoring reads the authentication results, the auto-reply guard the spam
// and virus verdicts). Checks without dependencies run concurrently.
type After interface {
	After() []string
}

// RcptChecker is implemented by checks that can decide on a single recipient
// at RCPT time (relay guard, local-only addresses, SRS bounces). A result
// whose Action is not accept refuses that recipient only.
type RcptChecker interface {
	CheckRcpt(ctx context.Context, env *message.Envelope, rcpt string) (Result, error)
}

// Observer is implemented by checks that must see the final verdict, e.g.
// to remember the class of an inbound message (spam, virus, clean) for the
// auto-reply guard. The pipeline calls Observe after merging, within the
// step's timeout; errors are logged and do not change the verdict.
type Observer interface {
	Observe(ctx context.Context, m *message.Message, v *Verdict) error
}

// Finisher is implemented by steps that change the message as it leaves,
// after the verdict: DKIM signing and ARC sealing must sign the final
// message, our own header changes included. A Finisher is not run as a
// check. Finish runs, through the guard, for a verdict that delivers
// (accept or quarantine), after the observers; header is the header as
// it will leave (the verdict's deletions and prepends applied). The
// fields it returns go to the very top, in order. An error applies the
// step's on_error action with the reason NAME-error; on_error accept
// delivers the message unchanged.
type Finisher interface {
	Finish(ctx context.Context, m *message.Message, header message.Header, v *Verdict) ([]message.Field, error)
}

// Describer is implemented by checks whose set-up an operator needs to
// see (status, the start-up log): one line, e.g. which rule set and
// weights the spam check runs with.
type Describer interface {
	Describe() string
}

// Result is what one check found.
type Result struct {
	Status Status
	Detail string // for the log, never for the SMTP client

	// Score is added to the message's total score.
	Score float64
	// Signals explain the score (name → contribution), for --explain.
	Signals []Signal

	// Action is what this check asks for; Reasons are the stable reason
	// codes for it (they also explain a score). Reply overrides the
	// configured generic reply text for reject/tempfail.
	Action  Action
	Reasons []string
	Reply   Reply
	// Mandatory marks an action that allow lists and protected recipients
	// cannot soften (a virus).
	Mandatory bool
	// QuarantineReason is given to the MTA with ActionQuarantine.
	QuarantineReason string
	// Allowlisted asks the merge to soften every non-mandatory action of
	// the message (an allow list matched).
	Allowlisted bool

	// AuthResults are entries for our Authentication-Results header.
	AuthResults []authres.Result
	// Headers are fields to add at the top of the message.
	Headers []message.Field
	// RemoveHeaders names fields to delete (every instance), e.g. our own
	// status headers forged by the sender.
	RemoveHeaders []string
	// ChangeFrom, if set, replaces the envelope sender (e.g. SRS).
	ChangeFrom string
	// AddRcpts and DeleteRcpts change the envelope recipients.
	AddRcpts, DeleteRcpts []string

	// Data carries a check's typed result for checks that run After it.
	// Only the package that sets it reads it, through a typed accessor it
	// exports (e.g. auth.SPFOutcomeOf); other packages never assert it.
	Data any
}

// Signal is one named contribution to the score.
type Signal struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// Results maps check names to the results of checks that already ran.
type Results map[string]Result

// StepConfig is embedded in every check's configuration section.
type StepConfig struct {
	Enabled bool     `toml:"enabled"`
	Timeout Duration `toml:"timeout"`
	OnError Action   `toml:"on_error"`
}

// DefaultStep is the usual StepConfig: enabled, 30 s, tempfail on error.
func DefaultStep() StepConfig {
	return StepConfig{Enabled: true, Timeout: Duration(30 * time.Second), OnError: ActionTempfail}
}
