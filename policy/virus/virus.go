// Package virus is the malware check: it streams each message, as
// received, to one or more anti-virus engines and reports what they found.
// Engines ([[virus.engine]]) speak clamd's INSTREAM (package clamav), ICAP
// RESPMOD (RFC 3507, package icap: nearly every commercial engine) or
// Sophos SSSP (package sssp), so that mail can be scanned by an engine
// different from the one on the workstations; the old [[clamav.server]]
// groups are clamd engines.
//
// Statuses: clean, infected (with the signature name), error (no verdict:
// the engine is down, slow or failing) and oversize (the message is longer
// than an engine's max_size, or the engine refused or passed it on
// unscanned). The [virus] section maps each to an action: infected →
// reject 554 5.7.1 by default, and mandatory, so that allow lists and
// protected recipients cannot soften it; error → on_error, tempfail by
// default; oversize → on_oversize, reject by default (a message that
// cannot be scanned is not delivered unscanned). clamd's own limits (a
// "Heuristics.Limits.Exceeded.*" result, "INSTREAM size limit exceeded")
// are oversize too, unless limits_exceeded = "infected". Reason codes:
// virus-infected, virus-error, virus-oversize.
//
// The message is the header section and body in wire form (RFC 5322
// §2.1, CRLF line ends), streamed from the spooled body in chunks, so a
// 50 MB message costs no more memory than a small one. The engines decode
// MIME (RFC 2045 base64 and quoted-printable) and archives themselves.
//
// Every engine scans the same message concurrently, each within its own
// timeout and the check's; malware found by any engine is malware. With
// require = "all" every engine must have scanned the message, with "any"
// at least min_engines. Each engine's outcome and latency go to the debug
// log and, through EngineMetrics, to the metrics.
//
// Fields added: X-Virus-Scanned (the engines that scanned the message) and
// X-Virus-Status (Clean, Infected (signature), Unscanned (error|oversize));
// incoming fields with these names are removed, since the sender could
// forge them. The signature name goes to the log ("virus found" event) and
// the header, and to the SMTP reply only with reply_signature = true.
package virus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mailwarden/mailwarden/clamav"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/virus/icap"
	"github.com/mailwarden/mailwarden/policy/virus/sssp"
)

// Statuses reported by the check (policy.StatusError for error).
const (
	StatusClean    policy.Status = "clean"
	StatusInfected policy.Status = "infected"
	StatusError    policy.Status = policy.StatusError
	StatusOversize policy.Status = "oversize"
)

// Reason codes.
const (
	ReasonInfected = "virus-infected"
	ReasonError    = "virus-error"
	ReasonOversize = "virus-oversize"
)

// Finding is one scanner's verdict on one message.
type Finding struct {
	Status    policy.Status // clean, infected, error or oversize
	Signature string        // with infected
	Server    string        // which server answered, for the log
	Err       error         // with error and oversize
}

// Scanner is an anti-malware engine. Scan reads the message from open
// (called once per attempt; size is what it yields) and must return by
// ctx's deadline.
type Scanner interface {
	Name() string
	Scan(ctx context.Context, open func() io.Reader, size int64) Finding
}

// ClamAV adapts a clamav.Client to Scanner.
type ClamAV struct {
	name   string
	client *clamav.Client
}

// NewClamAV names a clamd client as a scanner ("clamav:<group>").
func NewClamAV(name string, c *clamav.Client) *ClamAV { return &ClamAV{name: name, client: c} }

func (s *ClamAV) Name() string { return s.name }

func (s *ClamAV) Scan(ctx context.Context, open func() io.Reader, size int64) Finding {
	res, err := s.client.Scan(ctx, open, size)
	switch {
	case errors.Is(err, clamav.ErrOversize):
		return Finding{Status: StatusOversize, Err: err}
	case err != nil:
		return Finding{Status: StatusError, Err: err}
	case res.Infected:
		return Finding{Status: StatusInfected, Signature: res.Signature, Server: res.Server}
	}
	return Finding{Status: StatusClean, Server: res.Server}
}

// Ping reports whether a clamd of the group answers.
func (s *ClamAV) Ping(ctx context.Context) error { return s.client.Ping(ctx) }

// EngineMetrics is the optional extension of policy.Metrics that counts
// each engine's scans (status and latency).
type EngineMetrics interface {
	EngineDone(engine string, status policy.Status, d time.Duration)
}

// Check is the "virus" pipeline step.
type Check struct {
	cfg      *Config
	scanners []Scanner
	replies  policy.RepliesConfig
	host     string // " on <authserv-id>" in X-Virus-Scanned
	log      *slog.Logger
	metrics  EngineMetrics
}

// New makes the check from its config and scanners. core may be nil.
func New(cfg *Config, scanners []Scanner, core *policy.Config, log *slog.Logger) *Check {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Check{cfg: cfg, scanners: scanners, log: log}
	if core != nil {
		c.replies = core.Replies
		c.host = " on " + core.AuthservID
	} else {
		c.replies = policy.DefaultConfig().Replies
	}
	return c
}

// WithMetrics makes the check report each engine's scans to m.
func (c *Check) WithMetrics(m EngineMetrics) *Check {
	c.metrics = m
	return c
}

func (c *Check) Name() string { return "virus" }

// Check scans the message.
func (c *Check) Check(ctx context.Context, m *message.Message, _ policy.Results) (policy.Result, error) {
	if len(c.scanners) == 0 {
		return policy.Result{}, errors.New("virus: no scanner configured")
	}
	// The step's timeout is the one deadline of the whole scan. Stop the
	// scanners a little before it, so that a slow clamd is reported by
	// this check (status error, with its header) rather than by the
	// pipeline abandoning it.
	sctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		margin := min(time.Until(dl)/10, time.Second)
		var cancel context.CancelFunc
		sctx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	size := m.RawSize()
	findings := make([]Finding, len(c.scanners))
	var wg sync.WaitGroup
	for i, s := range c.scanners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if x := recover(); x != nil {
					findings[i] = Finding{Status: StatusError, Err: fmt.Errorf("virus: scanner %s panicked: %v", s.Name(), x)}
				}
			}()
			start := time.Now()
			findings[i] = s.Scan(sctx, m.Raw, size)
			if c.metrics != nil {
				c.metrics.EngineDone(s.Name(), findings[i].Status, time.Since(start))
			}
		}()
	}
	wg.Wait()
	for i, f := range findings {
		if f.Status == StatusInfected && clamav.LimitExceeded(f.Signature) && c.cfg.LimitsExceeded != LimitsInfected {
			// clamd stopped at one of its limits: not scanned, not clean.
			findings[i] = Finding{Status: StatusOversize, Server: f.Server, Err: fmt.Errorf("clamd stopped at a scan limit: %s", f.Signature)}
		}
	}
	return c.result(m, findings), nil
}

// combine merges the engines' findings: malware found by any engine is
// malware; otherwise require decides: "all" needs every engine to have
// scanned the message (the first error, else the first oversize, spoils
// it), "any" needs min of them (else oversize before error).
func combine(req Require, min int, fs []Finding) (Finding, int) {
	for i, f := range fs {
		if f.Status == StatusInfected {
			return f, i
		}
	}
	pick := func(st policy.Status) (Finding, int, bool) {
		for i, f := range fs {
			if f.Status == st {
				return f, i, true
			}
		}
		return Finding{}, -1, false
	}
	clean := 0
	for _, f := range fs {
		if f.Status == StatusClean {
			clean++
		}
	}
	order := []policy.Status{StatusError, StatusOversize}
	switch {
	case req == RequireAny && clean >= max(min, 1), req != RequireAny && clean == len(fs) && clean > 0:
		order = []policy.Status{StatusClean}
	case req == RequireAny:
		order = []policy.Status{StatusOversize, StatusError}
	}
	for _, st := range order {
		if f, i, ok := pick(st); ok {
			return f, i
		}
	}
	if req == RequireAny && clean > 0 {
		// Fewer than min_engines scanned it and the others gave no
		// other status (cannot happen with the four statuses).
		return Finding{Status: StatusError, Err: fmt.Errorf("virus: %d engines scanned the message, min_engines is %d", clean, min)}, -1
	}
	return Finding{Status: StatusError, Err: errors.New("virus: no verdict")}, -1
}

func (c *Check) result(m *message.Message, fs []Finding) policy.Result {
	f, i := combine(c.cfg.Require, c.cfg.MinEngines, fs)
	engine := ""
	if i >= 0 {
		engine = c.scanners[i].Name()
	}
	// X-Virus-Scanned names the engines that scanned this message;
	// each engine's outcome goes to the detail and the debug log.
	var scanned, each []string
	for j, g := range fs {
		name := c.scanners[j].Name()
		if g.Status == StatusClean || g.Status == StatusInfected {
			scanned = append(scanned, name)
		}
		e := name + "=" + string(g.Status)
		switch {
		case g.Signature != "":
			e += "(" + g.Signature + ")"
		case g.Err != nil:
			e += "(" + g.Err.Error() + ")"
		}
		each = append(each, e)
		c.log.Debug("virus engine", "queue_id", m.QueueID, "engine", name, "status", string(g.Status), "signature", g.Signature, "server", g.Server, "error", fmt.Sprint(g.Err))
	}
	r := policy.Result{Status: f.Status}
	for _, h := range []string{c.cfg.HeaderScanned, c.cfg.HeaderStatus} {
		if h != "" {
			r.RemoveHeaders = append(r.RemoveHeaders, h)
		}
	}
	status := ""
	switch f.Status {
	case StatusClean:
		status = "Clean"
		r.Detail = "clean: " + engine + " " + f.Server
	case StatusInfected:
		status = "Infected (" + f.Signature + ")"
		r.Action = c.cfg.OnInfected
		r.Mandatory = true
		r.Reasons = []string{ReasonInfected}
		r.Reply = c.cfg.InfectedReply
		if c.cfg.ReplySignature {
			r.Reply.Text = strings.TrimSpace(r.Reply.Text + " (" + f.Signature + ")")
		}
		r.QuarantineReason = ReasonInfected + " " + f.Signature
		r.Detail = "infected: " + f.Signature + " (" + engine + " " + f.Server + ")"
		c.log.Warn("virus found", "queue_id", m.QueueID, "signature", f.Signature, "scanner", engine, "server", f.Server,
			"from", m.MailFrom, "rcpts", m.Rcpts, "client", m.Client.Addr.String(), "action", r.Action.String())
	case StatusOversize:
		status = "Unscanned (oversize)"
		r.Action = c.cfg.OnOversize
		// A message that cannot be scanned is treated like one that was
		// found: allow lists do not let it through unscanned.
		r.Mandatory = r.Action != policy.ActionAccept
		r.Reasons = []string{ReasonOversize}
		if r.Action == policy.ActionReject {
			r.Reply = c.replies.Oversize
		}
		r.QuarantineReason = ReasonOversize
		r.Detail = fmt.Sprintf("oversize: %d bytes: %v", m.RawSize(), f.Err)
	default:
		status = "Unscanned (error)"
		r.Status = StatusError
		r.Action = c.cfg.OnError
		// Nor does an allow list let mail through unscanned while the
		// scanner is down.
		r.Mandatory = r.Action != policy.ActionAccept
		r.Reasons = []string{ReasonError}
		r.Detail = fmt.Sprintf("error: %v", f.Err)
		c.log.Warn("virus scan failed", "queue_id", m.QueueID, "error", fmt.Sprint(f.Err), "action", r.Action.String())
	}
	if len(fs) > 1 {
		r.Detail += " [" + strings.Join(each, "; ") + "]"
	}
	if c.cfg.HeaderScanned != "" && len(scanned) > 0 {
		r.Headers = append(r.Headers, message.Field{Name: c.cfg.HeaderScanned, Value: "mailwarden (" + strings.Join(scanned, ", ") + ")" + c.host})
	}
	if c.cfg.HeaderStatus != "" {
		r.Headers = append(r.Headers, message.Field{Name: c.cfg.HeaderStatus, Value: status})
	}
	return r
}

// Name is the check's name and its config section.
const Name = "virus"

// ClamAVSectionName is the clamd servers' config section.
const ClamAVSectionName = "clamav"

// Infected reports whether r, the virus check's result, found malware.
func Infected(r policy.Result) bool { return r.Status == StatusInfected }

// Module is the "virus" check ([virus] section), scanning with scanners
// (the daemon's engines, built by NewScanners from [[virus.engine]] or
// [clamav]).
func Module(scanners []Scanner) policy.Module {
	return policy.Module{
		Name:    Name,
		Default: func() any { return DefaultConfig() },
		Build: func(section any, env *policy.Env) ([]policy.Step, error) {
			cfg := section.(*Config)
			if !cfg.Enabled {
				env.Logger.Warn("virus scanning is disabled: mail is not scanned for malware (set [virus] enabled = true)")
				return nil, nil
			}
			if len(scanners) == 0 {
				return nil, errors.New("virus: enabled but no scanner was built")
			}
			check := New(cfg, scanners, env.Config, env.Logger)
			if m, ok := env.Metrics.(EngineMetrics); ok {
				check.WithMetrics(m)
			}
			return []policy.Step{{Check: check, StepConfig: cfg.StepConfig, Mandatory: true}}, nil
		},
	}
}

// ClamAVSection is the [clamav] section: clamd servers, no step of its own.
func ClamAVSection() policy.Module {
	return policy.Module{Name: ClamAVSectionName, Default: func() any { return DefaultClamAVConfig() }}
}

// ConfigOf returns the [virus] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, Name); c != nil {
		return c
	}
	return DefaultConfig()
}

// ClamAVConfigOf returns the [clamav] section of cfg (the defaults when
// absent).
func ClamAVConfigOf(cfg *policy.Config) *ClamAVConfig {
	if c := policy.SectionOf[*ClamAVConfig](cfg, ClamAVSectionName); c != nil {
		return c
	}
	return DefaultClamAVConfig()
}

// NewScanners makes one scanner per engine: the [[virus.engine]] blocks of
// vc, or else the [[clamav.server]] groups of cc (both at once is
// ErrBothForms). Nothing connects here.
func NewScanners(vc *Config, cc *ClamAVConfig) ([]Scanner, error) {
	engines, err := checkEngines(vc, cc)
	if err != nil {
		return nil, err
	}
	var scanners []Scanner
	for i := range engines {
		s, err := newScanner(&engines[i], vc.Timeout.D())
		if err != nil {
			return nil, err
		}
		scanners = append(scanners, s)
	}
	return scanners, nil
}

// newScanner makes the client of one engine; timeout is [virus] timeout,
// the bound of an engine without its own.
func newScanner(e *Engine, timeout time.Duration) (Scanner, error) {
	if e.Timeout > 0 {
		timeout = min(timeout, e.Timeout.D())
	}
	switch e.Type {
	case EngineClamd:
		c, err := clamav.New(clamav.Options{Servers: e.clamd, StreamMaxLength: int64(e.MaxSize), Timeout: timeout, ConnectTimeout: e.ConnectTimeout.D()})
		if err != nil {
			return nil, err
		}
		return NewClamAV(e.ScannerName(), c), nil
	case EngineICAP:
		c, err := icap.New(icap.Options{Servers: e.icap, MaxSize: int64(e.MaxSize), Timeout: timeout, ConnectTimeout: e.ConnectTimeout.D(),
			MaxConnections: e.MaxConnections, NoPreview: e.Preview != nil && !*e.Preview, ThreatHeaders: e.ThreatHeaders})
		if err != nil {
			return nil, err
		}
		return NewICAP(e.ScannerName(), c), nil
	case EngineSSSP:
		c, err := sssp.New(sssp.Options{Servers: e.sssp, MaxSize: int64(e.MaxSize), Timeout: timeout, ConnectTimeout: e.ConnectTimeout.D(), MaxConnections: e.MaxConnections})
		if err != nil {
			return nil, err
		}
		return NewSSSP(e.ScannerName(), c), nil
	}
	return nil, fmt.Errorf("virus: engine %s: unknown type %q", e.ScannerName(), e.Type)
}

// Close releases what the scanners keep between messages (an ICAP
// engine's idle connections), when a reload replaces them.
func Close(scanners []Scanner) error {
	var errs []error
	for _, s := range scanners {
		if c, ok := s.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// Ping asks every scanner once (an ICAP engine: OPTIONS) and logs the ones
// not answering, so that an operator hears at start (and reload) that an
// engine is down rather than in the first deferred message. The daemon
// runs it in its own goroutine.
func Ping(ctx context.Context, scanners []Scanner, onError policy.Action, log *slog.Logger) {
	for _, s := range scanners {
		if p, ok := s.(interface{ Ping(context.Context) error }); ok {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := p.Ping(pctx); err != nil {
				log.Warn("virus: scanner not answering; mail will get on_error until it does", "scanner", s.Name(), "error", err.Error(), "on_error", onError.String())
			}
			cancel()
		}
	}
}
