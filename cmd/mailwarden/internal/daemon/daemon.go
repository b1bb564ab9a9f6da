package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/dmarc"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/metrics"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/quarcli"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/wire"
	"github.com/mailwarden/mailwarden/filter"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/quarantine"
	"github.com/mailwarden/mailwarden/policy/spam/sa"
	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/virus"
)

// Server is the running daemon: the pipeline in force (a Holder), the
// services it runs on, the milter server, and the operations code
// (control socket, metrics) that Run starts explicitly.
type Server struct {
	cfgPath string
	load    func(path string) (*policy.Config, error)
	version string
	holder  *policy.Holder
	modes   *policy.ModeSwitch
	started time.Time
	logger  *slog.Logger
	level   *slog.LevelVar
	srv     *filter.Server
	metrics policy.Metrics
	ops     *metrics.Ops                    // the daemon's metrics and status state
	svc     *wire.Services                  // the services in force (outlive reloads)
	svcMu   sync.Mutex                      // guards svc for the control socket's readers
	learn   learner                         // `learn` through the control socket
	quar    atomic.Pointer[wire.Quarantine] // our quarantine in force, nil when off
	reloads atomic.Int64                    // successful reloads
	failed  atomic.Int64                    // refused reloads
	reports atomic.Pointer[dmarc.Service]   // svc.Reports, for the metrics' scrapes
	svcNow  atomic.Pointer[wire.Services]   // svc, for the metrics scrape
}

// Options configure New.
type Options struct {
	// ConfigPath is the file Load reads at start and on SIGHUP ("" is the
	// built-in default).
	ConfigPath string
	// Load reads and validates a complete daemon config.
	Load    func(path string) (*policy.Config, error)
	Logger  *slog.Logger
	Level   *slog.LevelVar // set from [log] level on reload
	Version string
	// Started is the start time (default now); tests pass an earlier one.
	Started time.Time
}

// New makes a daemon; Run (or Build, for tests) brings it up.
func New(o Options) *Server {
	if o.Started.IsZero() {
		o.Started = time.Now()
	}
	if o.Level == nil {
		o.Level = &slog.LevelVar{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Server{cfgPath: o.ConfigPath, load: o.Load, version: o.Version, modes: &policy.ModeSwitch{}, started: o.Started, logger: o.Logger, level: o.Level}
	d.ops = metrics.New(d)
	d.metrics = d.ops
	return d
}

// Ops is the daemon's metrics and status state.
func (d *Server) Ops() *metrics.Ops { return d.ops }

// Pipeline is the pipeline in force.
func (d *Server) Pipeline() *policy.Pipeline { return d.holder.Current() }

// Start builds the first pipeline of cfg and puts it in force (Run does it
// too); the returned function closes it and the services.
func (d *Server) Start(cfg *policy.Config) (func(), error) {
	p, _, err := d.build(cfg)
	if err != nil {
		return nil, err
	}
	d.holder = policy.NewHolder(p)
	return func() { d.holder.Close(); d.svc.Close() }, nil
}

func (d *Server) cfg() *policy.Config        { return d.holder.Current().Config() }
func (d *Server) pipeline() *policy.Pipeline { return d.holder.Current() }
func (d *Server) inflight() int              { return d.srv.InFlight() }

// The daemon's state as the metrics read it (metrics.Daemon).

// DMARCReports implements metrics.Daemon.
func (d *Server) DMARCReports() (dmarc.Stats, bool) {
	if r := d.reports.Load(); r != nil {
		return r.Stats(), true
	}
	return dmarc.Stats{}, false
}

// Mode is the effective mode (works before the pipeline exists).
func (d *Server) Mode() policy.Mode {
	if m, ok := d.modes.Get(); ok {
		return m
	}
	if d.holder == nil {
		return ""
	}
	return d.cfg().Mode
}
func (d *Server) Conns() int {
	if d.srv == nil {
		return 0
	}
	return d.srv.Conns()
}
func (d *Server) AcceptErrors() int64 {
	if d.srv == nil {
		return 0
	}
	return int64(d.srv.AcceptErrors())
}
func (d *Server) BodyMemory() int64 {
	if d.srv == nil {
		return 0
	}
	return int64(d.srv.BodyMemory())
}
func (d *Server) InFlight() int {
	if d.srv == nil {
		return 0
	}
	return d.inflight()
}

var _ metrics.RulesDaemon = (*Server)(nil)

// RuleCacheStats implements metrics.RulesDaemon: the automata budget of
// the compiled SpamAssassin rules in force.
func (d *Server) RuleCacheStats() (sa.CacheStats, bool) {
	if s := d.svcNow.Load(); s != nil && s.Rules != nil {
		return s.Rules.CacheStats()
	}
	return sa.CacheStats{}, false
}

// StoreQueue implements metrics.Queues.
func (d *Server) StoreQueue() (store.BehindStats, bool) {
	if s := d.svcNow.Load(); s != nil {
		if b, ok := s.Store.(*store.Behind); ok {
			return b.Stats(), true
		}
	}
	return store.BehindStats{}, false
}

// ScanQueues implements metrics.Queues.
func (d *Server) ScanQueues() map[string]virus.LimitStats {
	out := map[string]virus.LimitStats{}
	if s := d.svcNow.Load(); s != nil {
		for _, sc := range s.Scanners {
			if l, ok := sc.(*virus.Limited); ok {
				out[sc.Name()] = l.Stats()
			}
		}
	}
	return out
}

func (d *Server) Reloads() int64        { return d.reloads.Load() }
func (d *Server) ReloadFailures() int64 { return d.failed.Load() }
func (d *Server) Started() time.Time    { return d.started }

// build makes the pipeline of cfg on the services in force, keeping those
// whose section is unchanged, and starts the new services' background
// loops once the pipeline is built. retired are the replaced services, to
// close when the old pipeline drains (Holder.Swap).
func (d *Server) build(cfg *policy.Config) (p *policy.Pipeline, retired []io.Closer, err error) {
	svc, retired, err := wire.BuildServices(cfg, d.svc, wire.Options{Logger: d.logger, Metrics: d.metrics})
	if err != nil {
		return nil, nil, err
	}
	p, err = policy.New(cfg, wire.Modules(svc), d.logger, d.modes, d.metrics)
	if err != nil {
		svc.CloseExcept(d.svc) // the set in force stays as it was
		return nil, nil, err
	}
	svc.Start(context.Background())
	d.svcMu.Lock()
	d.svc = svc
	d.svcMu.Unlock()
	d.quar.Store(svc.Quarantine)
	d.reports.Store(svc.Reports)
	d.svcNow.Store(svc)
	return p, retired, nil
}

// reload builds a new pipeline from the config file and swaps it in. An
// invalid file is refused; the old config stays in force.
func (d *Server) reload() {
	cfg, err := d.load(d.cfgPath)
	if err == nil {
		if keys := RestartKeys(d.cfg(), cfg); len(keys) > 0 {
			// The metrics listener and the control socket are opened once,
			// at start; a reload that silently kept their old values would
			// leave the operator believing the new ones apply.
			err = fmt.Errorf("changed keys that only a restart applies: %s (restart the daemon, or put their running values back)", strings.Join(keys, ", "))
		}
	}
	if err == nil {
		var p *policy.Pipeline
		var retired []io.Closer
		if p, retired, err = d.build(cfg); err == nil {
			old := d.cfg()
			if *ListenOf(old) != *ListenOf(cfg) {
				d.logger.Warn("config reload: [listen] changes need a restart; keeping the old socket")
			}
			d.level.Set(ParseLevel(LogOf(cfg).Level))
			d.holder.Swap(p, retired...)
			d.reloads.Add(1)
			d.logger.Info("config reloaded", "config", configName(d.cfgPath), "mode", string(p.Mode()), "checks", p.Checks())
			return
		}
	}
	d.failed.Add(1)
	if d.ops != nil {
		d.ops.Event("reload-refused")
	}
	var ces policy.ConfigErrors
	if errors.As(err, &ces) {
		for _, e := range ces {
			d.logger.Error("config reload refused", "file", e.File, "line", e.Line, "key", e.Key, "error", e.Msg)
		}
	} else {
		d.logger.Error("config reload refused", "error", err.Error())
	}
	d.logger.Warn("config reload refused: the previous config stays in force")
}

// dropped counts a connection the filter closed itself.
func (d *Server) dropped(why filter.Drop) {
	if o := d.ops; o != nil {
		o.Dropped(string(why))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func configName(p string) string {
	if p == "" {
		return "(built-in default)"
	}
	return p
}

// ParseLevel reads a [log] level.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLogger builds the slog logger of the config ([log]).
func NewLogger(cfg *policy.Config, level *slog.LevelVar, stderr io.Writer) (*slog.Logger, func(), error) {
	lc := LogOf(cfg)
	level.Set(ParseLevel(lc.Level))
	w, closeFn := stderr, func() {}
	if lc.File != "" {
		f, err := os.OpenFile(lc.File, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}
	var h slog.Handler
	if lc.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), closeFn, nil
}

// redactAttr masks secrets (a Redis password in a URL, SRS secrets) in
// every string and error a log line carries, whoever wrote it.
func redactAttr(groups []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); strings.ContainsAny(s, ":=") {
			a.Value = slog.StringValue(policy.Redact(s))
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			a.Value = slog.StringValue(policy.Redact(v.Error()))
		case []string:
			out := make([]string, len(v))
			for i, s := range v {
				out[i] = s
				if strings.ContainsAny(s, ":=") {
					out[i] = policy.Redact(s)
				}
			}
			a.Value = slog.AnyValue(out)
		}
	}
	return a
}

// Run serves cfg until SIGTERM or SIGINT (a graceful stop within
// [listen] grace_period); SIGHUP reloads. It returns the exit code.
func (d *Server) Run(cfg *policy.Config) int {
	logger := d.logger
	// Signals are taken before the socket is open: a SIGHUP that arrives
	// once the MTA (or a test) can connect, but before the loop below
	// runs, is a reload, not the default action (exit).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	stopPipeline, err := d.Start(cfg)
	if err != nil {
		logger.Error("cannot build the pipeline", "error", err)
		return 1
	}
	defer stopPipeline()
	d.warnUntrained(cfg)

	// Nothing of ours is live yet: spool files in temp_dir are a crash's
	// leftovers (files another instance holds locked are kept).
	if removed, err := filter.RemoveSpoolLeftovers(cfg.Message.TempDir); len(removed) > 0 || err != nil {
		logger.Warn("removed spool files left by an earlier run", "files", removed, "error", errString(err))
	}

	lc := ListenOf(cfg)
	mode, _ := ParseFileMode(lc.SocketMode)
	ln, err := filter.Listen(lc.Address, mode, lc.SocketGroup)
	if err != nil {
		logger.Error("cannot listen", "address", lc.Address, "error", err)
		return 1
	}
	d.srv = filter.New(filter.Options{Holder: d.holder, Logger: logger, ReadTimeout: lc.ReadTimeout.D(),
		MaxConns: lc.MaxConnections, OnDrop: d.dropped, Quarantine: d.quarantiner})

	var stops []func()
	// Operations features, started once the daemon can listen; each
	// returns a stop function called at shutdown.
	startControl := func(d *Server) (func(), error) {
		return control.Start(control.ConfigOf(d.cfg()), d, d.logger)
	}
	startMetrics := func(d *Server) (func(), error) {
		return metrics.Serve(d.ops, metrics.ConfigOf(d.cfg()), d.logger)
	}
	for _, h := range []func(d *Server) (stop func(), err error){startControl, startMetrics} {
		stop, err := h(d)
		if err != nil {
			logger.Error("cannot start", "error", err)
			ln.Close()
			for _, s := range stops {
				s()
			}
			return 1
		}
		if stop != nil {
			stops = append(stops, stop)
		}
	}

	served := make(chan error, 1)
	go func() { served <- d.srv.Serve(ln) }()
	logger.Info("mailwarden started", "version", d.version, "address", lc.Address, "mode", string(d.pipeline().Mode()), "config", configName(d.cfgPath), "checks", d.pipeline().Checks(), "setup", d.pipeline().Describe())

	code := 0
loop:
	for {
		select {
		case err := <-served:
			if err != nil {
				logger.Error("milter server stopped", "error", err)
				code = 1
			}
			break loop
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload()
				continue
			}
			grace := ListenOf(d.cfg()).GracePeriod.D()
			logger.Info("shutting down", "signal", sig.String(), "in_flight", d.inflight(), "grace_period", grace.String())
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			if err := d.srv.Shutdown(ctx); err != nil {
				logger.Warn("shutdown", "error", err)
			}
			cancel()
			<-served
			break loop
		}
	}
	for _, s := range stops {
		s()
	}
	logger.Info("mailwarden stopped")
	return code
}

// quarantiner is our quarantine in force for the filter (nil when off).
func (d *Server) quarantiner() filter.Quarantiner {
	if q := d.quar.Load(); q != nil {
		return q
	}
	return nil
}

// Quarantine implements control.QuarantineDaemon: `mailwarden
// quarantine` runs here, where the index is open.
func (d *Server) Quarantine(req quarcli.Request, uid int) (*quarcli.Response, error) {
	q := d.quar.Load()
	if q == nil {
		return nil, errors.New("quarantine: not enabled ([quarantine] enabled = false)")
	}
	if req.By == "" {
		req.By = "uid " + strconv.Itoa(uid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return quarcli.Handle(ctx, q.Q, req)
}

// QuarantineStats implements metrics.QuarantineDaemon.
func (d *Server) QuarantineStats() (quarantine.Stats, bool) {
	q := d.quar.Load()
	if q == nil {
		return quarantine.Stats{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := q.Q.Stats(ctx)
	return st, err == nil
}

// Status implements control.Daemon.
func (d *Server) Status() *control.Status {
	p := d.pipeline()
	s := &control.Status{
		Version: d.version, PID: os.Getpid(), Mode: p.Mode(), ConfiguredMode: p.Config().Mode,
		Started: d.started.UTC().Truncate(time.Second), UptimeSeconds: time.Since(d.started).Round(time.Second).Seconds(),
		Config: configName(d.cfgPath), Checks: p.Checks(), Setup: p.Describe(), Reloads: d.reloads.Load(), ReloadFailures: d.failed.Load(),
		Listen: ListenOf(p.Config()).Address,
	}
	_, s.Override = d.modes.Get()
	s.Goroutines = runtime.NumGoroutine()
	if d.srv != nil {
		s.InFlight = d.inflight()
		s.Connections = d.srv.Conns()
		s.BodyMemory = d.srv.BodyMemory()
	}
	if o := d.ops; o != nil {
		s.Health, s.Spool = o.Snapshot()
	}
	if q := d.quar.Load(); q != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if st, err := q.Q.Stats(ctx); err == nil {
			s.Quarantine = q.Settings.Mode.String() + " mode: " + quarcli.Summary(st, time.Now())
		} else {
			s.Quarantine = "unavailable: " + err.Error()
		}
		cancel()
	}
	return s
}

// SetMode implements control.Daemon: the run-time mode override. It takes
// effect for the next message and outlives config reloads; it is lost on
// restart.
func (d *Server) SetMode(mode string, uid int) error {
	old := d.pipeline().Mode()
	if mode == "config" {
		d.modes.Clear()
	} else {
		m, err := policy.ParseMode(mode)
		if err != nil {
			return err
		}
		d.modes.Set(m)
	}
	cur := d.pipeline().Mode()
	d.logger.Warn("mode changed", "from", string(old), "to", string(cur), "override", mode != "config", "uid", uid)
	if o := d.ops; o != nil {
		o.ModeChanged()
	}
	return nil
}

// RestartKeys lists the keys whose change a reload cannot apply: the
// [metrics] listener and the [control] socket are opened at start.
func RestartKeys(old, cfg *policy.Config) []string {
	var keys []string
	om, nm := metrics.ConfigOf(old), metrics.ConfigOf(cfg)
	if om.Address != nm.Address {
		keys = append(keys, "metrics.address")
	}
	if om.Path != nm.Path {
		keys = append(keys, "metrics.path")
	}
	oc, nc := control.ConfigOf(old), control.ConfigOf(cfg)
	if oc.Socket != nc.Socket {
		keys = append(keys, "control.socket")
	}
	if strings.Join(oc.LearnUsers, ",") != strings.Join(nc.LearnUsers, ",") {
		keys = append(keys, "control.learn_users")
	}
	return keys
}
