package sign

import (
	"errors"
	"io"
	"strings"
	"time"
)

// Status says what Signer.Sign did with a message (a stable reason code
// for logs and metrics).
type Status string

// Statuses.
const (
	StatusSigned      Status = "signed"       // at least one signature
	StatusNotOurs     Status = "not-ours"     // inbound or relayed mail is never signed
	StatusNoFrom      Status = "no-from"      // no From field
	StatusSeveralFrom Status = "several-from" // several From fields or mailboxes
	StatusBadFrom     Status = "bad-from"     // unparsable From
	StatusNoRule      Status = "no-rule"      // no signing rule for the From address
	StatusNotAllowed  Status = "not-allowed"  // the SASL user may not send as that domain
	StatusNoKey       Status = "no-key"       // the rule's keys are outside their window or their record does not match
	StatusError       Status = "error"        // signing failed (see Outcome.Err; on_sign_error decides)
)

// Request is a message at the end of its transaction, as it will leave.
type Request struct {
	Header []Field   // the final header, our own changes included
	Body   io.Reader // the body
	Ours   bool      // SASL-authenticated, trusted network or local submission
	User   string    // SASL login name, "" when not authenticated
	Now    time.Time
}

// Outcome is the result of Signer.Sign.
type Outcome struct {
	Status     Status
	Signatures []Signature // insert at the top, in this order
	From       string      // the author address, when found
	Err        error
}

// Signer decides whether a message gets signatures and makes them.
type Signer struct {
	Table   *Table
	Tracker *Tracker // nil: every key counts as usable (tests, "dkim sign" tools)
	// Senders limits authenticated users to their domains. Users not
	// listed may send as the domain of their login name when it is an
	// address. Mail from trusted networks and local submissions is not
	// limited.
	Senders Senders
}

// Sign decides and signs.
func (s *Signer) Sign(req Request) Outcome {
	if !req.Ours {
		return Outcome{Status: StatusNotOurs}
	}
	from, err := FromAddress(req.Header)
	switch {
	case errors.Is(err, ErrNoFrom):
		return Outcome{Status: StatusNoFrom}
	case errors.Is(err, ErrSeveralFrom):
		return Outcome{Status: StatusSeveralFrom}
	case err != nil:
		return Outcome{Status: StatusBadFrom, Err: err}
	}
	out := Outcome{From: from}
	if len(s.Table.Match(from)) == 0 {
		out.Status = StatusNoRule
		return out
	}
	if req.User != "" {
		domain := from[strings.LastIndexByte(from, '@')+1:]
		if !s.Senders.MaySendAs(req.User, domain) {
			out.Status = StatusNotAllowed
			return out
		}
	}
	var usable func(*Key) bool
	if s.Tracker != nil {
		usable = s.Tracker.Usable
	}
	keys := s.Table.Select(from, req.Now, usable)
	if len(keys) == 0 {
		out.Status = StatusNoKey
		return out
	}
	out.Signatures, out.Err = Sign(req.Header, req.Body, keys, req.Now, s.Table.Expire())
	if out.Err != nil {
		out.Status, out.Signatures = StatusError, nil
		return out
	}
	out.Status = StatusSigned
	return out
}
