package virus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/clamav"
	"github.com/mailwarden/mailwarden/policy"
)

// Require says how the verdicts of several scanners combine.
type Require string

const (
	// RequireAll: every scanner must have scanned the message; one error
	// (or oversize) makes the whole scan an error (or oversize).
	RequireAll Require = "all"
	// RequireAny: one scanner that scanned the message is enough.
	RequireAny Require = "any"
)

func (r *Require) UnmarshalText(b []byte) error {
	switch v := Require(strings.ToLower(strings.TrimSpace(string(b)))); v {
	case RequireAll, RequireAny:
		*r = v
		return nil
	}
	return fmt.Errorf("virus: require = %q: want \"all\" or \"any\"", b)
}

// Limits says what a clamd result of "Heuristics.Limits.Exceeded.*" (one
// of clamd's scan limits was reached, with AlertExceedsMax yes) means.
type Limits string

const (
	// LimitsUnscanned: the message was not fully scanned; it gets
	// on_oversize, like a message longer than stream_max_length.
	LimitsUnscanned Limits = "unscanned"
	// LimitsInfected: treat it as malware (on_infected).
	LimitsInfected Limits = "infected"
)

func (l *Limits) UnmarshalText(b []byte) error {
	switch v := Limits(strings.ToLower(strings.TrimSpace(string(b)))); v {
	case LimitsUnscanned, LimitsInfected:
		*l = v
		return nil
	}
	return fmt.Errorf("virus: limits_exceeded = %q: want \"unscanned\" or \"infected\"", b)
}

// Config is the [virus] section: what to do with what the scanners found.
type Config struct {
	policy.StepConfig
	// Require combines several engines: "all" must each have scanned
	// the message, or "any" (at least MinEngines of them).
	Require Require `toml:"require"`
	// MinEngines is how many engines must have scanned a message with
	// require = "any"; default 1.
	MinEngines int `toml:"min_engines"`
	// Engines are the [[virus.engine]] blocks; without any, the
	// [[clamav.server]] groups of the [clamav] section (or its default).
	Engines []Engine `toml:"engine"`
	// OnInfected is the action for malware; it is mandatory (allow lists
	// and protected recipients do not soften it).
	OnInfected    policy.Action `toml:"on_infected"`
	InfectedReply policy.Reply  `toml:"infected_reply"`
	// ReplySignature appends the signature name to InfectedReply.
	ReplySignature bool `toml:"reply_signature"`
	// OnOversize is the action for a message larger than the scanners
	// accept (stream_max_length).
	OnOversize policy.Action `toml:"on_oversize"`
	// LimitsExceeded is what clamd's "Heuristics.Limits.Exceeded.*"
	// findings mean: "unscanned" (on_oversize) or "infected".
	LimitsExceeded Limits `toml:"limits_exceeded"`
	// HeaderScanned and HeaderStatus name the header fields added to
	// every scanned message; "" disables one.
	HeaderScanned string `toml:"header_scanned"`
	HeaderStatus  string `toml:"header_status"`
}

// DefaultConfig is what an absent [virus] section means: disabled (see the
// README: the embedded default must run on a machine without clamd; a
// production setup enables it).
func DefaultConfig() *Config {
	return &Config{
		StepConfig:     policy.StepConfig{Enabled: false, Timeout: policy.Duration(30 * time.Second), OnError: policy.ActionTempfail},
		Require:        RequireAll,
		MinEngines:     1,
		OnInfected:     policy.ActionReject,
		InfectedReply:  policy.Reply{Code: 554, Enhanced: "5.7.1", Text: "Message contains malware"},
		OnOversize:     policy.ActionReject,
		LimitsExceeded: LimitsUnscanned,
		HeaderScanned:  "X-Virus-Scanned",
		HeaderStatus:   "X-Virus-Status",
	}
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Timeout.D() <= 0 {
		errs = append(errs, policy.KeyErr("timeout", "must be positive"))
	}
	if c.OnInfected == policy.ActionAccept || c.OnInfected == policy.ActionTempfail {
		errs = append(errs, policy.KeyErr("on_infected", "%s would deliver or retry malware: want reject, discard or quarantine", c.OnInfected))
	}
	if c.InfectedReply.Code/100 != 5 {
		errs = append(errs, policy.KeyErr("infected_reply", "must be a 5xx reply"))
	}
	for _, h := range []struct{ k, v string }{{"header_scanned", c.HeaderScanned}, {"header_status", c.HeaderStatus}} {
		if h.v != "" && !validFieldName(h.v) {
			errs = append(errs, policy.KeyErr(h.k, "%q is not a valid header field name", h.v))
		}
	}
	if err := c.validateEngines(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func validFieldName(s string) bool {
	for _, c := range []byte(s) {
		if c <= 32 || c >= 127 || c == ':' {
			return false
		}
	}
	return s != ""
}

// ClamAVConfig is the [clamav] section: the clamd servers.
type ClamAVConfig struct {
	// Servers are the [[clamav.server]] groups. Each group scans every
	// message (see Config.Require); the addresses inside one group are
	// interchangeable (round-robin with failover).
	Servers []ServerGroup `toml:"server"`
}

// ServerGroup is one [[clamav.server]].
type ServerGroup struct {
	Name      string   `toml:"name"`
	Addresses []string `toml:"addresses"`
	// StreamMaxLength must match clamd.conf's StreamMaxLength (clamd has
	// no command to report it).
	StreamMaxLength policy.Size     `toml:"stream_max_length"`
	ConnectTimeout  policy.Duration `toml:"connect_timeout"`
}

// Debian's clamd.conf: LocalSocket /var/run/clamav/clamd.ctl,
// StreamMaxLength 25M (upstream's default is 100M; Debian's package writes
// 25M into the generated clamd.conf).
const (
	DefaultAddress         = "unix:/var/run/clamav/clamd.ctl"
	DefaultStreamMaxLength = 25 << 20
)

// DefaultGroup is the group used when no [[clamav.server]] is given.
func DefaultGroup() ServerGroup {
	return ServerGroup{Name: "clamd", Addresses: []string{DefaultAddress}, StreamMaxLength: DefaultStreamMaxLength, ConnectTimeout: policy.Duration(5 * time.Second)}
}

// DefaultClamAVConfig has no groups: DefaultGroup applies.
func DefaultClamAVConfig() *ClamAVConfig { return &ClamAVConfig{} }

// Validate checks the groups and fills in per-group defaults.
func (c *ClamAVConfig) Validate() error {
	var errs []error
	names := map[string]bool{}
	for i, g := range c.Servers {
		key := fmt.Sprintf("server[%d]", i+1)
		if names[g.Name] {
			errs = append(errs, policy.KeyErr(key+".name", "duplicate group name %q", g.Name))
		}
		names[g.Name] = true
		if g.StreamMaxLength < 0 {
			errs = append(errs, policy.KeyErr(key+".stream_max_length", "must be positive"))
		}
		for _, a := range g.Addresses {
			if _, err := clamav.ParseServer(a); err != nil {
				errs = append(errs, policy.KeyErr(key+".addresses", "%v", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Normalize fills each group's unset keys (policy.Load calls it before
// Validate).
func (c *ClamAVConfig) Normalize() {
	for i := range c.Servers {
		g := &c.Servers[i]
		if g.Name == "" {
			g.Name = fmt.Sprintf("clamd%d", i+1)
		}
		if len(g.Addresses) == 0 {
			g.Addresses = []string{DefaultAddress}
		}
		if g.StreamMaxLength == 0 {
			g.StreamMaxLength = DefaultStreamMaxLength
		}
		if g.ConnectTimeout <= 0 {
			g.ConnectTimeout = policy.Duration(5 * time.Second)
		}
	}
}

// group is a server group with its addresses parsed.
type group struct {
	ServerGroup
	servers []clamav.Server
}

// groups returns the configured groups, or the default one, with their
// addresses parsed; c is not changed.
func (c *ClamAVConfig) groups() ([]group, error) {
	cc := &ClamAVConfig{Servers: append([]ServerGroup(nil), c.Servers...)}
	if len(cc.Servers) == 0 {
		cc.Servers = []ServerGroup{DefaultGroup()}
	}
	cc.Normalize()
	if err := cc.Validate(); err != nil {
		return nil, err
	}
	var gs []group
	for _, g := range cc.Servers {
		x := group{ServerGroup: g}
		for _, a := range g.Addresses {
			s, _ := clamav.ParseServer(a) // validated above
			x.servers = append(x.servers, s)
		}
		gs = append(gs, x)
	}
	return gs, nil
}
