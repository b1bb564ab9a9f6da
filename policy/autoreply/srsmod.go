package autoreply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// SRSConfig is the [srs] section. With no secret, SRS is off.
type SRSConfig struct {
	policy.StepConfig
	// Secret keys the hash; OldSecrets still verify (rollover). Every MTA
	// that may receive the bounces needs the same secrets.
	Secret     string   `toml:"secret"`
	OldSecrets []string `toml:"old_secrets"`
	// Domain is the domain of rewritten senders; default: the first of
	// local_domains.
	Domain string `toml:"domain"`
	// MaxAge is how long a rewritten address is accepted back.
	MaxAge policy.Duration `toml:"max_age"`
}

// DefaultSRS is the [srs] defaults.
func DefaultSRS() *SRSConfig {
	s := policy.DefaultStep()
	s.OnError = policy.ActionTempfail
	return &SRSConfig{StepConfig: s, MaxAge: policy.Duration(21 * 24 * time.Hour)}
}

// Validate checks the section.
func (c *SRSConfig) Validate() error {
	var errs []error
	if c.Secret != "" && len(c.Secret) < 16 {
		errs = append(errs, policy.KeyErr("secret", "use at least 16 characters"))
	}
	if c.MaxAge <= 0 || c.MaxAge.D() > 1000*day {
		errs = append(errs, policy.KeyErr("max_age", "must be between 1s and 1000d (the day stamp wraps at 1024)"))
	}
	if strings.ContainsAny(c.Domain, "@ \t") {
		errs = append(errs, policy.KeyErr("domain", "%q is not a domain", c.Domain))
	}
	return errors.Join(errs...)
}

// SRSSectionName is the [srs] section and the name of its check.
const SRSSectionName = "srs"

// SRSConfigOf returns the [srs] section of cfg (the defaults when absent).
func SRSConfigOf(cfg *policy.Config) *SRSConfig {
	if c := policy.SectionOf[*SRSConfig](cfg, SRSSectionName); c != nil {
		return c
	}
	return DefaultSRS()
}

// NewSRS makes the rewriter that the srs and autoreply checks share from
// the [srs] section; nil (no error) without a secret.
func NewSRS(c *SRSConfig, core *policy.Config) (*SRS, error) {
	if c == nil || c.Secret == "" {
		return nil, nil
	}
	d := strings.ToLower(strings.TrimSuffix(c.Domain, "."))
	if d == "" {
		if len(core.LocalDomains) == 0 {
			return nil, errors.New("srs: set srs.domain or local_domains")
		}
		d = core.LocalDomains[0]
	}
	s := &SRS{Domain: d, MaxAge: c.MaxAge.D(), Secrets: [][]byte{[]byte(c.Secret)}}
	for _, o := range c.OldSecrets {
		s.Secrets = append(s.Secrets, []byte(o))
	}
	return s, nil
}

// SRSModule is the [srs] section. With a secret (srs, from NewSRS) it
// builds the "srs" check, which turns bounces to our SRS addresses back
// into the original sender; the autoreply check does the rewriting of
// forwards.
func SRSModule(srs *SRS) policy.Module {
	return policy.Module{
		Name:    SRSSectionName,
		Default: func() any { return DefaultSRS() },
		Build: func(sec any, env *policy.Env) ([]policy.Step, error) {
			c := sec.(*SRSConfig)
			if srs == nil || !c.Enabled {
				return nil, nil
			}
			return []policy.Step{{Check: &SRSCheck{SRS: srs, Now: time.Now}, StepConfig: c.StepConfig}}, nil
		},
	}
}

// SRSCheck reverses SRS0 addresses of ours: at RCPT time it refuses forged
// or expired ones; at end of message it replaces each valid one by the
// original address (milter delrcpt + addrcpt).
type SRSCheck struct {
	SRS *SRS
	Now func() time.Time
}

func (c *SRSCheck) Name() string { return "srs" }

// Statuses of the srs check.
const (
	StatusSRSReversed policy.Status = "reversed"
	StatusSRSInvalid  policy.Status = "invalid"
)

var srsReject = policy.Reply{Code: 550, Enhanced: "5.1.1", Text: "No such user"}

func (c *SRSCheck) CheckRcpt(_ context.Context, _ *message.Envelope, rcpt string) (policy.Result, error) {
	if !c.SRS.IsSRS(rcpt) {
		return policy.Result{Status: policy.StatusNone}, nil
	}
	if _, err := c.SRS.Reverse(rcpt, c.Now()); err != nil {
		return policy.Result{Status: StatusSRSInvalid, Detail: err.Error(), Action: policy.ActionReject, Reasons: []string{"srs-invalid"}, Reply: srsReject}, nil
	}
	return policy.Result{Status: StatusSRSReversed}, nil
}

func (c *SRSCheck) Check(_ context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	var res policy.Result
	res.Status = policy.StatusNone
	var done []string
	for _, r := range m.Rcpts {
		if !c.SRS.IsSRS(r) {
			continue
		}
		orig, err := c.SRS.Reverse(r, c.Now())
		if err != nil {
			// Only reachable without RCPT-time checks (mailwarden check).
			return policy.Result{Status: StatusSRSInvalid, Detail: err.Error(), Action: policy.ActionReject, Reasons: []string{"srs-invalid"}, Reply: srsReject}, nil
		}
		res.DeleteRcpts = append(res.DeleteRcpts, r)
		res.AddRcpts = append(res.AddRcpts, orig)
		done = append(done, r+" → "+orig)
	}
	if len(done) > 0 {
		res.Status = StatusSRSReversed
		res.Detail = strings.Join(done, ", ")
	}
	return res, nil
}

// String helps logs.
func (s *SRS) String() string { return fmt.Sprintf("srs(%s)", s.Domain) }
