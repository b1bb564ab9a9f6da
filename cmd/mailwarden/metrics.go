package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/health"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/spool"
)

// MetricsConfig is the [metrics] section.
type MetricsConfig struct {
	// Address of the Prometheus /metrics endpoint, host:port; "" is off.
	Address string `toml:"address"`
	// Path of the endpoint.
	Path string `toml:"path"`
}

// Validate checks the section.
func (c *MetricsConfig) Validate() error {
	var errs []error
	if c.Address != "" {
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			errs = append(errs, policy.KeyErr("address", "%q is not host:port", c.Address))
		}
	}
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, policy.KeyErr("path", "must start with /"))
	}
	return errors.Join(errs...)
}

func metricsModule() policy.Module {
	return policy.Module{
		Name:    "metrics",
		Default: func() any { return &MetricsConfig{Path: "/metrics"} },
	}
}

// ops is the daemon's operations state: it implements policy.Metrics and
// the optional seams of our packages (relay.Events, spool.Gauges,
// health.Reporter), keeps what `mailwarden status` shows, and owns the
// Prometheus registry.
type ops struct {
	d   *server
	reg *prometheus.Registry

	messages    *prometheus.CounterVec
	reasons     *prometheus.CounterVec
	rcpts       *prometheus.CounterVec
	msgDuration prometheus.Histogram
	checks      *prometheus.CounterVec
	checkDur    *prometheus.HistogramVec
	backendErrs *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	events      *prometheus.CounterVec
	spoolBytes  *prometheus.GaugeVec
	spoolInodes *prometheus.GaugeVec
	spoolLow    *prometheus.GaugeVec
	healthUp    *prometheus.GaugeVec
	healthLat   *prometheus.GaugeVec
	modeChanges prometheus.Counter
	drops       *prometheus.CounterVec

	mu     sync.Mutex
	health []health.Result
	spool  map[string]spool.DirState
}

// checkBuckets cover a fast local check (100 µs) to a slow DNS or clamd
// answer (30 s, the default step timeout).
var checkBuckets = []float64{.0001, .0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newOps(d *server) *ops {
	o := &ops{d: d, reg: prometheus.NewRegistry(), spool: map[string]spool.DirState{}}
	f := func(c prometheus.Collector) { o.reg.MustRegister(c) }
	o.messages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_messages_total", Help: "Messages decided, by the action told to the MTA and the action enforce mode would take."}, []string{"action", "would_be", "mode"})
	o.reasons = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_message_reasons_total", Help: "Reason codes of decided messages."}, []string{"reason"})
	o.rcpts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_rcpt_refused_total", Help: "Recipients refused at RCPT time, by action and reason code."}, []string{"action", "reason"})
	o.msgDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailwarden_message_duration_seconds", Help: "Time to decide one message.", Buckets: checkBuckets})
	o.checks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_check_status_total", Help: "Check outcomes by check and status."}, []string{"check", "status"})
	o.checkDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailwarden_check_duration_seconds", Help: "Check latency.", Buckets: checkBuckets}, []string{"check"})
	o.backendErrs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_backend_errors_total", Help: "Checks that could not run (status error: backend down, timeout)."}, []string{"check"})
	o.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_ratelimit_hits_total", Help: "Checks that reported status limited (rate limits, auto-reply limits)."}, []string{"check"})
	o.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_events_total", Help: "Operations events: relay-attempt, local-only, local-only-inbound, spool-low (deferred recipients and messages), mode-change."}, []string{"event"})
	o.spoolBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailwarden_spool_free_bytes", Help: "Free bytes of a watched spool directory's file system."}, []string{"dir"})
	o.spoolInodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailwarden_spool_free_inodes", Help: "Free inodes of a watched spool directory's file system."}, []string{"dir"})
	o.spoolLow = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailwarden_spool_low", Help: "1 while a watched directory is below min_free (new mail gets 452 4.3.1)."}, []string{"dir"})
	o.healthUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailwarden_neighbour_up", Help: "1 if the neighbour answered its last probe."}, []string{"kind", "target"})
	o.healthLat = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailwarden_neighbour_probe_seconds", Help: "Duration of the neighbour's last probe."}, []string{"kind", "target"})
	o.modeChanges = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailwarden_mode_changes_total", Help: "Mode switches through the control socket."})
	o.drops = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_milter_connections_dropped_total", Help: "MTA connections closed by mailwarden: malformed (a packet that breaks the milter framing), limit (over listen.max_connections), panic (a bug of ours; logged with its stack)."}, []string{"reason"})
	f(o.drops)
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_milter_connections", Help: "Open MTA connections."}, func() float64 {
		if d.srv == nil {
			return 0
		}
		return float64(d.srv.Conns())
	}))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwarden_milter_accept_errors_total", Help: "Temporary accept errors on the milter socket (e.g. out of file descriptors); each one backed off and retried."}, func() float64 {
		if d.srv == nil {
			return 0
		}
		return float64(d.srv.AcceptErrors())
	}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_body_memory_bytes", Help: "Message body bytes held in memory by messages in flight (bounded by message.memory_budget)."}, func() float64 {
		if d.srv == nil {
			return 0
		}
		return float64(d.srv.BodyMemory())
	}))
	for _, c := range []prometheus.Collector{o.messages, o.reasons, o.rcpts, o.msgDuration, o.checks, o.checkDur, o.backendErrs, o.rateLimited, o.events,
		o.spoolBytes, o.spoolInodes, o.spoolLow, o.healthUp, o.healthLat, o.modeChanges} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_inflight_sessions", Help: "Messages being processed now."}, func() float64 {
		if d.srv == nil {
			return 0
		}
		return float64(d.inflight())
	}))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwarden_config_reloads_total", Help: "Successful config reloads (SIGHUP)."}, func() float64 { return float64(d.reloads.Load()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwarden_config_reload_failures_total", Help: "Refused config reloads (the old config stayed in force)."}, func() float64 { return float64(d.failed.Load()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_start_time_seconds", Help: "Start time of the daemon, Unix seconds."}, func() float64 { return float64(d.started.UnixNano()) / 1e9 }))
	f(newModeCollector(d))
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return o
}

// modeCollector exports mailwarden_mode{mode=...} = 1 for the mode in force.
type modeCollector struct {
	d    *server
	desc *prometheus.Desc
}

func newModeCollector(d *server) *modeCollector {
	return &modeCollector{d: d, desc: prometheus.NewDesc("mailwarden_mode", "1 for the mode in force (enforce, monitor, tempfail-all, accept-all).", []string{"mode"}, nil)}
}

func (c *modeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *modeCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.d.mode()
	for _, m := range []policy.Mode{policy.ModeEnforce, policy.ModeMonitor, policy.ModeTempfailAll, policy.ModeAcceptAll} {
		v := 0.0
		if m == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, string(m))
	}
}

// mode is the effective mode (works before the pipeline exists).
func (d *server) mode() policy.Mode {
	if m, ok := d.modes.Get(); ok {
		return m
	}
	if d.holder == nil {
		return ""
	}
	return d.cfg().Mode
}

// CheckDone implements policy.Metrics.
func (o *ops) CheckDone(check string, status policy.Status, d time.Duration) {
	o.checks.WithLabelValues(check, string(status)).Inc()
	o.checkDur.WithLabelValues(check).Observe(d.Seconds())
	switch status {
	case policy.StatusError:
		o.backendErrs.WithLabelValues(check).Inc()
	case "limited":
		o.rateLimited.WithLabelValues(check).Inc()
	}
}

// MessageDone implements policy.Metrics.
func (o *ops) MessageDone(v *policy.Verdict) {
	o.messages.WithLabelValues(v.Action.String(), v.WouldBe.String(), string(v.Mode)).Inc()
	for _, r := range v.Reasons {
		o.reasons.WithLabelValues(r).Inc()
	}
	o.msgDuration.Observe(v.Duration.Seconds())
}

// RcptDone implements policy.RcptMetrics.
func (o *ops) RcptDone(action policy.Action, reasons []string) {
	for _, r := range reasons {
		o.rcpts.WithLabelValues(action.String(), r).Inc()
	}
}

// Event implements relay.Events.
func (o *ops) Event(name string) { o.events.WithLabelValues(name).Inc() }

// SpoolFree implements spool.Gauges.
func (o *ops) SpoolFree(dir string, bytes, inodes uint64, low bool) {
	o.spoolBytes.WithLabelValues(dir).Set(float64(bytes))
	o.spoolInodes.WithLabelValues(dir).Set(float64(inodes))
	l := 0.0
	if low {
		l = 1
	}
	o.spoolLow.WithLabelValues(dir).Set(l)
	o.mu.Lock()
	o.spool[dir] = spool.DirState{Dir: dir, FreeBytes: bytes, FreeInodes: inodes, Low: low}
	o.mu.Unlock()
}

// HealthResults implements health.Reporter: each round replaces the last.
func (o *ops) HealthResults(rs []health.Result) {
	o.mu.Lock()
	old := o.health
	o.health = append([]health.Result(nil), rs...)
	o.mu.Unlock()
	// A target dropped by a reload disappears from the metrics too.
	for _, r := range old {
		o.healthUp.DeleteLabelValues(string(r.Kind), r.Target)
		o.healthLat.DeleteLabelValues(string(r.Kind), r.Target)
	}
	for _, r := range rs {
		up := 0.0
		if r.Up {
			up = 1
		}
		o.healthUp.WithLabelValues(string(r.Kind), r.Target).Set(up)
		o.healthLat.WithLabelValues(string(r.Kind), r.Target).Set(r.Latency.Seconds())
	}
}

func (o *ops) snapshot() ([]health.Result, []spool.DirState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := append([]health.Result(nil), o.health...)
	var s []spool.DirState
	for _, st := range o.spool {
		s = append(s, st)
	}
	sort.Slice(s, func(i, j int) bool { return s[i].Dir < s[j].Dir })
	return h, s
}

// startMetrics serves /metrics when [metrics] address is set. The address
// is read at start; a reload that changes it is logged and needs a restart.
func startMetrics(d *server) (func(), error) {
	o := d.ops
	c, _ := d.cfg().Sections["metrics"].(*MetricsConfig)
	if o == nil || c == nil || c.Address == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", c.Address)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(c.Path, promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelWarn)}))
	// Bounded like every listener of ours: a client that connects and
	// stays silent, or reads slowly, cannot hold a descriptor for long.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
	go srv.Serve(ln)
	d.logger.Info("metrics listening", "address", ln.Addr().String(), "path", c.Path)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
