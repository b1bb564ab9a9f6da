package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/daemon"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/metrics"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/wire"
	"github.com/mailwarden/mailwarden/filter"
	"github.com/mailwarden/mailwarden/policy"
)

// server is the running daemon; the operations code (control socket,
// metrics) is started by runServe explicitly and reaches it through d.
type server struct {
	cfgPath string
	holder  *policy.Holder
	modes   *policy.ModeSwitch
	started time.Time
	logger  *slog.Logger
	level   *slog.LevelVar
	srv     *filter.Server
	metrics policy.Metrics
	ops     *metrics.Ops   // the daemon's metrics and status state
	svc     *wire.Services // the services in force (outlive reloads)
	reloads atomic.Int64   // successful reloads
	failed  atomic.Int64   // refused reloads
}

func (d *server) cfg() *policy.Config        { return d.holder.Current().Config() }
func (d *server) pipeline() *policy.Pipeline { return d.holder.Current() }
func (d *server) inflight() int              { return d.srv.InFlight() }

// The daemon's state as the metrics read it (metrics.Daemon).

// Mode is the effective mode (works before the pipeline exists).
func (d *server) Mode() policy.Mode {
	if m, ok := d.modes.Get(); ok {
		return m
	}
	if d.holder == nil {
		return ""
	}
	return d.cfg().Mode
}
func (d *server) Conns() int {
	if d.srv == nil {
		return 0
	}
	return d.srv.Conns()
}
func (d *server) AcceptErrors() int64 {
	if d.srv == nil {
		return 0
	}
	return int64(d.srv.AcceptErrors())
}
func (d *server) BodyMemory() int64 {
	if d.srv == nil {
		return 0
	}
	return int64(d.srv.BodyMemory())
}
func (d *server) InFlight() int {
	if d.srv == nil {
		return 0
	}
	return d.inflight()
}
func (d *server) Reloads() int64        { return d.reloads.Load() }
func (d *server) ReloadFailures() int64 { return d.failed.Load() }
func (d *server) Started() time.Time    { return d.started }

// build makes the pipeline of cfg on the services in force, keeping those
// whose section is unchanged, and starts the new services' background
// loops once the pipeline is built. retired are the replaced services, to
// close when the old pipeline drains (Holder.Swap).
func (d *server) build(cfg *policy.Config) (p *policy.Pipeline, retired []io.Closer, err error) {
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
	d.svc = svc
	return p, retired, nil
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: the built-in default, see 'mailwarden config default')")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadServeConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	level := &slog.LevelVar{}
	logger, closeLog, err := newLogger(cfg, level, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer closeLog()

	d := &server{cfgPath: *cfgPath, modes: &policy.ModeSwitch{}, started: time.Now(), logger: logger, level: level}
	d.ops = metrics.New(d)
	d.metrics = d.ops
	p, _, err := d.build(cfg)
	if err != nil {
		logger.Error("cannot build the pipeline", "error", err)
		return 1
	}
	d.holder = policy.NewHolder(p)
	defer func() { d.holder.Close(); d.svc.Close() }()

	// Nothing of ours is live yet: spool files in temp_dir are a crash's
	// leftovers (files another instance holds locked are kept).
	if removed, err := filter.RemoveSpoolLeftovers(cfg.Message.TempDir); len(removed) > 0 || err != nil {
		logger.Warn("removed spool files left by an earlier run", "files", removed, "error", errString(err))
	}

	lc := daemon.ListenOf(cfg)
	mode, _ := daemon.ParseFileMode(lc.SocketMode)
	ln, err := filter.Listen(lc.Address, mode, lc.SocketGroup)
	if err != nil {
		logger.Error("cannot listen", "address", lc.Address, "error", err)
		return 1
	}
	d.srv = filter.New(filter.Options{Holder: d.holder, Logger: logger, ReadTimeout: lc.ReadTimeout.D(),
		MaxConns: lc.MaxConnections, OnDrop: d.dropped})

	var stops []func()
	// Operations features, started once the daemon can listen; each
	// returns a stop function called at shutdown.
	startMetrics := func(d *server) (func(), error) {
		return metrics.Serve(d.ops, metrics.ConfigOf(d.cfg()), d.logger)
	}
	for _, h := range []func(d *server) (stop func(), err error){startControl, startMetrics} {
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

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- d.srv.Serve(ln) }()
	logger.Info("mailwarden started", "version", versionString(), "address", lc.Address, "mode", string(d.pipeline().Mode()), "config", configName(*cfgPath), "checks", d.pipeline().Checks())

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
			grace := daemon.ListenOf(d.cfg()).GracePeriod.D()
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

// reload builds a new pipeline from the config file and swaps it in. An
// invalid file is refused; the old config stays in force.
func (d *server) reload() {
	cfg, err := loadServeConfig(d.cfgPath)
	if err == nil {
		var p *policy.Pipeline
		var retired []io.Closer
		if p, retired, err = d.build(cfg); err == nil {
			old := d.cfg()
			if *daemon.ListenOf(old) != *daemon.ListenOf(cfg) {
				d.logger.Warn("config reload: [listen] changes need a restart; keeping the old socket")
			}
			d.level.Set(parseLevel(daemon.LogOf(cfg).Level))
			d.holder.Swap(p, retired...)
			d.reloads.Add(1)
			d.logger.Info("config reloaded", "config", configName(d.cfgPath), "mode", string(p.Mode()), "checks", p.Checks())
			return
		}
	}
	d.failed.Add(1)
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
func (d *server) dropped(why filter.Drop) {
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

func parseLevel(s string) slog.Level {
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

// newLogger builds the slog logger of the config.
func newLogger(cfg *policy.Config, level *slog.LevelVar, stderr io.Writer) (*slog.Logger, func(), error) {
	lc := daemon.LogOf(cfg)
	level.Set(parseLevel(lc.Level))
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
