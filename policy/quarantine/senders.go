package quarantine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
)

// A recipient's own sender list. "Release and allow sender" and "deny
// sender" on the page put the envelope sender (RFC 5321 §4.1.1.2 MAIL
// FROM) on the list of the recipient they act for; the daemon reads the
// lists of a message's recipients before it answers the MTA (Personal,
// Apply). An allowed sender spares that recipient's copy from a spam
// quarantine or reject; a denied one is quarantined (or rejected) for
// that recipient as a policy item. Malware is never spared. Only an
// enforcing verdict is changed (not monitor, accept-all, tempfail-all).

// ListKind is what a recipient's list says of a sender.
type ListKind uint8

const (
	ListAllow ListKind = iota + 1 // spare this sender's spam
	ListDeny                      // quarantine (or reject) this sender's mail
)

var listNames = [...]string{"", "allow", "deny"}

func (k ListKind) String() string {
	if int(k) < len(listNames) && k != 0 {
		return listNames[k]
	}
	return "list(" + strconv.Itoa(int(k)) + ")"
}

// ParseListKind reads allow or deny.
func ParseListKind(s string) (ListKind, error) {
	for i, n := range listNames {
		if i > 0 && s == n {
			return ListKind(i), nil
		}
	}
	return 0, fmt.Errorf("quarantine: unknown list %q (want allow or deny)", s)
}

func (k ListKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k *ListKind) UnmarshalText(b []byte) error {
	v, err := ParseListKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// SenderEntry is one sender on a recipient's list.
type SenderEntry struct {
	Sender string    `json:"sender"`
	Kind   ListKind  `json:"kind"`
	By     string    `json:"by"` // the actor who listed it
	At     time.Time `json:"at"`
	ID     string    `json:"id,omitempty"` // the item it was listed from
}

// ErrNullSender: the null sender (bounces, RFC 5321 §4.5.5) cannot be
// listed: it would allow or deny every bounce.
var ErrNullSender = errors.New("quarantine: the null sender cannot be listed")

// normSender is the key of a sender: the address, lower case. RFC 5321
// §2.4 lets the local part be case-sensitive, but no site relies on it
// and senders vary their case.
func normSender(s string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(s), "<>"))
}

// mayList checks that the actor may change or read rcpt's list: a user
// their own addresses only, an admin and the system anyone's.
func (a Actor) mayList(rcpt string) error {
	switch a.Role {
	case RoleAdmin, RoleSystem:
		return nil
	case RoleUser:
		if a.owns(rcpt) {
			return nil
		}
		return fmt.Errorf("%w: %s is not an address of yours", ErrForbidden, rcpt)
	}
	return fmt.Errorf("%w: no role", ErrForbidden)
}

// ListSender puts sender on rcpt's list (replacing an entry of the other
// kind) and audits it; from is the item it was listed from, or nil.
func (q *Quarantine) ListSender(ctx context.Context, a Actor, rcpt, sender string, kind ListKind, from *Item) error {
	if err := a.mayList(rcpt); err != nil {
		return err
	}
	if kind != ListAllow && kind != ListDeny {
		return fmt.Errorf("quarantine: bad list kind %d", kind)
	}
	s := normSender(sender)
	if s == "" || !strings.Contains(s, "@") {
		return ErrNullSender
	}
	e := SenderEntry{Sender: s, Kind: kind, By: a.Name, At: q.cfg.Now().UTC()}
	if from != nil {
		e.ID = from.ID
	}
	if err := q.cfg.Index.SetSender(ctx, normAddr(rcpt), e); err != nil {
		return err
	}
	act := ActionAllow
	if kind == ListDeny {
		act = ActionDeny
	}
	q.audit(ctx, a, act, from, normAddr(rcpt), s)
	return nil
}

// UnlistSender removes sender from rcpt's list and audits it; a sender
// not on the list is ErrNotFound.
func (q *Quarantine) UnlistSender(ctx context.Context, a Actor, rcpt, sender string) error {
	if err := a.mayList(rcpt); err != nil {
		return err
	}
	s := normSender(sender)
	ok, err := q.cfg.Index.RemoveSender(ctx, normAddr(rcpt), s)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s is not on the list of %s", ErrNotFound, s, rcpt)
	}
	q.audit(ctx, a, ActionUnlist, nil, normAddr(rcpt), s)
	return nil
}

// SenderList returns rcpt's list, sorted by sender.
func (q *Quarantine) SenderList(ctx context.Context, a Actor, rcpt string) ([]SenderEntry, error) {
	if err := a.mayList(rcpt); err != nil {
		return nil, err
	}
	l, err := q.cfg.Index.Senders(ctx, normAddr(rcpt))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(l, func(x, y SenderEntry) int { return strings.Compare(x.Sender, y.Sender) })
	return l, nil
}

// Personal is what the recipients' own lists say of one message's
// sender: the recipients that allow it and those that deny it.
type Personal struct {
	Allow []string
	Deny  []string
}

// Personal looks sender up on the lists of rcpts, in one index
// transaction (one Redis round trip). The null sender is on no list.
func (q *Quarantine) Personal(ctx context.Context, sender string, rcpts []string) (Personal, error) {
	var p Personal
	s := normSender(sender)
	if s == "" {
		return p, nil
	}
	keys := make([]string, len(rcpts))
	for i, r := range rcpts {
		keys[i] = normAddr(r)
	}
	kinds, err := q.cfg.Index.LookupSender(ctx, s, keys)
	if err != nil {
		return Personal{}, err
	}
	for i, r := range rcpts {
		switch kinds[i] {
		case ListAllow:
			p.Allow = append(p.Allow, r)
		case ListDeny:
			p.Deny = append(p.Deny, r)
		}
	}
	return p, nil
}

// Reason codes the recipients' lists add to a verdict.
const (
	ReasonSenderAllowed = "sender-allowed" // a recipient's list spared its copy
	ReasonSenderDenied  = "sender-denied"  // a recipient's list denies the sender
)

// Plan is what a verdict becomes once the recipients' lists are read.
type Plan struct {
	// Held are the recipients whose copy is quarantined when v.Action is
	// quarantine after Apply.
	Held []string
	// Category of the item: the verdict's, or policy when only a deny
	// list quarantines.
	Category Category
}

// Apply adjusts v, a verdict for rcpts of category cat, to p and returns
// which recipients are held. With split (store mode, where each
// recipient's copy is kept or delivered on its own) an allowing recipient
// gets a spam verdict's message while the others' copies are held (a
// spam reject becomes a quarantine for them: rejecting would lose the
// allowed copy), and a denying recipient's copy is held while the others
// get it. Without split (hold mode: the MTA holds every recipient or
// none) the lists apply only when all recipients agree. denyAction is
// quarantine or reject: reject refuses the message when every recipient
// denies the sender. Monitor mode and mandatory findings (malware) are
// left alone; an allow list never spares anything but spam.
func (p Personal) Apply(cfg *policy.Config, v *policy.Verdict, rcpts []string, cat Category, denyAction policy.Action, split bool) Plan {
	plan := Plan{Category: cat}
	if v.Action == policy.ActionQuarantine {
		plan.Held = Held(cfg, v, rcpts)
	}
	if (v.Mode != "" && v.Mode != policy.ModeEnforce) || mandatory(v) || len(rcpts) == 0 {
		return plan
	}
	allowed := func(r string) bool { return containsFold(p.Allow, r) }
	denied := func(r string) bool { return containsFold(p.Deny, r) && !allowed(r) }
	all := func(f func(string) bool) bool {
		for _, r := range rcpts {
			if !f(r) {
				return false
			}
		}
		return true
	}
	spamVerdict := cat == CategorySpam && (v.Action == policy.ActionQuarantine || v.Action == policy.ActionReject)
	if spamVerdict && len(p.Allow) > 0 {
		switch {
		case all(allowed):
			addReason(v, ReasonSenderAllowed)
			v.Action, v.Reply, v.QuarantineReason = policy.ActionAccept, policy.Reply{}, ""
			plan.Held = nil
			return plan
		case split:
			addReason(v, ReasonSenderAllowed)
			if v.Action == policy.ActionReject {
				// Rejecting would lose the allowing recipient's copy: the
				// others' copies are held instead.
				v.Action, v.Reply = policy.ActionQuarantine, policy.Reply{}
				plan.Held = slices.Clone(rcpts)
			}
			plan.Held = slices.DeleteFunc(plan.Held, allowed)
		}
	}
	if len(p.Deny) == 0 || v.Action == policy.ActionReject || v.Action == policy.ActionTempfail || v.Action == policy.ActionDiscard {
		return plan
	}
	if all(denied) && denyAction == policy.ActionReject {
		addReason(v, ReasonSenderDenied)
		v.Action, v.Reply, v.QuarantineReason = policy.ActionReject, cfg.Replies.Reject, ""
		plan.Held = nil
		return plan
	}
	if !split && !all(denied) {
		return plan
	}
	var add []string
	for _, r := range rcpts {
		if denied(r) && !containsFold(plan.Held, r) {
			add = append(add, r)
		}
	}
	if len(add) == 0 {
		return plan
	}
	addReason(v, ReasonSenderDenied)
	if v.Action != policy.ActionQuarantine {
		v.Action, plan.Category = policy.ActionQuarantine, CategoryPolicy
	}
	if v.QuarantineReason == "" {
		v.QuarantineReason = ReasonSenderDenied
	}
	plan.Held = append(plan.Held, add...)
	return plan
}

func mandatory(v *policy.Verdict) bool {
	for _, c := range v.Checks {
		if c.Result.Mandatory && c.Result.Action != policy.ActionAccept {
			return true
		}
	}
	return false
}

func containsFold(s []string, x string) bool {
	return slices.ContainsFunc(s, func(y string) bool { return strings.EqualFold(x, y) })
}

func addReason(v *policy.Verdict, code string) {
	if !slices.Contains(v.Reasons, code) {
		v.Reasons = append(v.Reasons, code)
	}
}
