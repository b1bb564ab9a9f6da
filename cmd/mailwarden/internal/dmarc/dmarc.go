// Package dmarc is the daemon's side of DMARC aggregate reporting (RFC
// 7489 §7.2, policy/rua): the [dmarc_report] section, the service that
// owns the collection queue and the hourly send scheduler, and the code
// behind `mailwarden dmarc send` and `mailwarden dmarc ingest`.
//
// Mechanism. The auth module's dmarc check observes every verdict and
// hands rows to the Service's queue (never blocking mail); one worker
// writes them to the shared [store]. The scheduler wakes hourly (with
// jitter) and runs rua.Reporter, which builds each finished day's reports
// once and delivers them through the local MTA (smtp), so that they are
// DKIM-signed on the way out. Errors are logged and counted; they never
// touch mail flow.
package dmarc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/netip"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/rua"
	"github.com/mailwarden/mailwarden/policy/store"
)

// SectionName is the config section.
const SectionName = "dmarc_report"

// Config is the [dmarc_report] section.
type Config struct {
	// Enabled collects rows and sends reports.
	Enabled bool `toml:"enabled"`
	// OrgName, Submitter (our domain), Email (contact address) and
	// ExtraContactInfo identify us in every report.
	OrgName          string `toml:"org_name"`
	Submitter        string `toml:"submitter"`
	Email            string `toml:"email"`
	ExtraContactInfo string `toml:"extra_contact_info"`
	// From is the From of report mail (Email when empty); it should be in
	// a domain the MTA signs.
	From string `toml:"from"`
	// SMTP is the local MTA reports are handed to; Helo our name there.
	SMTP string `toml:"smtp"`
	Helo string `toml:"helo"`
	// Interval and Jitter pace the sender; GiveUpAfter bounds retries.
	Interval    policy.Duration `toml:"interval"`
	Jitter      policy.Duration `toml:"jitter"`
	GiveUpAfter policy.Duration `toml:"give_up_after"`
	// MaxRows caps the rows per policy domain and day; MaxDestinations
	// the rua= mailboxes served per domain.
	MaxRows         int `toml:"max_rows"`
	MaxDestinations int `toml:"max_destinations"`
	// QueueSize is the collection queue in front of the store.
	QueueSize int `toml:"queue_size"`
	// ReportAddresses are our own rua= mailboxes: mail to them is never
	// counted. Exclude* are other mail that is not counted.
	ReportAddresses   []string        `toml:"report_addresses"`
	ExcludeDomains    []string        `toml:"exclude_domains"`
	ExcludeRecipients []string        `toml:"exclude_recipients"`
	ExcludeSources    policy.Networks `toml:"exclude_sources"`
}

// DefaultConfig is the section's defaults: off.
func DefaultConfig() *Config {
	return &Config{
		SMTP:            "127.0.0.1:25",
		Interval:        policy.Duration(time.Hour),
		Jitter:          policy.Duration(10 * time.Minute),
		GiveUpAfter:     policy.Duration(72 * time.Hour),
		MaxRows:         rua.DefaultMaxRows,
		MaxDestinations: 3,
		QueueSize:       4096,
	}
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Enabled {
		if c.OrgName == "" {
			errs = append(errs, policy.KeyErr("org_name", "required when enabled"))
		}
		if auth.NormalizeDomain(c.Submitter) == "" {
			errs = append(errs, policy.KeyErr("submitter", "a domain is required when enabled"))
		}
		if _, err := mail.ParseAddress(c.Email); err != nil {
			errs = append(errs, policy.KeyErr("email", "an address is required when enabled: %v", err))
		}
	}
	if c.From != "" {
		if _, err := mail.ParseAddress(c.From); err != nil {
			errs = append(errs, policy.KeyErr("from", "%v", err))
		}
	}
	if _, err := netip.ParseAddrPort(c.SMTP); err != nil && !strings.Contains(c.SMTP, ":") {
		errs = append(errs, policy.KeyErr("smtp", "want host:port"))
	}
	if c.Interval <= 0 || c.Jitter < 0 || c.GiveUpAfter < policy.Duration(24*time.Hour) {
		errs = append(errs, policy.KeyErr("interval", "interval must be positive, jitter not negative, give_up_after at least 24h"))
	}
	if c.MaxRows <= 0 || c.MaxDestinations <= 0 || c.QueueSize <= 0 {
		errs = append(errs, policy.KeyErr("max_rows", "max_rows, max_destinations and queue_size must be positive"))
	}
	return errors.Join(errs...)
}

// Section is the [dmarc_report] section. It builds no step: the daemon
// builds one Service from it (New) and the auth module feeds it.
func Section() policy.Module {
	return policy.Module{Name: SectionName, Default: func() any { return DefaultConfig() }}
}

// ConfigOf returns the section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, SectionName); c != nil {
		return c
	}
	return DefaultConfig()
}

// Service is the collector, its queue, the reporter and the scheduler.
type Service struct {
	Collector *rua.Collector
	Queue     *rua.Queue
	Reporter  *rua.Reporter
	Scheduler *rua.Scheduler
	log       *slog.Logger
	drained   chan struct{} // closed when the queue worker has returned
}

// Wait waits (up to 10 s) for the queue worker, once Start's context
// ended, to have written what was queued: the daemon closes the store
// after it.
func (s *Service) Wait() error {
	if s.drained == nil {
		return nil
	}
	select {
	case <-s.drained:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("dmarc: report queue not drained within 10s")
	}
}

// New builds the service on the shared store and resolver. It starts
// nothing (Start does).
func New(c *Config, st rua.Store, r rua.Resolver, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	// The outbox's records ("sending", "sent") decide whether a report is
	// sent again after a crash: they must be on disk before the SMTP step
	// that follows them, never in the write-behind queue.
	if s, ok := st.(store.Store); ok {
		st = store.Durable(s)
	}
	col := &rua.Collector{
		Store: st, MaxRows: c.MaxRows,
		Retention: c.GiveUpAfter.D() + 5*24*time.Hour,
		Guard: rua.LoopGuard{
			ReportAddresses: c.ReportAddresses, ExcludeDomains: c.ExcludeDomains,
			ExcludeRecipients: c.ExcludeRecipients, ExcludeSources: prefixes(c.ExcludeSources),
		},
	}
	from := c.From
	if from == "" {
		from = c.Email
	}
	if a, err := mail.ParseAddress(from); err == nil {
		from = a.Address
	}
	email := c.Email
	if a, err := mail.ParseAddress(email); err == nil {
		email = a.Address
	}
	return &Service{
		Collector: col,
		Queue:     rua.NewQueue(col, c.QueueSize, log),
		Reporter: &rua.Reporter{
			Collector: col,
			Verifier:  &rua.Verifier{Resolver: r, OrgDomain: auth.OrgDomain},
			Transport: &rua.SMTP{Addr: c.SMTP, Helo: c.Helo},
			Identity: rua.Identity{OrgName: c.OrgName, Submitter: auth.NormalizeDomain(c.Submitter),
				Email: email, ExtraContactInfo: c.ExtraContactInfo},
			From: from, MaxDestinations: c.MaxDestinations, GiveUpAfter: c.GiveUpAfter.D(), Logger: log,
		},
		Scheduler: &rua.Scheduler{Interval: c.Interval.D(), Jitter: c.Jitter.D()},
		log:       log,
	}
}

func prefixes(n policy.Networks) []netip.Prefix {
	out := make([]netip.Prefix, len(n))
	for i, p := range n {
		out[i] = p.P()
	}
	return out
}

// Start runs the collection worker and the hourly sender until ctx ends.
func (s *Service) Start(ctx context.Context) {
	s.drained = make(chan struct{})
	go func() {
		defer close(s.drained)
		s.Queue.Run(ctx)
	}()
	go s.Scheduler.Run(ctx, func(ctx context.Context, now time.Time) {
		if err := s.Reporter.Run(ctx, now); err != nil {
			s.log.Warn("dmarc report run", "err", err)
		}
	})
}

// Sink is the queue as the auth module's report sink; nil when the
// service is off.
func (s *Service) Sink() auth.ReportSink {
	if s == nil {
		return nil
	}
	return s.Queue
}

// Stats are the counters for metrics.
type Stats struct {
	Recorded, Skipped, Capped, StoreErrors, Dropped                               int64
	Built, Sent, Notices, Retries, GivenUp, Unauthorized, Unconfirmed, SendErrors int64
}

// Stats reads the live counters.
func (s *Service) Stats() Stats {
	c, r := s.Collector.Stats(), s.Reporter.Stats()
	return Stats{
		Recorded: c.Recorded.Load(), Skipped: c.Skipped.Load(), Capped: c.Capped.Load(), StoreErrors: c.Errors.Load(),
		Dropped: s.Queue.Dropped(),
		Built:   r.Built.Load(), Sent: r.Sent.Load(), Notices: r.Notices.Load(), Retries: r.Retries.Load(),
		GivenUp: r.GivenUp.Load(), Unauthorized: r.Unauthorized.Load(), Unconfirmed: r.Unconfirmed.Load(), SendErrors: r.Errors.Load(),
	}
}

// ParseDate reads --date (YYYY-MM-DD, UTC).
func ParseDate(s string) (time.Time, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("dmarc: --date %q: want YYYY-MM-DD", s)
	}
	return t, nil
}
