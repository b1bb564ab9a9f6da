// Package relay holds two RCPT-time guards that a milter can enforce as
// defence in depth against MTA misconfiguration:
//
//   - the relay guard: an unauthenticated client outside trusted_networks
//     may address only the local domains (RFC 5321 §3.6.2: a host that
//     relays for arbitrary clients is an open relay; RFC 5321 §7.1 and
//     RFC 2505 §2.1 ask MTAs to refuse unauthorised relaying);
//   - local-only classes: addresses, domains and lists that must stay
//     inside (e.g. all-staff@example.org, *@intern.example.org). Mail from
//     them to a recipient outside the local domains is refused, and
//     optionally mail from outside to them.
//
// Both decide per recipient at RCPT time (policy.RcptChecker), so that the
// message's other recipients are not affected, and answer 550 5.7.1
// (RFC 3463 §3.8: "Delivery not authorized, message refused"). At the end
// of the message they check the recipients once more, for MTAs that do not
// send RCPT events to the milter.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// Statuses of the two checks.
const (
	StatusRelay     policy.Status = "relay"      // a recipient outside the local domains from a foreign client
	StatusLocalOnly policy.Status = "local-only" // a local-only class would cross the border
)

// Reason codes.
const (
	ReasonRelay            = "relay-attempt"
	ReasonLocalOnly        = "local-only"
	ReasonLocalOnlyInbound = "local-only-inbound"
)

// Events counts named events beyond the core metrics seam; the daemon's
// metrics implement it (mailwarden_events_total{event=...}).
type Events interface {
	Event(name string)
}

func event(m policy.Metrics, name string) {
	if e, ok := m.(Events); ok {
		e.Event(name)
	}
}

// Config is the [relay] section.
type Config struct {
	policy.StepConfig
	// Action for a relay attempt; reject by default.
	Action policy.Action `toml:"action"`
	Reply  policy.Reply  `toml:"reply"`
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Action != policy.ActionReject && c.Action != policy.ActionTempfail && c.Action != policy.ActionAccept {
		errs = append(errs, policy.KeyErr("action", "%s is not a per-recipient action (want reject, tempfail or accept)", c.Action))
	}
	if c.Reply.Code/100 != 5 && c.Action == policy.ActionReject {
		errs = append(errs, policy.KeyErr("reply", "must be a 5xx reply"))
	}
	return errors.Join(errs...)
}

// Name is the relay guard's name and its config section.
const Name = "relay"

// ConfigOf returns the [relay] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, Name); c != nil {
		return c
	}
	return Module().Default().(*Config)
}

// Module is the relay guard.
func Module() policy.Module {
	return policy.Module{
		Name: Name,
		Default: func() any {
			return &Config{
				StepConfig: policy.DefaultStep(),
				Action:     policy.ActionReject,
				Reply:      policy.Reply{Code: 550, Enhanced: "5.7.1", Text: "Relay access denied"},
			}
		},
		Build: func(section any, env *policy.Env) ([]policy.Step, error) {
			c := section.(*Config)
			if !c.Enabled {
				return nil, nil
			}
			if len(env.Config.LocalDomains) == 0 {
				// Without local domains every recipient counts as local
				// (policy.Config.Direction): the guard has nothing to refuse.
				env.Logger.Warn("relay guard inactive: local_domains is empty")
			}
			return []policy.Step{{Check: &Guard{cfg: env.Config, c: c, log: env.Logger, metrics: env.Metrics}, StepConfig: c.StepConfig}}, nil
		},
	}
}

// Guard is the relay guard check.
type Guard struct {
	cfg     *policy.Config
	c       *Config
	log     *slog.Logger
	metrics policy.Metrics
}

// NewGuard builds a guard (for tests and tools).
func NewGuard(cfg *policy.Config, c *Config, log *slog.Logger, m policy.Metrics) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Guard{cfg: cfg, c: c, log: log, metrics: m}
}

func (g *Guard) Name() string { return "relay" }

// relayed reports whether rcpt would be relayed for a foreign client.
func (g *Guard) relayed(client message.Client, auth, rcpt string) bool {
	if len(g.cfg.LocalDomains) == 0 || g.cfg.FromUs(client, auth) {
		return false
	}
	return !g.cfg.IsLocalDomain(message.Domain(rcpt))
}

func (g *Guard) result(detail string) policy.Result {
	return policy.Result{Status: StatusRelay, Action: g.c.Action, Reasons: []string{ReasonRelay}, Reply: g.c.Reply, Detail: detail}
}

// CheckRcpt refuses a non-local recipient of a foreign, unauthenticated
// client and logs the relay attempt.
func (g *Guard) CheckRcpt(_ context.Context, env *message.Envelope, rcpt string) (policy.Result, error) {
	if !g.relayed(env.Client, env.Auth, rcpt) {
		return policy.Result{Status: policy.StatusPass}, nil
	}
	g.log.Warn("relay attempt", "rcpt", rcpt, "from", env.MailFrom, "client", env.Client.Addr.String(), "helo", env.Client.HELO, "action", g.c.Action.String(), "reason", ReasonRelay)
	event(g.metrics, ReasonRelay)
	return g.result("recipient " + rcpt + " is not in local_domains"), nil
}

// Check looks at every recipient again at the end of the message.
func (g *Guard) Check(_ context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	var bad []string
	for _, r := range m.Rcpts {
		if g.relayed(m.Client, m.Auth, r) {
			bad = append(bad, r)
		}
	}
	if len(bad) > 0 {
		return g.result("non-local recipients from a foreign client: " + strings.Join(bad, ",")), nil
	}
	return policy.Result{Status: policy.StatusPass}, nil
}

// Class is one [[local_only.class]].
type Class struct {
	Name string `toml:"name"`
	// Members are address patterns: "list@dom", "*@dom" or "dom" (the whole
	// domain), "*.dom" (its subdomains); "*" and "?" match anywhere.
	Members []string `toml:"members"`
	// RefuseInbound also refuses mail from outside to the members.
	RefuseInbound bool `toml:"refuse_inbound"`
}

// LocalOnlyConfig is the [local_only] section.
type LocalOnlyConfig struct {
	policy.StepConfig
	Reply   policy.Reply `toml:"reply"`
	Classes []Class      `toml:"class"`
}

// Validate checks the section.
func (c *LocalOnlyConfig) Validate() error {
	var errs []error
	if c.Reply.Code/100 != 5 {
		errs = append(errs, policy.KeyErr("reply", "must be a 5xx reply"))
	}
	names := map[string]bool{}
	for i, cl := range c.Classes {
		key := fmt.Sprintf("class[%d]", i+1)
		if cl.Name == "" || names[cl.Name] {
			errs = append(errs, policy.KeyErr(key+".name", "every class needs a unique name"))
		}
		names[cl.Name] = true
		if len(cl.Members) == 0 {
			errs = append(errs, policy.KeyErr(key+".members", "a class needs members"))
		}
		for _, p := range cl.Members {
			if _, err := path.Match(strings.ToLower(strings.TrimSpace(p)), ""); err != nil || strings.TrimSpace(p) == "" {
				errs = append(errs, policy.KeyErr(key+".members", "bad pattern %q", p))
			}
		}
	}
	return errors.Join(errs...)
}

// LocalOnlyModule is the local-only guard.
func LocalOnlyModule() policy.Module {
	return policy.Module{
		Name: "local_only",
		Default: func() any {
			return &LocalOnlyConfig{
				StepConfig: policy.DefaultStep(),
				Reply:      policy.Reply{Code: 550, Enhanced: "5.7.1", Text: "Recipient not allowed"},
			}
		},
		Build: func(section any, env *policy.Env) ([]policy.Step, error) {
			c := section.(*LocalOnlyConfig)
			if !c.Enabled || len(c.Classes) == 0 {
				return nil, nil
			}
			if len(env.Config.LocalDomains) == 0 {
				return nil, errors.New("relay: local_only classes need local_domains (what is inside?)")
			}
			return []policy.Step{{Check: NewLocalOnly(env.Config, c, env.Logger, env.Metrics), StepConfig: c.StepConfig}}, nil
		},
	}
}

// LocalOnly is the local-only check.
type LocalOnly struct {
	cfg     *policy.Config
	c       *LocalOnlyConfig
	log     *slog.Logger
	metrics policy.Metrics
}

// NewLocalOnly builds the check.
func NewLocalOnly(cfg *policy.Config, c *LocalOnlyConfig, log *slog.Logger, m policy.Metrics) *LocalOnly {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LocalOnly{cfg: cfg, c: c, log: log, metrics: m}
}

func (l *LocalOnly) Name() string { return "local_only" }

// decide returns the reason and class for one recipient, "" if allowed.
func (l *LocalOnly) decide(client message.Client, auth, from, rcpt string) (reason, class string) {
	rcptLocal := l.cfg.IsLocalDomain(message.Domain(rcpt))
	if !rcptLocal {
		for _, cl := range l.c.Classes {
			if from != "" && Match(cl.Members, from) {
				return ReasonLocalOnly, cl.Name
			}
		}
		return "", ""
	}
	if l.cfg.FromUs(client, auth) {
		return "", ""
	}
	for _, cl := range l.c.Classes {
		if cl.RefuseInbound && Match(cl.Members, rcpt) {
			return ReasonLocalOnlyInbound, cl.Name
		}
	}
	return "", ""
}

func (l *LocalOnly) result(reason, detail string) policy.Result {
	return policy.Result{Status: StatusLocalOnly, Action: policy.ActionReject, Reasons: []string{reason}, Reply: l.c.Reply, Detail: detail}
}

// CheckRcpt refuses one recipient that a local-only class may not reach.
func (l *LocalOnly) CheckRcpt(_ context.Context, env *message.Envelope, rcpt string) (policy.Result, error) {
	reason, class := l.decide(env.Client, env.Auth, env.MailFrom, rcpt)
	if reason == "" {
		return policy.Result{Status: policy.StatusPass}, nil
	}
	l.log.Warn("local-only refused", "rcpt", rcpt, "from", env.MailFrom, "client", env.Client.Addr.String(), "class", class, "reason", reason)
	event(l.metrics, reason)
	return l.result(reason, "class "+class+": "+rcpt), nil
}

// Check looks at every recipient again at the end of the message.
func (l *LocalOnly) Check(_ context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	for _, r := range m.Rcpts {
		if reason, class := l.decide(m.Client, m.Auth, m.MailFrom, r); reason != "" {
			return l.result(reason, "class "+class+": "+r), nil
		}
	}
	return policy.Result{Status: policy.StatusPass}, nil
}

// Match reports whether addr matches one of the patterns (case-insensitive).
func Match(patterns []string, addr string) bool {
	a := strings.ToLower(strings.TrimSpace(addr))
	at := strings.LastIndexByte(a, '@')
	dom := a[at+1:]
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		switch {
		case p == "":
			continue
		case strings.Contains(p, "@"):
			if ok, _ := path.Match(p, a); ok {
				return true
			}
		case strings.HasPrefix(p, "*."):
			if strings.HasSuffix(dom, p[1:]) {
				return true
			}
		default:
			if ok, _ := path.Match(p, dom); ok && at >= 0 {
				return true
			}
		}
	}
	return false
}
