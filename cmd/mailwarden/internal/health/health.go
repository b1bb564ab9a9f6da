// Package health probes the neighbours mailwarden depends on, every few
// seconds, so that `mailwarden status` and the metrics show a broken
// neighbour before the mail queue does:
//
//   - relay hosts answer SMTP: a 220 greeting and a 250 reply to EHLO
//     (RFC 5321 §4.1.1.1, §4.2), then QUIT;
//   - clamd answers PING with PONG (clamd(8), "zPING" null-terminated form);
//   - Redis answers PING (RESP: "+PONG"; an authentication error also
//     proves the server is alive);
//   - DNS servers answer a query (RFC 1035 §4.1.1: any RCODE other than
//     SERVFAIL or REFUSED counts as an answer).
//
// Probe functions are injectable. The daemon builds the Prober from the
// [health] section (wire.BuildServices), starts its goroutine (Start) and
// stops it (Close); it outlives reloads that leave [health] unchanged.
// `check` and `eval` never start it. Probing never changes a verdict: the checks that use a
// backend apply their own on_error action.
package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/mailwarden/mailwarden/policy"
)

// Kind names a kind of neighbour.
type Kind string

const (
	KindSMTP  Kind = "smtp"
	KindClamd Kind = "clamd"
	KindRedis Kind = "redis"
	KindDNS   Kind = "dns"
)

// Probe checks one target; nil means it answered correctly.
type Probe func(ctx context.Context, target string) error

// Result is the outcome of one probe.
type Result struct {
	Kind    Kind          `json:"kind"`
	Target  string        `json:"target"`
	Up      bool          `json:"up"`
	Error   string        `json:"error,omitempty"`
	Latency time.Duration `json:"latency_ns"`
	Checked time.Time     `json:"checked"`
}

// Reporter receives every round of results; the daemon's status and
// metrics implement it.
type Reporter interface {
	HealthResults(rs []Result)
}

// Config is the [health] section.
type Config struct {
	Enabled  bool            `toml:"enabled"`
	Interval policy.Duration `toml:"interval"`
	Timeout  policy.Duration `toml:"timeout"`
	// RelayHosts are host:port of the SMTP relays (Postfix relayhost).
	RelayHosts []string `toml:"relay_hosts"`
	// HELO is the name sent in EHLO.
	HELO string `toml:"helo"`
	// Clamd is unix:/path or tcp:host:port ("" = not probed).
	Clamd string `toml:"clamd"`
	// Redis is host:port ("" = not probed).
	Redis string `toml:"redis"`
	// DNSServers are host:port of resolvers; DNSQuery is the name asked
	// (type A).
	DNSServers []string `toml:"dns_servers"`
	DNSQuery   string   `toml:"dns_query"`
}

// Default returns the defaults: enabled, nothing to probe.
func Default() *Config {
	return &Config{Enabled: true, Interval: policy.Duration(30 * time.Second), Timeout: policy.Duration(5 * time.Second), HELO: "localhost", DNSQuery: "localhost.", RelayHosts: []string{}, DNSServers: []string{}}
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Interval.D() < 100*time.Millisecond {
		errs = append(errs, policy.KeyErr("interval", "must be at least 100ms"))
	}
	if c.Timeout.D() <= 0 {
		errs = append(errs, policy.KeyErr("timeout", "must be positive"))
	}
	for _, h := range append(append([]string{}, c.RelayHosts...), c.DNSServers...) {
		if _, _, err := net.SplitHostPort(h); err != nil {
			errs = append(errs, policy.KeyErr("relay_hosts", "%q is not host:port", h))
		}
	}
	if c.Redis != "" {
		if _, _, err := net.SplitHostPort(c.Redis); err != nil {
			errs = append(errs, policy.KeyErr("redis", "%q is not host:port", c.Redis))
		}
	}
	if c.Clamd != "" && !strings.HasPrefix(c.Clamd, "unix:") && !strings.HasPrefix(c.Clamd, "tcp:") {
		errs = append(errs, policy.KeyErr("clamd", "%q must start with unix: or tcp:", c.Clamd))
	}
	if c.HELO == "" || strings.ContainsAny(c.HELO, " \r\n") {
		errs = append(errs, policy.KeyErr("helo", "must be a host name"))
	}
	return errors.Join(errs...)
}

// SectionName is the prober's config section.
const SectionName = "health"

// Section is the [health] section; it builds no step. The daemon makes the
// Prober (New) and starts it (Start); `check` and `eval` never do.
func Section() policy.Module {
	return policy.Module{Name: SectionName, Default: func() any { return Default() }}
}

// ConfigOf returns the [health] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, SectionName); c != nil {
		return c
	}
	return Default()
}

// Target is one neighbour to probe.
type Target struct {
	Kind   Kind
	Target string
}

// Targets lists what c asks to probe, in a stable order.
func (c *Config) Targets() []Target {
	var ts []Target
	for _, h := range c.RelayHosts {
		ts = append(ts, Target{KindSMTP, h})
	}
	if c.Clamd != "" {
		ts = append(ts, Target{KindClamd, c.Clamd})
	}
	if c.Redis != "" {
		ts = append(ts, Target{KindRedis, c.Redis})
	}
	for _, s := range c.DNSServers {
		ts = append(ts, Target{KindDNS, s})
	}
	return ts
}

// Options are the prober's injected world.
type Options struct {
	Probes   map[Kind]Probe // default: the real probes
	Ticker   func(d time.Duration) (<-chan time.Time, func())
	Now      func() time.Time
	Logger   *slog.Logger
	Reporter Reporter
}

// Prober probes the targets periodically.
type Prober struct {
	c       *Config
	targets []Target
	opt     Options

	mu      sync.Mutex
	results []Result

	stop, done chan struct{}
	once       sync.Once
}

// New makes a prober.
func New(c *Config, opt Options) *Prober {
	real := map[Kind]Probe{KindSMTP: SMTP(c.HELO), KindClamd: Clamd, KindRedis: Redis, KindDNS: DNS(c.DNSQuery)}
	if opt.Probes == nil {
		opt.Probes = map[Kind]Probe{}
	}
	for k, p := range real {
		if opt.Probes[k] == nil {
			opt.Probes[k] = p
		}
	}
	if opt.Ticker == nil {
		opt.Ticker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Prober{c: c, targets: c.Targets(), opt: opt}
}

// Start probes at once and then every interval until Close.
func (p *Prober) Start() {
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	tick, stopTick := p.opt.Ticker(p.c.Interval.D())
	go func() {
		defer close(p.done)
		defer stopTick()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { <-p.stop; cancel() }()
		p.Round(ctx)
		for {
			select {
			case <-p.stop:
				return
			case <-tick:
				p.Round(ctx)
			}
		}
	}()
}

// Close stops the prober.
func (p *Prober) Close() error {
	p.once.Do(func() {
		if p.stop != nil {
			close(p.stop)
			<-p.done
		}
	})
	return nil
}

// Round probes every target once, concurrently, and reports the results.
func (p *Prober) Round(ctx context.Context) []Result {
	if len(p.targets) == 0 {
		return nil
	}
	rs := make([]Result, len(p.targets))
	var wg sync.WaitGroup
	for i, t := range p.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, p.c.Timeout.D())
			defer cancel()
			start := p.opt.Now()
			err := safeProbe(cctx, p.opt.Probes[t.Kind], t.Target)
			r := Result{Kind: t.Kind, Target: t.Target, Up: err == nil, Latency: p.opt.Now().Sub(start), Checked: start}
			if err != nil {
				r.Error = err.Error()
			}
			rs[i] = r
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return rs // shutting down: do not report cancelled probes as down
	}
	p.mu.Lock()
	prev := p.results
	p.results = rs
	p.mu.Unlock()
	for i, r := range rs {
		wasUp := i >= len(prev) || prev[i].Up // first round: report only failures
		switch {
		case !r.Up && wasUp:
			p.opt.Logger.Warn("neighbour down", "kind", string(r.Kind), "target", r.Target, "error", r.Error)
		case r.Up && !wasUp:
			p.opt.Logger.Info("neighbour up", "kind", string(r.Kind), "target", r.Target)
		}
	}
	if p.opt.Reporter != nil {
		p.opt.Reporter.HealthResults(rs)
	}
	return rs
}

func safeProbe(ctx context.Context, probe Probe, target string) (err error) {
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("health: probe panicked: %v", x)
		}
	}()
	if probe == nil {
		return errors.New("health: no probe")
	}
	return probe(ctx, target)
}

// Results returns the last round, sorted by kind and target.
func (p *Prober) Results() []Result {
	p.mu.Lock()
	rs := append([]Result(nil), p.results...)
	p.mu.Unlock()
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Kind != rs[j].Kind {
			return rs[i].Kind < rs[j].Kind
		}
		return rs[i].Target < rs[j].Target
	})
	return rs
}

// dial connects with ctx's deadline applied to the whole conversation.
func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	go func() { <-ctx.Done(); c.SetDeadline(time.Unix(1, 0)) }()
	return c, nil
}

// SMTP returns a probe that expects a 220 greeting and a 250 EHLO reply.
func SMTP(helo string) Probe {
	return func(ctx context.Context, addr string) error {
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		r := bufio.NewReader(c)
		// RFC 5321 §4.2: a multiline reply has "-" after the code on every
		// line but the last.
		if code, err := smtpReply(r); err != nil || code != 220 {
			return fmt.Errorf("health: greeting: %d %v", code, err)
		}
		fmt.Fprintf(c, "EHLO %s\r\n", helo)
		if code, err := smtpReply(r); err != nil || code != 250 {
			return fmt.Errorf("health: EHLO: %d %v", code, err)
		}
		io.WriteString(c, "QUIT\r\n")
		return nil
	}
}

func smtpReply(r *bufio.Reader) (int, error) {
	for i := 0; i < 100; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if len(line) < 4 {
			return 0, fmt.Errorf("short reply %q", line)
		}
		code := 0
		for _, c := range []byte(line[:3]) {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("bad reply %q", line)
			}
			code = code*10 + int(c-'0')
		}
		if line[3] != '-' {
			return code, nil
		}
	}
	return 0, errors.New("reply too long")
}

// Clamd sends zPING and expects PONG.
func Clamd(ctx context.Context, addr string) error {
	network, a := "tcp", strings.TrimPrefix(addr, "tcp:")
	if strings.HasPrefix(addr, "unix:") {
		network, a = "unix", strings.TrimPrefix(addr, "unix:")
	}
	c, err := dial(ctx, network, a)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "zPING\x00"); err != nil {
		return fmt.Errorf("health: clamd: %w", err)
	}
	b, err := bufio.NewReader(c).ReadString(0)
	if strings.TrimRight(b, "\x00\n") != "PONG" {
		return fmt.Errorf("health: clamd answered %q (%v)", b, err)
	}
	return nil
}

// Redis sends PING and expects +PONG (or an authentication error, which
// proves the server answers).
func Redis(ctx context.Context, addr string) error {
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return fmt.Errorf("health: redis: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "+PONG" || strings.HasPrefix(line, "-NOAUTH") {
		return nil
	}
	return fmt.Errorf("health: redis answered %q (%v)", line, err)
}

// DNS returns a probe asking the server for name (type A).
func DNS(name string) Probe {
	return func(ctx context.Context, addr string) error {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		m.RecursionDesired = true
		cl := &dns.Client{}
		if dl, ok := ctx.Deadline(); ok {
			cl.Timeout = time.Until(dl)
		}
		r, _, err := cl.ExchangeContext(ctx, m, addr)
		if err != nil {
			return fmt.Errorf("health: dns: %w", err)
		}
		if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			return fmt.Errorf("health: dns answered %s", dns.RcodeToString[r.Rcode])
		}
		return nil
	}
}
