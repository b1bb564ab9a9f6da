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

	"github.com/mailwarden/mailwarden/filter"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/store"
)

func init() {
	addCommand("serve", "run the milter daemon", runServe)
}

// daemon is the running server; operations code (control socket, metrics,
// health) reaches it through serveHooks.
type daemon struct {
	cfgPath string
	holder  *policy.Holder
	modes   *policy.ModeSwitch
	started time.Time
	logger  *slog.Logger
	level   *slog.LevelVar
	srv     *filter.Server
	metrics policy.Metrics
	reloads atomic.Int64 // successful reloads
	failed  atomic.Int64 // refused reloads
}

// serveHooks run after the daemon is listening; each returns a stop
// function called at shutdown. Operations features register here.
var serveHooks []func(d *daemon) (stop func(), err error)

// metricsHook, when set, provides the metrics seam before the first
// pipeline is built.
var metricsHook func(d *daemon) policy.Metrics

func (d *daemon) cfg() *policy.Config        { return d.holder.Current().Config() }
func (d *daemon) pipeline() *policy.Pipeline { return d.holder.Current() }
func (d *daemon) inflight() int              { return d.srv.InFlight() }
func (d *daemon) build(cfg *policy.Config) (*policy.Pipeline, error) {
	return policy.New(cfg, modules(), d.logger, d.modes, d.metrics)
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
	// Every library logs through our handler: go-redis and go-milter have
	// their own hooks; the log package (any other library) follows
	// slog.SetDefault. A plain-text line in a JSON log is one `report`
	// skips.
	slog.SetDefault(logger)
	filter.SetMilterLogger(logger)
	store.SetRedisLogger(logger)

	d := &daemon{cfgPath: *cfgPath, modes: &policy.ModeSwitch{}, started: time.Now(), logger: logger, level: level}
	if metricsHook != nil {
		d.metrics = metricsHook(d)
	}
	p, err := d.build(cfg)
	if err != nil {
		logger.Error("cannot build the pipeline", "error", err)
		return 1
	}
	d.holder = policy.NewHolder(p)
	defer d.holder.Close()

	// Nothing of ours is live yet: spool files in temp_dir are a crash's
	// leftovers (files another instance holds locked are kept).
	if removed, err := filter.RemoveSpoolLeftovers(cfg.Message.TempDir); len(removed) > 0 || err != nil {
		logger.Warn("removed spool files left by an earlier run", "files", removed, "error", errString(err))
	}

	mode, _ := policy.ParseFileMode(cfg.Listen.SocketMode)
	ln, err := filter.Listen(cfg.Listen.Address, mode, cfg.Listen.SocketGroup)
	if err != nil {
		logger.Error("cannot listen", "address", cfg.Listen.Address, "error", err)
		return 1
	}
	d.srv = filter.New(filter.Options{Holder: d.holder, Logger: logger, ReadTimeout: cfg.Listen.ReadTimeout.D(),
		MaxConns: cfg.Listen.MaxConnections, OnDrop: d.dropped})

	var stops []func()
	for _, h := range serveHooks {
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
	logger.Info("mailwarden started", "version", versionString(), "address", cfg.Listen.Address, "mode", string(d.pipeline().Mode()), "config", configName(*cfgPath), "checks", d.pipeline().Checks())

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
			grace := d.cfg().Listen.GracePeriod.D()
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
func (d *daemon) reload() {
	cfg, err := loadServeConfig(d.cfgPath)
	if err == nil {
		var p *policy.Pipeline
		if p, err = d.build(cfg); err == nil {
			old := d.cfg()
			if old.Listen != cfg.Listen {
				d.logger.Warn("config reload: [listen] changes need a restart; keeping the old socket")
			}
			d.level.Set(parseLevel(cfg.Log.Level))
			d.holder.Swap(p)
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
func (d *daemon) dropped(why filter.Drop) {
	if o := opsFor(d); o != nil {
		o.drops.WithLabelValues(string(why)).Inc()
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
	level.Set(parseLevel(cfg.Log.Level))
	w, closeFn := stderr, func() {}
	if cfg.Log.File != "" {
		f, err := os.OpenFile(cfg.Log.File, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}
	var h slog.Handler
	if cfg.Log.Format == "text" {
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
