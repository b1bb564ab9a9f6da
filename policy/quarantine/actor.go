package quarantine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Role is what an actor may do.
type Role uint8

const (
	RoleUser   Role = iota + 1 // sees and acts on its own addresses only
	RoleAdmin                  // everything
	RoleSystem                 // expiry, the command line
)

var roleNames = [...]string{"", "user", "admin", "system"}

func (r Role) String() string {
	if int(r) < len(roleNames) && r != 0 {
		return roleNames[r]
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r *Role) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*r = 0
		return nil
	}
	for i, n := range roleNames {
		if i > 0 && string(b) == n {
			*r = Role(i)
			return nil
		}
	}
	return fmt.Errorf("quarantine: unknown role %q", b)
}

// Action is something done to an item.
type Action uint8

const (
	ActionRelease Action = iota + 1
	ActionDelete
	ActionExpire
	ActionView     // reading the message (audited for virus items)
	ActionAllow    // release and allow the sender
	ActionDeny     // deny the sender
	ActionLearnHam // feed Bayes
	ActionLearnSpam
	ActionLogin
	ActionUnlist // a sender removed from a recipient's list
)

var actionNames = [...]string{"", "release", "delete", "expire", "view", "allow", "deny", "learn-ham", "learn-spam", "login", "unlist"}

func (a Action) String() string {
	if int(a) < len(actionNames) && a != 0 {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// ParseAction reads an action name.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if i > 0 && s == n {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("quarantine: unknown action %q", s)
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

// Actor is who acts: an admin, a user with their addresses, or the system.
type Actor struct {
	Name  string // "admin", the user's address, "expiry", "cli"
	Role  Role
	Addrs []string // a user's addresses
}

// Sees reports whether the actor may see the item at all: a user only
// items with one of their addresses among the recipients.
func (a Actor) Sees(it *Item) bool {
	switch a.Role {
	case RoleAdmin, RoleSystem:
		return true
	case RoleUser:
		return it.HasRecipient(a.Addrs)
	}
	return false
}

// owns reports whether rcpt is one of a user's addresses.
func (a Actor) owns(rcpt string) bool {
	return slices.ContainsFunc(a.Addrs, func(s string) bool { return strings.EqualFold(s, rcpt) })
}

// userRelease is what users may release themselves; virus, limit and
// autoreply items need an admin.
var userRelease = map[Category]bool{CategorySpam: true, CategoryPolicy: true, CategoryDMARC: true}

// May reports whether the actor may do act on rcpt's copy of it, as an
// error wrapping ErrForbidden when not.
func (a Actor) May(act Action, it *Item, rcpt string) error {
	switch a.Role {
	case RoleAdmin, RoleSystem:
		return nil
	case RoleUser:
	default:
		return fmt.Errorf("%w: no role", ErrForbidden)
	}
	if !a.owns(rcpt) || it.Recipient(rcpt) == nil {
		return fmt.Errorf("%w: %s is not a recipient of yours", ErrForbidden, rcpt)
	}
	switch act {
	case ActionRelease, ActionAllow:
		if !userRelease[it.Category] {
			return fmt.Errorf("%w: %s items are released by an admin", ErrForbidden, it.Category)
		}
		// Postfix releases a held message to every recipient at once.
		if it.Mode == ModeHold {
			for _, r := range it.Recipients {
				if r.State == StateHeld && !a.owns(r.Addr) {
					return fmt.Errorf("%w: held mail with other recipients is released by an admin", ErrForbidden)
				}
			}
		}
	case ActionView:
		if it.Category == CategoryVirus {
			return fmt.Errorf("%w: virus items are shown to admins", ErrForbidden)
		}
	case ActionDelete, ActionDeny, ActionLearnHam, ActionLearnSpam:
	default:
		return fmt.Errorf("%w: %s", ErrForbidden, act)
	}
	return nil
}

// normAddr is the key of a user's address: lower case, trimmed.
func normAddr(a string) string { return strings.ToLower(strings.TrimSpace(a)) }
