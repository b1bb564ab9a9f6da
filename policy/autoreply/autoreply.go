// Package autoreply treats auto-generated mail as a class: automatic
// replies (vacation, out-of-office, autoresponders), forwards and redirects,
// and other machine-written mail. It enforces the guidance that
//
//  1. mail classified spam or virus is never answered or forwarded
//     automatically (a reply to spam is backscatter to a forged sender);
//  2. the envelope sender of auto-generated mail is in our namespace or
//     null: a forward that carries a foreign sender is rewritten with SRS
//     (or refused), and an auto-reply whose From is not ours is blocked;
//  3. no destination is flooded: an absence notice from one local user
//     reaches one remote address at most once per notice_period (as Sieve
//     vacation's :days, RFC 5230 §4.1), and auto-generated mail per
//     destination address and domain is rate limited exactly;
//  5. inbound spam to an address that Postfix forwards off-site by its own
//     alias/virtual expansion (which no milter sees) is held or discarded;
//  6. postmaster@ and abuse@ (RFC 5321 §4.5.1, RFC 2142) are never blocked.
//
// Auto-generated mail is recognised by RFC 3834 Auto-Submitted, the
// X-Autoreply family, Precedence bulk/junk/auto_reply, out-of-office
// subjects, the null sender, RFC 5322 §3.6.6 Resent-* fields, forward
// markers of Sieve and Exchange, our own Delivered-To, and by a memory of
// inbound messages: for each inbound message a hash of its Message-ID
// maps to its class (spam, virus, clean), time and envelope sender, kept
// memory_ttl in the state store. An outbound message whose Message-ID (or
// Resent-Message-ID) is remembered is a forward; one whose In-Reply-To or
// References names a remembered message answers it.
//
// The check runs after "spam" and "virus" and reads their generic results
// (Status "spam", "infected", scores); the memory is written as an
// Observer of the final verdict, so it records what was actually decided.
package autoreply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/ratelimit"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/virus"
)

// ForeignSender is what happens to a forward whose envelope sender is not ours.
type ForeignSender string

const (
	ForeignAuto   ForeignSender = "auto"   // srs when [srs] secret is set, else reject
	ForeignSRS    ForeignSender = "srs"    // rewrite with SRS0
	ForeignReject ForeignSender = "reject" // refuse the forward
)

// Config is the [autoreply] section.
type Config struct {
	policy.StepConfig
	// MemoryTTL is how long an inbound message's class is remembered.
	MemoryTTL policy.Duration `toml:"memory_ttl"`
	// SpamAction is rule 1: an auto-reply to, or a forward of, spam or virus.
	SpamAction string `toml:"spam_action"`
	// ForeignFromAction is rule 2 for auto-replies: From (or the envelope
	// sender) outside local_domains.
	ForeignFromAction string `toml:"foreign_from_action"`
	// ForeignSender is rule 2 for forwards: auto, srs or reject.
	ForeignSender ForeignSender `toml:"foreign_sender"`
	// NoticePeriod is rule 3: one absence notice per local user → remote
	// address in this period (0 disables).
	NoticePeriod policy.Duration `toml:"notice_period"`
	// PerAddress and PerDomain limit auto-generated mail per destination.
	PerAddress ratelimit.Rate `toml:"per_address"`
	PerDomain  ratelimit.Rate `toml:"per_domain"`
	// FloodAction applies to rule 3: discard or hold.
	FloodAction string `toml:"flood_action"`
	// Rule 5.
	ForwardSpamAction   string   `toml:"forward_spam_action"`
	ForwardingAddresses []string `toml:"forwarding_addresses"`
	AliasMaps           []string `toml:"alias_maps"`
	VirtualMaps         []string `toml:"virtual_maps"`
}

// action reads a validated action field (policy.ParseAction: one
// vocabulary in every section, "hold" = quarantine).
func action(v string) policy.Action {
	a, _ := policy.ParseAction(v)
	return a
}

// Default is the section's defaults.
func Default() *Config {
	return &Config{
		StepConfig:        policy.DefaultStep(),
		MemoryTTL:         policy.Duration(7 * 24 * time.Hour),
		SpamAction:        "discard",
		ForeignFromAction: "discard",
		ForeignSender:     ForeignAuto,
		NoticePeriod:      policy.Duration(7 * 24 * time.Hour),
		PerAddress:        ratelimit.Rate{N: 5, Per: time.Hour},
		PerDomain:         ratelimit.Rate{N: 100, Per: time.Hour},
		FloodAction:       "discard",
		ForwardSpamAction: "hold",
	}
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	act := func(key, v string, allowed ...policy.Action) {
		a, err := policy.ParseAction(v)
		ok := err == nil
		if ok {
			ok = false
			for _, x := range allowed {
				ok = ok || a == x
			}
		}
		if !ok {
			names := make([]string, len(allowed))
			for i, x := range allowed {
				names[i] = x.String()
			}
			errs = append(errs, policy.KeyErr(key, "%q: want one of %s (hold = quarantine)", v, strings.Join(names, ", ")))
		}
	}
	all := []policy.Action{policy.ActionAccept, policy.ActionQuarantine, policy.ActionTempfail, policy.ActionDiscard, policy.ActionReject}
	act("spam_action", c.SpamAction, all...)
	act("foreign_from_action", c.ForeignFromAction, all...)
	act("flood_action", c.FloodAction, policy.ActionDiscard, policy.ActionQuarantine, policy.ActionTempfail, policy.ActionReject)
	act("forward_spam_action", c.ForwardSpamAction, policy.ActionQuarantine, policy.ActionDiscard, policy.ActionAccept)
	switch c.ForeignSender {
	case ForeignAuto, ForeignSRS, ForeignReject:
	default:
		errs = append(errs, policy.KeyErr("foreign_sender", "%q: want auto, srs or reject", c.ForeignSender))
	}
	if c.MemoryTTL <= 0 {
		errs = append(errs, policy.KeyErr("memory_ttl", "must be positive"))
	}
	if c.NoticePeriod < 0 {
		errs = append(errs, policy.KeyErr("notice_period", "must not be negative"))
	}
	return errors.Join(errs...)
}

// Name is the check's name and its config section.
const Name = "autoreply"

// Module is the [autoreply] section: one check, "autoreply", remembering
// classes in st and rewriting forwards with srs (nil: no SRS).
func Module(st store.Store, srs *SRS) policy.Module {
	return policy.Module{
		Name:    Name,
		Default: func() any { return Default() },
		Build: func(sec any, env *policy.Env) ([]policy.Step, error) {
			c := sec.(*Config)
			if !c.Enabled {
				return nil, nil
			}
			if err := c.Validate(); err != nil {
				return nil, err
			}
			if st == nil {
				return nil, errors.New("autoreply: no state store")
			}
			if c.ForeignSender == ForeignSRS && srs == nil {
				return nil, errors.New("autoreply: foreign_sender = \"srs\" needs [srs] secret")
			}
			fw, err := NewForwarders(c.ForwardingAddresses, c.AliasMaps, c.VirtualMaps, env.Config.IsLocalDomain)
			if err != nil {
				return nil, err
			}
			ck := &Check{Cfg: c, Core: env.Config, Store: st, SRS: srs, Forwarders: fw, Now: time.Now}
			steps := []policy.Step{{Check: ck, StepConfig: c.StepConfig}}
			seal, err := newSealStep(env, fw)
			if err != nil {
				return nil, err
			}
			if seal != nil {
				steps = append(steps, policy.Step{Check: seal, StepConfig: policy.StepConfig{Enabled: true, Timeout: c.Timeout, OnError: policy.ActionAccept}})
			}
			return steps, nil
		},
	}
}

// Check is the auto-reply guard.
type Check struct {
	Cfg        *Config
	Core       *policy.Config
	Store      store.Store
	SRS        *SRS // nil: no SRS
	Forwarders *Forwarders
	Now        func() time.Time
}

func (c *Check) Name() string { return Name }

// After: the guard needs the spam and virus verdicts.
func (c *Check) After() []string { return []string{spam.Name, virus.Name} }

// Statuses of the autoreply check, besides none and pass.
const (
	StatusReply     policy.Status = "auto-reply"     // auto-reply, allowed
	StatusForward   policy.Status = "forward"        // forward, allowed (maybe rewritten)
	StatusGenerated policy.Status = "auto-generated" // other automatic mail, allowed
	StatusBlocked   policy.Status = "blocked"        // rule 1 or 2
	StatusLimited   policy.Status = "limited"        // rule 3
	StatusHeld      policy.Status = "forward-spam"   // rule 5
)

// Class is what an inbound message was found to be.
type Class string

const (
	ClassClean Class = "clean"
	ClassSpam  Class = "spam"
	ClassVirus Class = "virus"
)

// Memory is one remembered inbound message.
type Memory struct {
	Class  Class  `json:"c"`
	Time   int64  `json:"t"`
	Sender string `json:"s"`
}

// MemoryKey is the store key of a Message-ID: a hash, so that the store
// holds no message identifiers in clear and keys have a fixed size.
func MemoryKey(msgID string) string {
	h := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(msgID))))
	return "ar:msg:" + hex.EncodeToString(h[:16])
}

func (c *Check) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// Observe implements policy.Observer: remember the class of each inbound
// message (rule memory), from the final verdict.
func (c *Check) Observe(ctx context.Context, m *message.Message, v *policy.Verdict) error {
	if c.Core.DirectionOf(m) != policy.DirInbound || v.WouldBe == policy.ActionTempfail {
		return nil // a deferred message will be seen again
	}
	mem := Memory{Class: verdictClass(v), Time: c.now().Unix(), Sender: m.MailFrom}
	b, _ := json.Marshal(mem)
	// RFC 5322 §3.6.4: Message-ID is only a SHOULD (spam often has none);
	// without one only the sender memory is kept.
	if ids := msgIDs(m.Header.Get("Message-ID")); len(ids) > 0 {
		if err := c.Store.Set(ctx, MemoryKey(ids[0]), b, c.Cfg.MemoryTTL.D()); err != nil {
			return fmt.Errorf("autoreply: remember %s: %w", ids[0], err)
		}
	}
	if m.MailFrom != "" {
		// The last class per envelope sender, for replies that name no
		// message.
		if err := c.Store.Set(ctx, SenderKey(m.MailFrom), b, c.Cfg.MemoryTTL.D()); err != nil {
			return fmt.Errorf("autoreply: remember sender: %w", err)
		}
	}
	return nil
}

// SenderKey is the store key of the last inbound message from an address.
func SenderKey(addr string) string {
	h := sha256.Sum256([]byte(ratelimit.NormalizeAddr(addr, true, "")))
	return "ar:from:" + hex.EncodeToString(h[:16])
}

// verdictClass reads the class from the final verdict: virus when the
// virus check found one; spam when the spam check says so, when the score
// reached the recipients' add_header level (Verdict.Flagged), or when the
// verdict held or refused it for its score.
func verdictClass(v *policy.Verdict) Class {
	if r, ok := v.Result(virus.Name); ok && virus.Infected(r) {
		return ClassVirus
	}
	if r, ok := v.Result(spam.Name); ok && spam.IsSpam(r) {
		return ClassSpam
	}
	if v.Flagged {
		return ClassSpam
	}
	if (v.WouldBe == policy.ActionQuarantine || v.WouldBe == policy.ActionReject || v.WouldBe == policy.ActionDiscard) && v.HasReason(policy.ReasonSpamScore) {
		return ClassSpam
	}
	return ClassClean
}

// priorClass is the class of the message being checked, from the results
// of the checks it runs After (rule 5 decides before the merge): virus or
// spam by their typed results, else spam when their scores reach the
// add_header level of this message's recipients.
func priorClass(core *policy.Config, m *message.Message, prior policy.Results) Class {
	if r, ok := prior[virus.Name]; ok && virus.Infected(r) {
		return ClassVirus
	}
	if r, ok := prior[spam.Name]; ok && spam.IsSpam(r) {
		return ClassSpam
	}
	score := 0.0
	for _, r := range prior {
		score += r.Score
	}
	th := core.ThresholdsFor(m.Rcpts)
	if th.AddHeader > 0 && score >= th.AddHeader {
		return ClassSpam
	}
	return ClassClean
}

// Check applies rules 1–3, 5 and 6.
func (c *Check) Check(ctx context.Context, m *message.Message, prior policy.Results) (policy.Result, error) {
	switch dir := c.Core.DirectionOf(m); dir {
	case policy.DirInbound:
		return c.inbound(m, prior), nil
	case policy.DirOutbound, policy.DirInternal:
		return c.outbound(ctx, m, dir)
	}
	return policy.Result{Status: policy.StatusNone}, nil
}

// inbound is rule 5: spam to a recipient that Postfix forwards off-site.
func (c *Check) inbound(m *message.Message, prior policy.Results) policy.Result {
	class := priorClass(c.Core, m, prior)
	if class == ClassClean || action(c.Cfg.ForwardSpamAction) == policy.ActionAccept {
		return policy.Result{Status: policy.StatusNone}
	}
	var fw []string
	for _, r := range m.Rcpts {
		if !c.Core.IsProtected(r) && c.Forwarders.OffSite(r) {
			fw = append(fw, r)
		}
	}
	if len(fw) == 0 {
		return policy.Result{Status: policy.StatusNone}
	}
	res := policy.Result{
		Status:           StatusHeld,
		Detail:           fmt.Sprintf("%s to off-site forwarding address(es) %s", class, strings.Join(fw, ",")),
		Reasons:          []string{"forward-" + string(class)},
		QuarantineReason: "forward-" + string(class),
	}
	switch {
	case action(c.Cfg.ForwardSpamAction) == policy.ActionQuarantine:
		res.Action = policy.ActionQuarantine
	case len(fw) == len(m.Rcpts):
		res.Action = policy.ActionDiscard
	default:
		// Keep the message for the others; drop only the forwarded copies.
		res.DeleteRcpts = fw
	}
	return res
}

func (c *Check) isLocalAddr(a string) bool { return c.Core.IsLocalDomain(message.Domain(a)) }

func (c *Check) outbound(ctx context.Context, m *message.Message, dir policy.Direction) (policy.Result, error) {
	rec := Recognize(m.Header, m.MailFrom, c.isLocalAddr)

	// The memory: is this a remembered message sent on, or an answer to one?
	own := append(msgIDs(m.Header.Get("Message-ID")), msgIDs(m.Header.Get("Resent-Message-ID"))...)
	refs := append(msgIDs(m.Header.Get("In-Reply-To")), msgIDs(m.Header.Get("References"))...)
	if len(refs) > 20 {
		refs = refs[len(refs)-20:] // the most recent ancestors
	}
	var mems, senderMems []Memory
	var ownMem *Memory
	if rec.Kind != KindNone || len(own) > 0 {
		keys := make([]string, 0, len(own)+len(refs)+len(m.Rcpts))
		for _, id := range own {
			keys = append(keys, MemoryKey(id))
		}
		for _, id := range refs {
			keys = append(keys, MemoryKey(id))
		}
		nMsg := len(keys)
		if rec.Kind == KindReply {
			// Replies that name no message (vacation(1) without
			// In-Reply-To) are judged by the last message from the
			// address they answer.
			for _, r := range m.Rcpts {
				keys = append(keys, SenderKey(r))
			}
		}
		vals, err := c.Store.MGet(ctx, keys)
		if err != nil {
			return policy.Result{}, fmt.Errorf("autoreply: %w", err)
		}
		for i, v := range vals {
			if v == nil {
				continue
			}
			var mem Memory
			if json.Unmarshal(v, &mem) != nil {
				continue
			}
			switch {
			case i < len(own):
				if ownMem == nil {
					ownMem = &mem
				}
			case i < nMsg:
				mems = append(mems, mem)
			default:
				senderMems = append(senderMems, mem)
			}
		}
	}
	if len(mems) == 0 {
		mems = senderMems
	}
	if ownMem != nil && rec.Kind != KindForward {
		// An inbound message leaving again unchanged is a forward.
		rec.Kind = KindForward
		rec.Markers = append(rec.Markers, "message-id-remembered")
	}
	if rec.Kind == KindNone {
		return policy.Result{Status: policy.StatusNone}, nil
	}
	detail := rec.Kind.String() + " (" + strings.Join(rec.Markers, ",") + ")"

	// Rule 6: postmaster and abuse are never blocked.
	var rcpts []string
	for _, r := range m.Rcpts {
		if !c.Core.IsProtected(r) {
			rcpts = append(rcpts, r)
		}
	}
	if len(rcpts) == 0 {
		return policy.Result{Status: kindStatus(rec.Kind), Detail: detail + "; protected recipients only"}, nil
	}

	// Rule 1: never answer or forward spam or viruses.
	class := ClassClean
	if rec.Kind == KindForward && ownMem != nil && ownMem.Class != ClassClean {
		class = ownMem.Class
	}
	if rec.Kind != KindForward || class == ClassClean {
		for _, mem := range mems {
			if mem.Class == ClassVirus || (mem.Class == ClassSpam && class == ClassClean) {
				class = mem.Class
			}
		}
	}
	if class != ClassClean {
		return policy.Result{
			Status:           StatusBlocked,
			Detail:           fmt.Sprintf("%s of a message classified %s", detail, class),
			Action:           action(c.Cfg.SpamAction),
			Reasons:          []string{"autoreply-" + string(class)},
			QuarantineReason: "autoreply-" + string(class),
		}, nil
	}
	if dir == policy.DirInternal {
		return policy.Result{Status: kindStatus(rec.Kind), Detail: detail}, nil
	}

	// Rule 2: our namespace only.
	var res policy.Result
	res.Status, res.Detail = kindStatus(rec.Kind), detail
	switch rec.Kind {
	case KindForward:
		if m.MailFrom != "" && !c.isLocalAddr(m.MailFrom) {
			mode := c.Cfg.ForeignSender
			if mode == ForeignAuto {
				mode = ForeignReject
				if c.SRS != nil {
					mode = ForeignSRS
				}
			}
			if mode == ForeignReject {
				return policy.Result{Status: StatusBlocked, Detail: detail + "; foreign envelope sender " + m.MailFrom,
					Action: policy.ActionReject, Reasons: []string{"forward-foreign-sender"}}, nil
			}
			srs, err := c.SRS.Forward(m.MailFrom, c.now())
			if err != nil {
				return policy.Result{Status: StatusBlocked, Detail: err.Error(), Action: policy.ActionReject, Reasons: []string{"forward-foreign-sender"}}, nil
			}
			res.ChangeFrom = srs
			res.Detail += "; sender rewritten to " + srs
		}
	default:
		from := addrOf(m.Header.Get("From"))
		switch {
		case m.MailFrom != "" && !c.isLocalAddr(m.MailFrom):
			return c.blockForeign(detail+"; foreign envelope sender "+m.MailFrom, "autoreply-foreign-sender"), nil
		case rec.Kind == KindReply && (from == "" || !c.isLocalAddr(from)):
			return c.blockForeign(detail+"; From not local: "+from, "autoreply-foreign-from"), nil
		}
	}

	// Rule 3: flood control.
	blocked, why, err := c.flood(ctx, m, rec.Kind, rcpts)
	if err != nil {
		return policy.Result{}, err
	}
	if len(blocked) > 0 {
		res.Detail += "; " + why
		res.Reasons = []string{"autoreply-limited"}
		res.Status = StatusLimited
		if len(blocked) == len(m.Rcpts) || action(c.Cfg.FloodAction) != policy.ActionDiscard {
			res.Action = action(c.Cfg.FloodAction)
			res.QuarantineReason = "autoreply-limited"
			res.ChangeFrom = ""
		} else {
			res.DeleteRcpts = blocked
		}
	}
	return res, nil
}

func (c *Check) blockForeign(detail, reason string) policy.Result {
	return policy.Result{Status: StatusBlocked, Detail: detail, Action: action(c.Cfg.ForeignFromAction), Reasons: []string{reason}, QuarantineReason: reason}
}

func kindStatus(k Kind) policy.Status {
	switch k {
	case KindReply:
		return StatusReply
	case KindForward:
		return StatusForward
	case KindGenerated:
		return StatusGenerated
	}
	return policy.StatusNone
}

// flood returns the recipients that rule 3 blocks. An auto-reply reaches a
// remote address once per notice period per local user; every kind of
// auto-generated mail counts against the per-address and per-domain rates.
// The notice memory is claimed last (SetNX), so that of two identical
// notices sent at once exactly one passes.
func (c *Check) flood(ctx context.Context, m *message.Message, kind Kind, rcpts []string) ([]string, string, error) {
	now := c.now()
	user := strings.ToLower(addrOf(m.Header.Get("From")))
	if user == "" {
		user = strings.ToLower(m.MailFrom)
	}
	notice := kind == KindReply && c.Cfg.NoticePeriod > 0 && user != ""
	noticeKey := func(r string) string {
		h := sha256.Sum256([]byte(user + "\x00" + ratelimit.NormalizeAddr(r, true, "")))
		return "ar:notice:" + hex.EncodeToString(h[:16])
	}
	var blocked, why []string
	if notice {
		keys := make([]string, len(rcpts))
		for i, r := range rcpts {
			keys[i] = noticeKey(r)
		}
		vals, err := c.Store.MGet(ctx, keys)
		if err != nil {
			return nil, "", fmt.Errorf("autoreply: %w", err)
		}
		var rest []string
		for i, r := range rcpts {
			if vals[i] != nil {
				blocked = append(blocked, r)
				why = append(why, "already notified "+r)
			} else {
				rest = append(rest, r)
			}
		}
		rcpts = rest
	}
	for _, r := range rcpts {
		var ws []store.Window
		var names []string
		addr := ratelimit.NormalizeAddr(r, true, "")
		if !c.Cfg.PerAddress.IsZero() {
			ws = append(ws, store.Window{Key: "ar:rate:addr:" + addr, Limit: c.Cfg.PerAddress.N, Period: c.Cfg.PerAddress.Per})
			names = append(names, "per_address "+c.Cfg.PerAddress.String())
		}
		if !c.Cfg.PerDomain.IsZero() {
			ws = append(ws, store.Window{Key: "ar:rate:dom:" + message.Domain(r), Limit: c.Cfg.PerDomain.N, Period: c.Cfg.PerDomain.Per})
			names = append(names, "per_domain "+c.Cfg.PerDomain.String())
		}
		if len(ws) > 0 {
			i, err := c.Store.Take(ctx, ws, now)
			if err != nil {
				return nil, "", fmt.Errorf("autoreply: %w", err)
			}
			if i >= 0 {
				blocked = append(blocked, r)
				why = append(why, names[i]+" reached for "+r)
				continue
			}
		}
		if notice {
			ok, err := c.Store.SetNX(ctx, noticeKey(r), []byte(fmt.Sprint(now.Unix())), c.Cfg.NoticePeriod.D())
			if err != nil {
				return nil, "", fmt.Errorf("autoreply: %w", err)
			}
			if !ok {
				blocked = append(blocked, r)
				why = append(why, "already notified "+r)
			}
		}
	}
	return blocked, strings.Join(why, "; "), nil
}
