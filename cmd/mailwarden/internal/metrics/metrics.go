// Package metrics is the daemon's implementation of the policy.Metrics seam
// (and the optional seams relay.Events, spool.Gauges, health.Reporter,
// policy.RcptMetrics, policy.FailureMetrics) on Prometheus, the
// [metrics] section and its /metrics endpoint. It keeps what `mailwarden
// status` shows of health and spool. Only the binary imports it, so the
// policy packages never depend on the metrics library.
package metrics

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

	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/dmarc"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/health"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/policy/quarantine"
	"github.com/mailwarden/mailwarden/policy/spam/sa"
	"github.com/mailwarden/mailwarden/policy/spool"
)

// Config is the [metrics] section.
type Config struct {
	// Address of the Prometheus /metrics endpoint, host:port; "" is off.
	Address string `toml:"address"`
	// Path of the endpoint.
	Path string `toml:"path"`
	// PProf serves Go's profiler (net/http/pprof) under /debug/pprof/ on
	// the same listener; off by default (it exposes internals and costs
	// CPU while a profile runs).
	PProf bool `toml:"pprof"`
}

// Validate checks the section.
func (c *Config) Validate() error {
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

// SectionName is the [metrics] section.
const SectionName = "metrics"

// Section is the [metrics] section (no step).
func Section() policy.Module {
	return policy.Module{Name: SectionName, Default: func() any { return &Config{Path: "/metrics"} }}
}

// ConfigOf returns the [metrics] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, SectionName); c != nil {
		return c
	}
	return &Config{Path: "/metrics"}
}

// Daemon is what the metrics read of the running daemon (gauges computed
// at scrape time).
type Daemon interface {
	Mode() policy.Mode // the effective mode; "" before the first pipeline
	Conns() int
	AcceptErrors() int64
	BodyMemory() int64
	InFlight() int
	Reloads() int64
	ReloadFailures() int64
	Started() time.Time
	// DMARCReports returns the DMARC report counters; ok is false when
	// reporting is off.
	DMARCReports() (s dmarc.Stats, ok bool)
}

// QuarantineDaemon is a Daemon with our own quarantine; ok is false when
// it is off or its index cannot answer.
type QuarantineDaemon interface {
	QuarantineStats() (st quarantine.Stats, ok bool)
}

// RulesDaemon is a Daemon that runs SpamAssassin rules ([spam.rules]);
// ok is false while no rules are compiled.
type RulesDaemon interface {
	RuleCacheStats() (st sa.CacheStats, ok bool)
}

// Quarantined implements quarantine.Observer.
func (o *Ops) Quarantined(c quarantine.Category, m quarantine.Mode) {
	o.quarItems.WithLabelValues(c.String(), m.String()).Inc()
}

// Acted implements quarantine.Observer.
func (o *Ops) Acted(a quarantine.Action, r quarantine.Role, c quarantine.Category) {
	cat := ""
	if c != 0 {
		cat = c.String()
	}
	o.quarActions.WithLabelValues(a.String(), r.String(), cat).Inc()
}

// DigestSent implements quarantine.Observer.
func (o *Ops) DigestSent() { o.quarDigests.Inc() }

// LeftToMTA implements quarantine.Observer.
func (o *Ops) LeftToMTA(c quarantine.Category, why string) {
	o.quarLeft.WithLabelValues(c.String(), why).Inc()
}

// Ops is the daemon's operations state: it implements policy.Metrics and
// the optional seams of our packages (relay.Events, spool.Gauges,
// health.Reporter), keeps what `mailwarden status` shows, and owns the
// Prometheus registry.
type Ops struct {
	d   Daemon
	reg *prometheus.Registry

	messages    *prometheus.CounterVec
	reasons     *prometheus.CounterVec
	rcpts       *prometheus.CounterVec
	msgDuration prometheus.Histogram
	checks      *prometheus.CounterVec
	checkDur    *prometheus.HistogramVec
	backendErrs *prometheus.CounterVec
	engines     *prometheus.CounterVec
	engineDur   *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	events      *prometheus.CounterVec
	spoolBytes  *prometheus.GaugeVec
	spoolInodes *prometheus.GaugeVec
	spoolLow    *prometheus.GaugeVec
	healthUp    *prometheus.GaugeVec
	healthLat   *prometheus.GaugeVec
	modeChanges prometheus.Counter
	drops       *prometheus.CounterVec
	dkimKey     *prometheus.GaugeVec
	dkimSigned  *prometheus.CounterVec
	arcSealed   *prometheus.CounterVec
	// stepFailures counts panics and deadline overruns of any step.
	stepFailures *prometheus.CounterVec
	// Our own quarantine (quarantine.Observer).
	quarItems   *prometheus.CounterVec
	quarActions *prometheus.CounterVec
	quarDigests prometheus.Counter
	quarLeft    *prometheus.CounterVec

	mu     sync.Mutex
	health []health.Result
	spool  map[string]spool.DirState
}

// checkBuckets cover a fast local check (100 µs) to a slow DNS or clamd
// answer (30 s, the default step timeout).
var checkBuckets = []float64{.0001, .0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New makes the metrics of d.
func New(d Daemon) *Ops {
	o := &Ops{d: d, reg: prometheus.NewRegistry(), spool: map[string]spool.DirState{}}
	f := func(c prometheus.Collector) { o.reg.MustRegister(c) }
	o.messages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_messages_total", Help: "Messages decided, by the action told to the MTA and the action enforce mode would take."}, []string{"action", "would_be", "mode"})
	o.reasons = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_message_reasons_total", Help: "Reason codes of decided messages."}, []string{"reason"})
	o.rcpts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_rcpt_refused_total", Help: "Recipients refused at RCPT time, by action and reason code."}, []string{"action", "reason"})
	o.msgDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mailwarden_message_duration_seconds", Help: "Time to decide one message.", Buckets: checkBuckets})
	o.dkimKey = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailwarden_dkim_key_record", Help: "1 for the state of each DKIM signing key's DNS record (ok, missing, mismatch, temperror); a key signs only while ok."}, []string{"key", "state"})
	o.dkimSigned = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_dkim_signatures_total", Help: "DKIM signatures made, by key."}, []string{"key"})
	o.arcSealed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_arc_seal_total", Help: "ARC sets added, by step (arc_seal: forwards, arc_list_seal: list re-injections) and status (sealed, error: delivered unsealed)."}, []string{"step", "status"})
	f(o.dkimKey)
	f(o.dkimSigned)
	f(o.arcSealed)
	o.checks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_check_status_total", Help: "Check outcomes by check and status."}, []string{"check", "status"})
	o.checkDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailwarden_check_duration_seconds", Help: "Check latency.", Buckets: checkBuckets}, []string{"check"})
	o.backendErrs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_backend_errors_total", Help: "Checks that could not run (status error: backend down, timeout)."}, []string{"check"})
	o.engines = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_virus_engine_scans_total", Help: "Scans by anti-virus engine ([[virus.engine]] as <type>:<name>) and status (clean, infected, oversize, error)."}, []string{"engine", "status"})
	o.engineDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mailwarden_virus_engine_duration_seconds", Help: "Scan latency by anti-virus engine.", Buckets: checkBuckets}, []string{"engine"})
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
	o.stepFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_step_failures_total", Help: "Steps that panicked or overran their deadline, by stage (check, rcpt, observe), check and cause (panic, deadline)."}, []string{"stage", "check", "cause"})
	f(o.stepFailures)
	o.quarItems = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_quarantined_total", Help: "Messages kept by our own quarantine, by category and mode."}, []string{"category", "mode"})
	o.quarActions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_quarantine_actions_total", Help: "Actions on quarantined mail (release, delete, expire, view, login...) by role and category."}, []string{"action", "role", "category"})
	o.quarDigests = prometheus.NewCounter(prometheus.CounterOpts{Name: "mailwarden_quarantine_digests_total", Help: "Quarantine digests sent."})
	f(o.quarItems)
	f(o.quarActions)
	f(o.quarDigests)
	o.quarLeft = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailwarden_quarantine_left_to_mta_total", Help: "Messages to quarantine that the store did not keep and left to the MTA's hold queue, by category and why (too-big: over max_store_size or not kept whole; store-failed: on_error = accept)."}, []string{"category", "why"})
	f(o.quarLeft)
	if qd, ok := d.(QuarantineDaemon); ok {
		stat := func(pick func(quarantine.Stats) float64) func() float64 {
			return func() float64 {
				st, ok := qd.QuarantineStats()
				if !ok {
					return 0
				}
				return pick(st)
			}
		}
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_quarantine_items", Help: "Quarantined messages with a copy still held."}, stat(func(s quarantine.Stats) float64 { return float64(s.Items) })))
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_quarantine_bytes", Help: "Bytes the quarantine keeps on disk (compressed)."}, stat(func(s quarantine.Stats) float64 { return float64(s.Bytes) })))
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_quarantine_oldest_seconds", Help: "Age of the oldest held quarantined message."}, stat(func(s quarantine.Stats) float64 {
			if s.Oldest.IsZero() {
				return 0
			}
			return time.Since(s.Oldest).Seconds()
		})))
	}
	if rd, ok := d.(RulesDaemon); ok {
		stat := func(pick func(sa.CacheStats) int64) func() float64 {
			return func() float64 {
				st, _ := rd.RuleCacheStats()
				return float64(pick(st))
			}
		}
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_sa_cache_bytes", Help: "Bytes the SpamAssassin rules' automata hold (an estimate; bounded by [spam.rules] cache_mb)."}, stat(func(s sa.CacheStats) int64 { return s.Bytes })))
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_sa_cache_limit_bytes", Help: "The bound on the SpamAssassin rules' automata ([spam.rules] cache_mb)."}, stat(func(s sa.CacheStats) int64 { return s.Limit })))
		f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwarden_sa_cache_resets_total", Help: "Times the SpamAssassin rules' automata reached cache_mb and were all dropped (to be rebuilt as mail needs them); reset when the rules are compiled again."}, stat(func(s sa.CacheStats) int64 { return s.Resets })))
		f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwarden_sa_cache_flushes_total", Help: "Automaton tables those resets dropped."}, stat(func(s sa.CacheStats) int64 { return s.Flushes })))
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_milter_connections", Help: "Open MTA connections."}, func() float64 { return float64(d.Conns()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwarden_milter_accept_errors_total", Help: "Temporary accept errors on the milter socket (e.g. out of file descriptors); each one backed off and retried."}, func() float64 { return float64(d.AcceptErrors()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_body_memory_bytes", Help: "Message body bytes held in memory by messages in flight (bounded by message.memory_budget)."}, func() float64 { return float64(d.BodyMemory()) }))
	for _, c := range []prometheus.Collector{o.messages, o.reasons, o.rcpts, o.msgDuration, o.checks, o.checkDur, o.backendErrs, o.engines, o.engineDur, o.rateLimited, o.events,
		o.spoolBytes, o.spoolInodes, o.spoolLow, o.healthUp, o.healthLat, o.modeChanges} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_inflight_sessions", Help: "Messages being processed now."}, func() float64 { return float64(d.InFlight()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwarden_config_reloads_total", Help: "Successful config reloads (SIGHUP)."}, func() float64 { return float64(d.Reloads()) }))
	f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "mailwarden_config_reload_failures_total", Help: "Refused config reloads (the old config stayed in force)."}, func() float64 { return float64(d.ReloadFailures()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailwarden_start_time_seconds", Help: "Start time of the daemon, Unix seconds."}, func() float64 { return float64(d.Started().UnixNano()) / 1e9 }))
	f(newModeCollector(d))
	f(newDMARCCollector(d))
	if q, ok := d.(Queues); ok {
		f(newQueueCollector(q))
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return o
}

// modeCollector exports mailwarden_mode{mode=...} = 1 for the mode in force.
type modeCollector struct {
	d    Daemon
	desc *prometheus.Desc
}

func newModeCollector(d Daemon) *modeCollector {
	return &modeCollector{d: d, desc: prometheus.NewDesc("mailwarden_mode", "1 for the mode in force (enforce, monitor, tempfail-all, accept-all).", []string{"mode"}, nil)}
}

func (c *modeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *modeCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.d.Mode()
	for _, m := range []policy.Mode{policy.ModeEnforce, policy.ModeMonitor, policy.ModeTempfailAll, policy.ModeAcceptAll} {
		v := 0.0
		if m == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, string(m))
	}
}

// dmarcCollector exports the DMARC aggregate-report counters (reset when a
// reload rebuilds the service).
type dmarcCollector struct {
	d          Daemon
	rows, reps *prometheus.Desc
}

func newDMARCCollector(d Daemon) *dmarcCollector {
	return &dmarcCollector{d: d,
		rows: prometheus.NewDesc("mailwarden_dmarc_report_rows_total", "Messages seen by DMARC aggregate reporting, by outcome: recorded, skipped (no rua, loop guard, exclusions), capped (beyond max_rows: counted, not itemised), store_error, dropped (queue full).", []string{"outcome"}, nil),
		reps: prometheus.NewDesc("mailwarden_dmarc_reports_total", "DMARC aggregate reports, by outcome: built, sent, notice (too large for !size), retry, given_up, unauthorized (RFC 7489 §7.1), unconfirmed (sender died after the final dot), error.", []string{"outcome"}, nil),
	}
}

func (c *dmarcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.rows; ch <- c.reps }
func (c *dmarcCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.d.DMARCReports()
	if !ok {
		return
	}
	for k, v := range map[string]int64{"recorded": s.Recorded, "skipped": s.Skipped, "capped": s.Capped, "store_error": s.StoreErrors, "dropped": s.Dropped} {
		ch <- prometheus.MustNewConstMetric(c.rows, prometheus.CounterValue, float64(v), k)
	}
	for k, v := range map[string]int64{"built": s.Built, "sent": s.Sent, "notice": s.Notices, "retry": s.Retries, "given_up": s.GivenUp,
		"unauthorized": s.Unauthorized, "unconfirmed": s.Unconfirmed, "error": s.SendErrors} {
		ch <- prometheus.MustNewConstMetric(c.reps, prometheus.CounterValue, float64(v), k)
	}
}

// CheckDone implements policy.Metrics.
func (o *Ops) CheckDone(check string, status policy.Status, d time.Duration) {
	o.checks.WithLabelValues(check, string(status)).Inc()
	o.checkDur.WithLabelValues(check).Observe(d.Seconds())
	switch status {
	case policy.StatusError:
		o.backendErrs.WithLabelValues(check).Inc()
	case "limited":
		o.rateLimited.WithLabelValues(check).Inc()
	}
}

// EngineDone implements virus.EngineMetrics.
func (o *Ops) EngineDone(engine string, status policy.Status, d time.Duration) {
	o.engines.WithLabelValues(engine, string(status)).Inc()
	o.engineDur.WithLabelValues(engine).Observe(d.Seconds())
}

// MessageDone implements policy.Metrics.
func (o *Ops) MessageDone(v *policy.Verdict) {
	o.messages.WithLabelValues(v.Action.String(), v.WouldBe.String(), string(v.Mode)).Inc()
	for _, r := range v.Reasons {
		o.reasons.WithLabelValues(r).Inc()
	}
	o.msgDuration.Observe(v.Duration.Seconds())
}

// RcptDone implements policy.RcptMetrics.
func (o *Ops) RcptDone(action policy.Action, reasons []string) {
	for _, r := range reasons {
		o.rcpts.WithLabelValues(action.String(), r).Inc()
	}
}

// Event implements relay.Events.
func (o *Ops) Event(name string) { o.events.WithLabelValues(name).Inc() }

// DKIMKeyState implements auth.KeyMetrics.
func (o *Ops) DKIMKeyState(key string, state sign.RecordState) {
	for _, st := range []sign.RecordState{sign.RecordOK, sign.RecordMissing, sign.RecordMismatch, sign.RecordTempError} {
		v := 0.0
		if st == state {
			v = 1
		}
		o.dkimKey.WithLabelValues(key, string(st)).Set(v)
	}
}

// DKIMSigned implements auth.KeyMetrics.
func (o *Ops) DKIMSigned(key string) { o.dkimSigned.WithLabelValues(key).Inc() }

// ARCSealed implements auth.SealMetrics.
func (o *Ops) ARCSealed(step string, err error) {
	status := "sealed"
	if err != nil {
		status = "error"
	}
	o.arcSealed.WithLabelValues(step, status).Inc()
}

// SpoolFree implements spool.Gauges.
func (o *Ops) SpoolFree(dir string, bytes, inodes uint64, low bool) {
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
func (o *Ops) HealthResults(rs []health.Result) {
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

// Snapshot is the last health round and spool measurements, for status.
func (o *Ops) Snapshot() ([]health.Result, []spool.DirState) {
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

// ModeChanged counts a mode switch through the control socket.
func (o *Ops) ModeChanged() {
	o.modeChanges.Inc()
	o.Event("mode-change")
}

// Dropped counts an MTA connection the filter closed itself.
func (o *Ops) Dropped(reason string) { o.drops.WithLabelValues(reason).Inc() }

// StepFailed implements policy.FailureMetrics: a step that panicked or
// overran its deadline.
func (o *Ops) StepFailed(stage policy.Stage, check string, cause policy.Failure) {
	o.stepFailures.WithLabelValues(string(stage), check, string(cause)).Inc()
}

// Registry is the Prometheus registry (tests, the endpoint).
func (o *Ops) Registry() *prometheus.Registry { return o.reg }

// Serve serves /metrics when c.Address is set; the returned function stops
// it. The address is read at start; a reload that changes it needs a
// restart.
func Serve(o *Ops, c *Config, logger *slog.Logger) (func(), error) {
	stop, _, err := serve(o, c, logger)
	return stop, err
}

// serve is Serve, also returning the address listened on.
func serve(o *Ops, c *Config, logger *slog.Logger) (func(), string, error) {
	if o == nil || c == nil || c.Address == "" {
		return nil, "", nil
	}
	ln, err := net.Listen("tcp", c.Address)
	if err != nil {
		return nil, "", fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(c.Path, promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}))
	// Bounded like every listener of ours: a client that connects and
	// stays silent, or reads slowly, cannot hold a descriptor for long.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
	if c.PProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// A CPU profile or trace writes after ?seconds= (30 by default):
		// the write deadline must outlast it.
		srv.WriteTimeout = 2 * time.Minute
		logger.Warn("metrics: pprof endpoint on", "address", ln.Addr().String(), "path", "/debug/pprof/")
	}
	go srv.Serve(ln)
	logger.Info("metrics listening", "address", ln.Addr().String(), "path", c.Path)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, ln.Addr().String(), nil
}
