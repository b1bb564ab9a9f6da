package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/store"
)

// KeyKind is what a [[limit]] block counts by.
type KeyKind string

const (
	KeySASLUser     KeyKind = "sasl_user"
	KeySender       KeyKind = "sender"
	KeySenderDomain KeyKind = "sender_domain"
	KeyClientIP     KeyKind = "client_ip" // with prefix4/prefix6 for networks
	KeyRcpt         KeyKind = "rcpt"
	KeyRcptDomain   KeyKind = "rcpt_domain"
)

// Count says what one message costs under a sender-side key.
type Count string

const (
	CountMessages   Count = "messages"   // one per message
	CountRecipients Count = "recipients" // one per envelope recipient
)

// LimitConfig is one [[limit]] block.
type LimitConfig struct {
	Name string  `toml:"name"`
	Key  KeyKind `toml:"key"`
	Rate Rate    `toml:"rate"`
	// Count: for sender-side keys, messages or recipients; recipient keys
	// always count each recipient once.
	Count Count `toml:"count"`
	// Action when the limit is reached: tempfail, hold, reject (or discard).
	Action string `toml:"action"`
	// Directions the limit applies to: outbound, internal, inbound, relay.
	Directions []policy.Direction `toml:"directions"`
	// Prefix4/Prefix6 group client addresses (client_ip key).
	Prefix4 int `toml:"prefix4"`
	Prefix6 int `toml:"prefix6"`
	// Normalisation of address keys: lower case, and sub-address tags cut
	// at the first of TagSeparators ("" keeps tags).
	Lowercase     bool   `toml:"lowercase"`
	TagSeparators string `toml:"tag_separators"`
	// OnError when the state store cannot be reached.
	// (default tempfail: see the README on an unreachable store).
	OnError string `toml:"on_error"`
}

// action and onError read the validated action fields (policy.ParseAction:
// the one vocabulary, "hold" = quarantine).
func (l *LimitConfig) action() policy.Action  { a, _ := policy.ParseAction(l.Action); return a }
func (l *LimitConfig) onError() policy.Action { a, _ := policy.ParseAction(l.OnError); return a }

// Limits is the list of [[limit]] blocks.
type Limits []LimitConfig

// Normalize fills every block's unset keys (policy.Load calls it before
// Validate).
func (ls *Limits) Normalize() {
	for i := range *ls {
		(*ls)[i].normalize()
	}
}

func (l *LimitConfig) normalize() {
	if l.Count == "" {
		l.Count = CountMessages
	}
	if l.Action == "" {
		l.Action = "tempfail"
	}
	if len(l.Directions) == 0 {
		l.Directions = []policy.Direction{policy.DirOutbound}
	}
	if l.OnError == "" {
		l.OnError = "tempfail"
	}
	if l.Prefix4 == 0 {
		l.Prefix4 = 32
	}
	if l.Prefix6 == 0 {
		l.Prefix6 = 64
	}
}

// Validate checks every block (after Normalize); it changes nothing.
func (ls *Limits) Validate() error {
	var errs []error
	names := map[string]bool{}
	for i := range *ls {
		l := &(*ls)[i]
		// "limit[N]" locates the block; the pipeline prefixes the section.
		k := func(key string) string { return fmt.Sprintf("%d.%s", i+1, key) }
		bad := func(key, f string, a ...any) { errs = append(errs, policy.KeyErr(k(key), f, a...)) }
		if l.Name == "" || strings.ContainsAny(l.Name, " ,;\t") {
			bad("name", "every limit needs a name without spaces or commas (it becomes the reason code limit-NAME)")
		} else if names[l.Name] {
			bad("name", "duplicate limit name %q", l.Name)
		}
		names[l.Name] = true
		switch l.Key {
		case KeySASLUser, KeySender, KeySenderDomain, KeyClientIP, KeyRcpt, KeyRcptDomain:
		default:
			bad("key", "%q: want sasl_user, sender, sender_domain, client_ip, rcpt or rcpt_domain", l.Key)
		}
		if l.Rate.IsZero() {
			bad("rate", "set a rate, e.g. \"100/hour\"")
		}
		if l.Count != CountMessages && l.Count != CountRecipients {
			bad("count", "%q: want messages or recipients", l.Count)
		}
		a, err := policy.ParseAction(l.Action)
		if err != nil || a == policy.ActionAccept {
			bad("action", "%q: want tempfail, hold, reject or discard", l.Action)
		}
		if _, err = policy.ParseAction(l.OnError); err != nil {
			bad("on_error", "%v", err)
		}
		for _, d := range l.Directions {
			switch d {
			case policy.DirInbound, policy.DirOutbound, policy.DirInternal, policy.DirRelay:
			default:
				bad("directions", "%q: want inbound, outbound, internal or relay", d)
			}
		}
		if l.Prefix4 < 1 || l.Prefix4 > 32 {
			bad("prefix4", "must be 1..32")
		}
		if l.Prefix6 < 1 || l.Prefix6 > 128 {
			bad("prefix6", "must be 1..128")
		}
	}
	return errors.Join(errs...)
}

// Name is the check's name and its config section ([[limit]]).
const Name = "limit"

// Module is the [[limit]] blocks: one check, "limit", deciding every block
// at once, counting in st (the daemon's store).
func Module(st store.Store) policy.Module {
	return policy.Module{
		Name:    Name,
		Default: func() any { return &Limits{} },
		Build: func(sec any, env *policy.Env) ([]policy.Step, error) {
			ls := *sec.(*Limits)
			if len(ls) == 0 {
				return nil, nil
			}
			ls.Normalize()
			if err := (&ls).Validate(); err != nil {
				return nil, err
			}
			if st == nil {
				return nil, errors.New("limit: no state store")
			}
			step := policy.DefaultStep()
			step.Timeout = policy.Duration(10 * time.Second)
			// The most severe on_error of the blocks wins for the step:
			// the store serves them all at once.
			step.OnError = policy.ActionAccept
			for _, l := range ls {
				if l.onError() > step.OnError {
					step.OnError = l.onError()
				}
			}
			c := &Check{Limits: ls, Store: st, Config: env.Config, Now: time.Now}
			return []policy.Step{{Check: c, StepConfig: step}}, nil
		},
	}
}

// Check applies the [[limit]] blocks.
type Check struct {
	Limits Limits
	Store  store.Store
	Config *policy.Config
	Now    func() time.Time
}

func (c *Check) Name() string { return Name }

// StatusLimited is the status of a message over a limit.
const StatusLimited policy.Status = "limited"

// Check counts the message against every applicable limit, atomically: it
// passes all or consumes nothing.
func (c *Check) Check(ctx context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	dir := c.Config.DirectionOf(m)
	var ws []store.Window
	var owner []int
	for i, l := range c.Limits {
		if !hasDir(l.Directions, dir) {
			continue
		}
		for _, w := range windows(l, m, c.Config) {
			ws = append(ws, w)
			owner = append(owner, i)
		}
	}
	if len(ws) == 0 {
		return policy.Result{Status: policy.StatusNone}, nil
	}
	i, err := c.Store.Take(ctx, ws, c.Now())
	if err != nil {
		return policy.Result{}, fmt.Errorf("ratelimit: %w", err)
	}
	if i < 0 {
		return policy.Result{Status: policy.StatusPass}, nil
	}
	l := c.Limits[owner[i]]
	return policy.Result{
		Status:           StatusLimited,
		Detail:           fmt.Sprintf("limit %s (%s by %s) reached for %s", l.Name, l.Rate, l.Key, strings.TrimPrefix(ws[i].Key, "rl:"+l.Name+":")),
		Action:           l.action(),
		Reasons:          []string{"limit-" + l.Name},
		Reply:            policy.Reply{},
		QuarantineReason: "limit-" + l.Name,
	}, nil
}

func hasDir(ds []policy.Direction, d policy.Direction) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// windows returns the store windows of one block for one message. Postmaster
// and abuse recipients are never counted or limited (RFC 5321 §4.5.1,
// RFC 2142): a message only to them takes nothing.
func windows(l LimitConfig, m *message.Message, cfg *policy.Config) []store.Window {
	var rcpts []string
	for _, r := range m.Rcpts {
		if !cfg.IsProtected(r) {
			rcpts = append(rcpts, r)
		}
	}
	if len(rcpts) == 0 {
		return nil
	}
	mk := func(k string, cost int) store.Window {
		return store.Window{Key: "rl:" + l.Name + ":" + k, Limit: l.Rate.N, Period: l.Rate.Per, Cost: cost}
	}
	cost := 1
	if l.Count == CountRecipients {
		cost = len(rcpts)
	}
	switch l.Key {
	case KeySASLUser:
		if m.Auth == "" {
			return nil
		}
		u := m.Auth
		if l.Lowercase {
			u = strings.ToLower(u)
		}
		return []store.Window{mk(u, cost)}
	case KeySender:
		if m.MailFrom == "" {
			return []store.Window{mk("<>", cost)}
		}
		return []store.Window{mk(NormalizeAddr(m.MailFrom, l.Lowercase, l.TagSeparators), cost)}
	case KeySenderDomain:
		if m.MailFrom == "" {
			return []store.Window{mk("<>", cost)}
		}
		return []store.Window{mk(message.Domain(m.MailFrom), cost)}
	case KeyClientIP:
		if !m.Client.Addr.IsValid() {
			return []store.Window{mk("local", cost)}
		}
		return []store.Window{mk(ClientPrefix(m.Client.Addr, l.Prefix4, l.Prefix6), cost)}
	case KeyRcpt:
		seen := map[string]int{}
		var keys []string
		for _, r := range rcpts {
			k := NormalizeAddr(r, l.Lowercase, l.TagSeparators)
			if seen[k] == 0 {
				keys = append(keys, k)
			}
			seen[k]++
		}
		var ws []store.Window
		for _, k := range keys {
			ws = append(ws, mk(k, seen[k]))
		}
		return ws
	case KeyRcptDomain:
		seen := map[string]int{}
		var keys []string
		for _, r := range rcpts {
			k := message.Domain(r)
			if seen[k] == 0 {
				keys = append(keys, k)
			}
			seen[k]++
		}
		var ws []store.Window
		for _, k := range keys {
			ws = append(ws, mk(k, seen[k]))
		}
		return ws
	}
	return nil
}

// NormalizeAddr makes an address a counting key: the domain is always
// lower-cased (RFC 5321 §2.4: domains are case-insensitive); the local part
// only when lower is set (it is case-sensitive in theory, never in
// practice); a sub-address tag from the first of seps on is cut
// ("user+tag" → "user").
func NormalizeAddr(addr string, lower bool, seps string) string {
	lp, dom := message.LocalPart(addr), message.Domain(addr)
	if seps != "" {
		if i := strings.IndexAny(lp, seps); i > 0 {
			lp = lp[:i]
		}
	}
	if lower {
		lp = strings.ToLower(lp)
	}
	if dom == "" {
		return lp
	}
	return lp + "@" + dom
}

// ClientPrefix is the client's network as a key: the address masked to
// prefix4 (IPv4) or prefix6 (IPv6) bits.
func ClientPrefix(a netip.Addr, prefix4, prefix6 int) string {
	a = a.Unmap()
	bits := prefix6
	if a.Is4() {
		bits = prefix4
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a.String()
	}
	return p.String()
}
