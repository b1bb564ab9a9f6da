// Package auth verifies who sent a message: SPF (RFC 7208) on the envelope
// sender, DKIM signatures (RFC 6376, RFC 8463 Ed25519, RFC 8301 algorithm
// rules) and DMARC (RFC 7489) on the RFC5322.From domain, and reports the
// results in Authentication-Results (RFC 8601).
//
// The module "auth" registers three checks, so that every method has its
// own status in logs and in `mailwarden check --json`:
//
//   - "spf" evaluates MAIL FROM (or HELO for the null sender, RFC 7208
//     §2.3) with blitiri.com.ar/go/spf within the §4.6.4 lookup limits;
//   - "dkim" verifies every DKIM-Signature up to a bound with go-msgauth,
//     fetching keys through the shared resolver (policy/dns) with the
//     message's context, so a DNS timeout is a temperror, not a permerror;
//   - "dmarc" runs after both, reads their typed results (SPFOutcome,
//     DKIMOutcome in Result.Data), discovers the policy (§6.6.3, with the
//     organizational domain from the Public Suffix List, §3.2) and checks
//     identifier alignment (§3.1).
//
// Checks report facts; the [auth] configuration decides. When DMARC is
// enabled it is the one that decides: a domain that publishes a policy gets
// it applied (honor_policy: p=reject → 550 5.7.1, p=quarantine → hold),
// SPF and DKIM failures then only add score; without a policy the SPF and
// DKIM actions apply. Temporary DNS failures become tempfail by default,
// never a reject. Mail from us (authenticated or from trusted networks) is
// not judged unless judge_outbound is set. The DMARC policy lookup starts
// while SPF and DKIM still run (the resolver coalesces identical queries),
// so one message costs about one round of DNS latency.
package auth

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/message"
)

// Statuses in the vocabulary of RFC 7208 §2.6, RFC 6376 §3.9 / RFC 8601
// §2.7.1 and RFC 7489 §11.2.
const (
	StatusNone      policy.Status = "none"
	StatusNeutral   policy.Status = "neutral"
	StatusPass      policy.Status = "pass"
	StatusFail      policy.Status = "fail"
	StatusSoftfail  policy.Status = "softfail"
	StatusTemperror policy.Status = "temperror"
	StatusPermerror policy.Status = "permerror"
)

// Outcomes maps statuses to actions and scores.
type Outcomes struct {
	// Actions per status; statuses not listed accept.
	Actions map[string]policy.Action `toml:"actions"`
	// Scores per status, added to the message's score.
	Scores map[string]float64 `toml:"scores"`
}

// SPFConfig is [auth.spf].
type SPFConfig struct {
	policy.StepConfig
	Outcomes
	// ReceivedSPF adds a Received-SPF header (RFC 7208 §9.1).
	ReceivedSPF bool `toml:"received_spf"`
	// MaxLookups is the RFC 7208 §4.6.4 DNS mechanism limit (10).
	MaxLookups int `toml:"max_lookups"`
	// MaxVoidLookups is the §4.6.4 void lookup limit (2).
	MaxVoidLookups int `toml:"max_void_lookups"`
}

// DKIMConfig is [auth.dkim].
type DKIMConfig struct {
	policy.StepConfig
	Outcomes
	// MaxSignatures bounds how many signatures are verified; the rest are
	// ignored.
	MaxSignatures int `toml:"max_signatures"`
}

// DMARCConfig is [auth.dmarc].
type DMARCConfig struct {
	policy.StepConfig
	Outcomes
	// HonorPolicy applies the domain's published policy to a DMARC
	// failure: reject → reject with RejectReply, quarantine → quarantine,
	// none → only the fail score. Without it, Actions["fail"] decides.
	HonorPolicy bool         `toml:"honor_policy"`
	RejectReply policy.Reply `toml:"reject_reply"`
}

// Config is the [auth] section.
type Config struct {
	// JudgeOutbound also applies SPF/DMARC actions to mail from us
	// (authenticated or from trusted networks).
	JudgeOutbound bool `toml:"judge_outbound"`
	// ExemptIPs are forwarders and mailing lists: their mail is checked and
	// reported, but no action or score follows from SPF, DKIM or DMARC.
	ExemptIPs policy.Networks `toml:"exempt_ips"`
	// ExemptDomains does the same by domain (and its subdomains), matched
	// against the client's verified reverse DNS name, an SPF-authenticated
	// MAIL FROM domain, and the d= of a passing DKIM signature.
	ExemptDomains []string `toml:"exempt_domains"`

	SPF   SPFConfig   `toml:"spf"`
	DKIM  DKIMConfig  `toml:"dkim"`
	DMARC DMARCConfig `toml:"dmarc"`
	ARC   ARCConfig   `toml:"arc"`
}

// ARCConfig is [auth.arc]: ARC chain verification (RFC 8617).
type ARCConfig struct {
	policy.StepConfig
	// TrustedSealers are the ARC sealers (AS d=) whose recorded results
	// may relax a DMARC failure (forwarders and lists we know).
	TrustedSealers []string `toml:"trusted_sealers"`
	// SealKey names the [[dkim_sign.key]] (RSA) that seals the mail we
	// forward off-site (autoreply's forwarding_addresses and alias maps);
	// "" seals nothing.
	SealKey string `toml:"seal_key"`
	// ListServers are the clients through which a mailing-list manager
	// of ours re-injects the mail it distributes (Mailman, Sympa and
	// mlmmj hand it back over SMTP, usually from 127.0.0.1). Their mail
	// is sealed with seal_key, the AAR carrying the results we found
	// when the message arrived for the list (see listseal.go), and it is
	// not judged, like mail from us (the list changed it on purpose).
	ListServers policy.Networks `toml:"list_servers"`
	// ListServerUsers are the SASL login names a list manager
	// re-injects with (through submission).
	ListServerUsers []string `toml:"list_server_users"`
	// ListServerDaemons are {daemon_name} values of MTA listeners that
	// only list managers use (Postfix: a loopback smtpd with
	// "-o milter_macro_daemon_name=LISTS", examples/postfix-master.cf):
	// the precise choice when other local programs also submit from
	// 127.0.0.1.
	ListServerDaemons []string `toml:"list_server_daemons"`
}

// listServers reports whether any list server is configured.
func (c *ARCConfig) listServers() bool {
	return len(c.ListServers) > 0 || len(c.ListServerUsers) > 0 || len(c.ListServerDaemons) > 0
}

// FromListServer reports whether m is a list manager's re-injection:
// its client is in list_servers, its SASL login in list_server_users or
// the listener's {daemon_name} in list_server_daemons.
func (c *ARCConfig) FromListServer(m *message.Message) bool {
	in := func(list []string, v string) bool {
		return v != "" && slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, v) })
	}
	return in(c.ListServerUsers, m.Auth) || in(c.ListServerDaemons, m.Macros["daemon_name"]) ||
		m.Client.Addr.IsValid() && c.ListServers.Contains(m.Client.Addr)
}

// ConfigOf returns the [auth] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, SectionName); c != nil {
		return c
	}
	return DefaultConfig()
}

// DefaultConfig is the [auth] section's defaults.
func DefaultConfig() *Config {
	step := func(d time.Duration) policy.StepConfig {
		s := policy.DefaultStep()
		s.Timeout = policy.Duration(d)
		return s
	}
	return &Config{
		SPF: SPFConfig{
			StepConfig: step(20 * time.Second),
			Outcomes: Outcomes{
				Actions: map[string]policy.Action{"temperror": policy.ActionTempfail},
				Scores:  map[string]float64{"fail": 3, "softfail": 1, "permerror": 0.5},
			},
			MaxLookups:     10,
			MaxVoidLookups: 2,
		},
		ARC: ARCConfig{StepConfig: step(20 * time.Second)},
		DKIM: DKIMConfig{
			StepConfig: step(20 * time.Second),
			Outcomes: Outcomes{
				Actions: map[string]policy.Action{"temperror": policy.ActionTempfail},
				Scores:  map[string]float64{"fail": 1, "permerror": 0.5},
			},
			MaxSignatures: 5,
		},
		DMARC: DMARCConfig{
			StepConfig: step(20 * time.Second),
			Outcomes: Outcomes{
				Actions: map[string]policy.Action{"temperror": policy.ActionTempfail},
				Scores:  map[string]float64{"fail": 3},
			},
			HonorPolicy: true,
			RejectReply: policy.Reply{Code: 550, Enhanced: "5.7.1", Text: "Message rejected by the sender domain's DMARC policy"},
		},
	}
}

var statusNames = map[string][]policy.Status{
	"spf":   {StatusNone, StatusNeutral, StatusPass, StatusFail, StatusSoftfail, StatusTemperror, StatusPermerror},
	"dkim":  {StatusNone, StatusPass, StatusFail, StatusTemperror, StatusPermerror},
	"dmarc": {StatusNone, StatusPass, StatusFail, StatusTemperror, StatusPermerror},
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	check := func(method string, o Outcomes) {
		valid := statusNames[method]
		for k := range o.Actions {
			if !slices.Contains(valid, policy.Status(k)) {
				errs = append(errs, policy.KeyErr(method+".actions."+k, "unknown status (want one of %v)", valid))
			}
		}
		for k, v := range o.Scores {
			if !slices.Contains(valid, policy.Status(k)) {
				errs = append(errs, policy.KeyErr(method+".scores."+k, "unknown status (want one of %v)", valid))
			}
			if v != v {
				errs = append(errs, policy.KeyErr(method+".scores."+k, "not a number"))
			}
		}
	}
	check("spf", c.SPF.Outcomes)
	check("dkim", c.DKIM.Outcomes)
	check("dmarc", c.DMARC.Outcomes)
	if c.SPF.MaxLookups < 1 || c.SPF.MaxLookups > 100 {
		errs = append(errs, policy.KeyErr("spf.max_lookups", "must be between 1 and 100 (RFC 7208 §4.6.4 says 10)"))
	}
	if c.SPF.MaxVoidLookups < 0 || c.SPF.MaxVoidLookups > 100 {
		errs = append(errs, policy.KeyErr("spf.max_void_lookups", "must be between 0 and 100 (RFC 7208 §4.6.4 suggests 2)"))
	}
	if c.DKIM.MaxSignatures < 1 || c.DKIM.MaxSignatures > 50 {
		errs = append(errs, policy.KeyErr("dkim.max_signatures", "must be between 1 and 50"))
	}
	if c.ARC.listServers() && c.ARC.SealKey == "" {
		errs = append(errs, policy.KeyErr("arc.list_servers", "needs arc.seal_key: list re-injections are there to be sealed"))
	}
	if c.ARC.listServers() && !c.ARC.Enabled {
		errs = append(errs, policy.KeyErr("arc.list_servers", "needs the arc check (arc.enabled): our seal states the chain status it found"))
	}
	if c.DMARC.RejectReply.Code/100 != 5 {
		errs = append(errs, policy.KeyErr("dmarc.reject_reply", "must be a 5xx reply"))
	}
	for i, d := range c.ExemptDomains {
		if NormalizeDomain(d) == "" {
			errs = append(errs, policy.KeyErr("exempt_domains", "entry %d (%q) is not a domain", i+1, d))
		}
	}
	return errors.Join(errs...)
}

// Names of the three checks and of the config section.
const (
	SPF         = "spf"
	DKIM        = "dkim"
	DMARC       = "dmarc"
	ARC         = "arc"
	SectionName = "auth"
)

// SPFOutcomeOf returns the spf check's typed outcome among results (a
// check's prior), if it ran.
func SPFOutcomeOf(results policy.Results) (*SPFOutcome, bool) {
	o, ok := results[SPF].Data.(*SPFOutcome)
	return o, ok
}

// DKIMOutcomeOf returns the dkim check's typed outcome among results.
func DKIMOutcomeOf(results policy.Results) (*DKIMOutcome, bool) {
	o, ok := results[DKIM].Data.(*DKIMOutcome)
	return o, ok
}

// DMARCOutcomeOf returns the dmarc check's typed outcome among results.
func DMARCOutcomeOf(results policy.Results) (*DMARCOutcome, bool) {
	o, ok := results[DMARC].Data.(*DMARCOutcome)
	return o, ok
}

// Module is the "auth" module: checks spf, dkim and dmarc, querying r (the
// daemon's resolver).
//
// reports, when not nil, receives one observation per message whose DMARC
// policy asks for aggregate reports (rua=), after the verdict (see
// report.go); it must never block.
func Module(r *dns.Resolver, reports ReportSink) policy.Module {
	return policy.Module{
		Name:    SectionName,
		Default: func() any { return DefaultConfig() },
		Build: func(section any, env *policy.Env) ([]policy.Step, error) {
			cfg := section.(*Config)
			if r == nil {
				return nil, errors.New("auth: no resolver")
			}
			a := newAuth(cfg, env.Config, r, env.Logger)
			a.reports = reports
			steps := a.steps()
			if cfg.ARC.listServers() {
				st, err := newListSealStep(a, env)
				if err != nil {
					return nil, err
				}
				steps = append(steps, policy.Step{Check: st, StepConfig: policy.StepConfig{Enabled: true, Timeout: cfg.ARC.Timeout, OnError: policy.ActionAccept}})
			}
			return steps, nil
		},
	}
}

// authenticator holds what the three checks share.
type authenticator struct {
	cfg        *Config
	core       *policy.Config
	resolver   *dns.Resolver
	spfDNS     resolver // what SPF asks: the resolver, or a fake in tests
	log        *slog.Logger
	exemptDoms []string // normalised exempt domains
	// now and sample are seams for tests: the clock and the pct= draw
	// (a number in [0, 100)).
	now    func() time.Time
	sample func() int
	// reports collects DMARC aggregate-report rows; nil: none.
	reports ReportSink
}

func newAuth(cfg *Config, core *policy.Config, r *dns.Resolver, log *slog.Logger) *authenticator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if core == nil {
		core = policy.DefaultConfig()
	}
	a := &authenticator{cfg: cfg, core: core, resolver: r, spfDNS: r, log: log, now: time.Now, sample: func() int { return rand.IntN(100) }}
	for _, d := range cfg.ExemptDomains {
		a.exemptDoms = append(a.exemptDoms, NormalizeDomain(d))
	}
	return a
}

func (a *authenticator) steps() []policy.Step {
	var steps []policy.Step
	if a.cfg.SPF.Enabled {
		steps = append(steps, policy.Step{Check: &spfCheck{a}, StepConfig: a.cfg.SPF.StepConfig})
	}
	if a.cfg.DKIM.Enabled {
		steps = append(steps, policy.Step{Check: &dkimCheck{a}, StepConfig: a.cfg.DKIM.StepConfig})
	}
	if a.cfg.DMARC.Enabled {
		steps = append(steps, policy.Step{Check: &dmarcCheck{a}, StepConfig: a.cfg.DMARC.StepConfig})
	}
	if a.cfg.ARC.Enabled {
		steps = append(steps, policy.Step{Check: &arcCheck{a}, StepConfig: a.cfg.ARC.StepConfig})
	}
	return steps
}

// judged reports whether this message's SPF/DMARC results lead to actions:
// mail from us, list re-injections included, is only reported, unless
// judge_outbound is set.
func (a *authenticator) judged(m *message.Message) bool {
	return a.cfg.JudgeOutbound || !a.core.FromUs(m.Client, m.Auth) && !a.cfg.ARC.FromListServer(m)
}

// exemptIP reports whether the client is a known forwarder or list server.
func (a *authenticator) exemptIP(m *message.Message) bool {
	return m.Client.Addr.IsValid() && a.cfg.ExemptIPs.Contains(m.Client.Addr)
}

// exemptDomain reports whether d is an exempt domain or below one.
func (a *authenticator) exemptDomain(d string) bool {
	d = NormalizeDomain(d)
	if d == "" {
		return false
	}
	for _, e := range a.exemptDoms {
		if d == e || strings.HasSuffix(d, "."+e) {
			return true
		}
	}
	return false
}

// apply adds the configured action and score of status to res, with the
// reason code "<method>-<status>" (temperror: "auth-temperror").
func apply(res *policy.Result, method string, o Outcomes, status policy.Status, withAction bool) {
	code := method + "-" + string(status)
	if status == StatusTemperror {
		code = "auth-temperror"
	}
	used := false
	if s := o.Scores[string(status)]; s != 0 {
		res.Score += s
		res.Signals = append(res.Signals, policy.Signal{Name: method + "-" + string(status), Score: s})
		used = true
	}
	if act, ok := o.Actions[string(status)]; ok && withAction && act != policy.ActionAccept {
		if act > res.Action {
			res.Action = act
			if act == policy.ActionQuarantine {
				res.QuarantineReason = code
			}
		}
		used = true
	}
	if used && !slices.Contains(res.Reasons, code) {
		res.Reasons = append(res.Reasons, code)
	}
}

// clientIP formats the client address for headers.
func clientIP(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.Unmap().String()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
