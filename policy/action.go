package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Action is what the MTA is told to do with a message (or a recipient).
// The numeric order is the merge severity: when several checks ask for
// different actions, the highest one wins.
type Action uint8

const (
	ActionAccept     Action = iota // deliver, with header changes
	ActionQuarantine               // accept into the MTA's hold queue
	ActionTempfail                 // 4xx: try again later
	ActionDiscard                  // accept and drop silently
	ActionReject                   // 5xx
)

var actionNames = [...]string{"accept", "quarantine", "tempfail", "discard", "reject"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// actionAliases are other names accepted wherever an action is configured
// ([[rule]], [[limit]], on_error, every section): "hold" is Postfix's name
// for its hold queue.
var actionAliases = map[string]Action{"hold": ActionQuarantine}

// ParseAction reads an action name as written in the config: one of the
// names above or an alias, in any case. Every section uses it (through
// Action's UnmarshalText), so the vocabulary is the same everywhere.
func ParseAction(s string) (Action, error) {
	if a, ok := actionAliases[strings.ToLower(strings.TrimSpace(s))]; ok {
		return a, nil
	}
	for i, n := range actionNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("policy: unknown action %q (want accept, quarantine (or hold), tempfail, discard or reject)", s)
}

func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Reply is an SMTP reply: code, RFC 3463 enhanced status code and text.
type Reply struct {
	Code     int
	Enhanced string
	Text     string
}

func (r Reply) String() string {
	s := strconv.Itoa(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if r.Text != "" {
		s += " " + r.Text
	}
	return s
}

// IsZero reports whether no reply was set.
func (r Reply) IsZero() bool { return r.Code == 0 }

// ParseReply reads "550 5.7.1 Text" (the enhanced code is optional).
func ParseReply(s string) (Reply, error) {
	s = strings.TrimSpace(s)
	f := strings.SplitN(s, " ", 2)
	code, err := strconv.Atoi(f[0])
	if err != nil || code < 400 || code > 599 {
		return Reply{}, fmt.Errorf("policy: reply %q must start with a 4xx or 5xx code", s)
	}
	r := Reply{Code: code}
	if len(f) == 2 {
		rest := strings.TrimSpace(f[1])
		g := strings.SplitN(rest, " ", 2)
		if isEnhanced(g[0]) {
			if g[0][0] != f[0][0] {
				return Reply{}, fmt.Errorf("policy: reply %q: enhanced code class %c does not match %d", s, g[0][0], code)
			}
			r.Enhanced = g[0]
			if len(g) == 2 {
				r.Text = strings.TrimSpace(g[1])
			}
		} else {
			r.Text = rest
		}
	}
	if strings.ContainsAny(r.Text, "\r\n\x00") {
		return Reply{}, fmt.Errorf("policy: reply %q contains a line break or NUL", s)
	}
	return r, nil
}

// isEnhanced reports whether s looks like an RFC 3463 code (class.subject.detail).
func isEnhanced(s string) bool {
	p := strings.Split(s, ".")
	if len(p) != 3 || (p[0] != "4" && p[0] != "5" && p[0] != "2") {
		return false
	}
	for _, x := range p[1:] {
		if _, err := strconv.Atoi(x); err != nil || len(x) == 0 || len(x) > 3 {
			return false
		}
	}
	return true
}

func (r Reply) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r *Reply) UnmarshalText(b []byte) error {
	v, err := ParseReply(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
