// Package quarantine is mailwarden's own quarantine: messages that a
// verdict holds back are kept, gzip-compressed, in a directory, indexed
// with their envelope and per-recipient state, reviewed on a web page
// (sub-package web), announced in a digest, released, deleted or expired.
//
// Mechanism. Put streams the message as received (RFC 5322 text) into a
// temporary file through gzip, hashing it on the way (SHA-256), syncs the
// file, renames it to dir/xx/<id>.eml.gz, syncs the directory, and only
// then writes the index entry; it returns after both are durable, so the
// MTA gets its answer (RFC 5321 §4.2.5: a 250 after end of data takes
// responsibility for the message) only once our copy is safe. A failing
// disk or index gives an error wrapping ErrUnavailable: the pipeline then
// applies the step's on_error action (tempfail by default), so a message
// is never lost and never let through unseen.
//
// Every recipient of an item has its own state: held, then released,
// deleted or expired, with who changed it and when (state.go). Release
// re-injects the message over SMTP (RFC 5321) to a loopback listener that
// skips the milters, with the original envelope sender and only the
// releasing recipient, plus an X-Mailwarden-Released header signed with
// HMAC-SHA256 (RFC 2104) so that a Sieve rule can keep it out of Junk.
//
// In hold mode the MTA keeps the message in its hold queue; the index then
// records the Postfix queue id, and release runs `postsuper -H` and
// `postqueue -i`, delete `postsuper -d`. Postfix releases a held message
// to all its recipients at once, so per-recipient release, a user's own
// release of a message that also went to others, and expiry of the copy by
// us are not possible in hold mode.
//
// Retention is per category (spam 14 days, virus 30 days by default) with
// a cap on the total bytes kept; Expire is the job the daemon runs.
//
// Each recipient has a sender list of their own (senders.go), filled by
// "release and allow sender" and "deny sender" and kept in the index: the
// daemon reads it for every message (Personal) and Apply adjusts the
// verdict per recipient: an allowed sender's spam is delivered to that
// recipient, a denied sender's mail held for them; malware never spared.
package quarantine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Category is why a message was quarantined.
type Category uint8

const (
	CategorySpam      Category = iota + 1 // spam score at or above the quarantine threshold
	CategoryVirus                         // a scanner found malware
	CategoryPolicy                        // an operator rule (lists, body rules, attachments)
	CategoryDMARC                         // DMARC policy quarantine (RFC 7489 §6.3 p=quarantine)
	CategoryLimit                         // a rate limit
	CategoryAutoreply                     // auto-reply policing
)

var categoryNames = [...]string{"", "spam", "virus", "policy", "dmarc", "limit", "autoreply"}

// Categories lists every category in order.
var Categories = []Category{CategorySpam, CategoryVirus, CategoryPolicy, CategoryDMARC, CategoryLimit, CategoryAutoreply}

func (c Category) String() string {
	if int(c) < len(categoryNames) && c != 0 {
		return categoryNames[c]
	}
	return "category(" + strconv.Itoa(int(c)) + ")"
}

// ParseCategory reads a category name.
func ParseCategory(s string) (Category, error) {
	for i, n := range categoryNames {
		if i > 0 && strings.EqualFold(s, n) {
			return Category(i), nil
		}
	}
	return 0, fmt.Errorf("quarantine: unknown category %q", s)
}

func (c Category) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c *Category) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*c = 0
		return nil
	}
	v, err := ParseCategory(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// State is where one recipient's copy stands.
type State uint8

const (
	StateHeld     State = iota + 1 // waiting for review
	StateReleased                  // re-injected for this recipient
	StateDeleted                   // removed by a user or an admin
	StateExpired                   // removed by retention
)

var stateNames = [...]string{"", "held", "released", "deleted", "expired"}

func (s State) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// ParseState reads a state name.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if i > 0 && strings.EqualFold(s, n) {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("quarantine: unknown state %q", s)
}

func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Mode is where the quarantined message lives.
type Mode uint8

const (
	ModeStore Mode = iota + 1 // our own directory (default)
	ModeHold                  // the MTA's hold queue (Postfix)
)

var modeNames = [...]string{"", "store", "hold"}

func (m Mode) String() string {
	if int(m) < len(modeNames) && m != 0 {
		return modeNames[m]
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode reads "store" or "hold".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "", "store":
		return ModeStore, nil
	case "hold":
		return ModeHold, nil
	}
	return 0, fmt.Errorf("quarantine: unknown mode %q (want store or hold)", s)
}

func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Meta is what the pipeline knows about a message it quarantines.
type Meta struct {
	Time       time.Time // when it was received; zero means now
	QueueID    string    // the MTA's queue id (required in hold mode)
	Client     string    // client address
	HELO       string
	MailFrom   string   // envelope sender, "" for the null sender
	Recipients []string // the recipients whose copy is quarantined
	Category   Category
	Score      float64
	Reasons    []string // stable reason codes of the verdict
	// From and Subject, decoded (RFC 2047); when empty, Put reads them
	// from the message header.
	From, Subject string
}

// Recipient is one recipient of an item and the state of its copy.
type Recipient struct {
	Addr  string    `json:"addr"`
	State State     `json:"state"`
	By    string    `json:"by,omitempty"` // who changed the state last
	At    time.Time `json:"at"`           // when
}

// Item is one quarantined message.
type Item struct {
	ID         string      `json:"id"` // 32 hex digits, 128 random bits
	Mode       Mode        `json:"mode"`
	Time       time.Time   `json:"time"`
	QueueID    string      `json:"queue_id,omitempty"`
	Client     string      `json:"client,omitempty"`
	HELO       string      `json:"helo,omitempty"`
	MailFrom   string      `json:"mail_from"`
	Recipients []Recipient `json:"recipients"`
	Category   Category    `json:"category"`
	Score      float64     `json:"score"`
	Reasons    []string    `json:"reasons,omitempty"`
	From       string      `json:"from,omitempty"`
	Subject    string      `json:"subject,omitempty"`
	Size       int64       `json:"size"`             // bytes as received
	Stored     int64       `json:"stored,omitempty"` // bytes on disk (compressed); 0 once removed
	SHA256     string      `json:"sha256,omitempty"` // of the message as received, hex
	// Purged is when the stored copy was removed (no recipient held).
	Purged time.Time `json:"purged,omitzero"`
}

// Recipient returns the entry of addr (case-insensitive), or nil.
func (it *Item) Recipient(addr string) *Recipient {
	for i := range it.Recipients {
		if strings.EqualFold(it.Recipients[i].Addr, addr) {
			return &it.Recipients[i]
		}
	}
	return nil
}

// Held reports whether any recipient's copy is still held.
func (it *Item) Held() bool {
	return slices.ContainsFunc(it.Recipients, func(r Recipient) bool { return r.State == StateHeld })
}

// HasRecipient reports whether any of addrs is a recipient of the item.
func (it *Item) HasRecipient(addrs []string) bool {
	for _, a := range addrs {
		if it.Recipient(a) != nil {
			return true
		}
	}
	return false
}

var (
	// ErrUnavailable marks errors where the quarantine could not keep or
	// read a message (disk full, index unreachable). They are temporary:
	// the pipeline applies on_error (tempfail by default).
	ErrUnavailable = errors.New("quarantine: unavailable")
	// ErrNotFound: no item with that id, or no such recipient.
	ErrNotFound = errors.New("quarantine: not found")
	// ErrForbidden: the actor may not do this to this item.
	ErrForbidden = errors.New("quarantine: forbidden")
	// ErrGone: the stored copy was removed (released to all, deleted,
	// expired) or the item is in hold mode.
	ErrGone = errors.New("quarantine: message no longer stored")
)

// TransitionError is a state change the state machine refuses.
type TransitionError struct {
	ID, Rcpt string
	From, To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("quarantine: %s for %s: cannot go from %s to %s", e.ID, e.Rcpt, e.From, e.To)
}

// StoreError is a failure of the disk or the index. It wraps
// ErrUnavailable and is temporary.
type StoreError struct {
	Op  string // "write", "sync", "index", ...
	Err error
}

func (e *StoreError) Error() string { return "quarantine: " + e.Op + ": " + e.Err.Error() }

func (e *StoreError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Temporary reports true: the MTA should retry later.
func (e *StoreError) Temporary() bool { return true }
