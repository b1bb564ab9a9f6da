package metrics

import (
	"encoding/json"
	"errors"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/dmarc"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/health"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/policy/spam/sa"
	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/virus"
)

type fakeDaemon struct{}

func (fakeDaemon) Mode() policy.Mode     { return policy.ModeEnforce }
func (fakeDaemon) Conns() int            { return 0 }
func (fakeDaemon) AcceptErrors() int64   { return 0 }
func (fakeDaemon) BodyMemory() int64     { return 0 }
func (fakeDaemon) InFlight() int         { return 0 }
func (fakeDaemon) Reloads() int64        { return 0 }
func (fakeDaemon) ReloadFailures() int64 { return 0 }
func (fakeDaemon) Started() time.Time    { return time.Unix(1_795_000_000, 0) }
func (fakeDaemon) DMARCReports() (dmarc.Stats, bool) {
	return dmarc.Stats{Recorded: 7, Capped: 2, Sent: 1}, true
}

func TestDashboardMetricsExist(t *testing.T) {
	o := New(fakeDaemon{})
	// Touch every vector so that it is exported.
	o.CheckDone("spf", policy.StatusError, time.Millisecond)
	o.CheckDone("limit", "limited", time.Millisecond)
	o.MessageDone(&policy.Verdict{Mode: policy.ModeMonitor, Action: policy.ActionAccept, WouldBe: policy.ActionReject, Reasons: []string{"spf-fail"}})
	o.Event("relay-attempt")
	o.SpoolFree("/var/spool/postfix", 1<<30, 1000, false)
	o.HealthResults([]health.Result{{Kind: health.KindSMTP, Target: "relay:25", Up: true}})
	o.ModeChanged()
	o.StepFailed(policy.StageCheck, "virus", policy.FailurePanic)
	o.Dropped("malformed")
	mfs, err := o.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	b, err := os.ReadFile("../../../../examples/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`mailwarden_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range re.FindAllString(tg.Expr, -1) {
				n++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
				if !have[name] && !have[base] {
					t.Errorf("panel %q uses %s, which mailwarden does not export", p.Title, name)
				}
			}
		}
	}
	if n < 15 {
		t.Errorf("dashboard uses only %d metrics", n)
	}
	// Removed neighbours disappear.
	o.HealthResults(nil)
	mfs, _ = o.Registry().Gather()
	for _, mf := range mfs {
		if mf.GetName() == "mailwarden_neighbour_up" && len(mf.GetMetric()) > 0 {
			t.Error("stale neighbour kept")
		}
	}
}

// The virus check finds the per-engine seam by type assertion.
var _ virus.EngineMetrics = (*Ops)(nil)

func TestEngineMetrics(t *testing.T) {
	o := New(fakeDaemon{})
	o.EngineDone("icap:second", "infected", 20*time.Millisecond)
	o.EngineDone("clamd:local", "clean", time.Millisecond)
	mfs, err := o.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() == "mailwarden_virus_engine_scans_total" || mf.GetName() == "mailwarden_virus_engine_duration_seconds" {
			got[mf.GetName()] = len(mf.GetMetric())
		}
	}
	if got["mailwarden_virus_engine_scans_total"] != 2 || got["mailwarden_virus_engine_duration_seconds"] != 2 {
		t.Errorf("per-engine series: %v", got)
	}
}

func TestDMARCReportMetrics(t *testing.T) {
	o := New(fakeDaemon{})
	mfs, err := o.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "mailwarden_dmarc_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if got["mailwarden_dmarc_report_rows_total/recorded"] != 7 || got["mailwarden_dmarc_report_rows_total/capped"] != 2 ||
		got["mailwarden_dmarc_reports_total/sent"] != 1 || len(got) != 13 {
		t.Errorf("dmarc metrics %v", got)
	}
}

var _ auth.KeyMetrics = (*Ops)(nil)
var _ auth.SealMetrics = (*Ops)(nil)

// TestDKIMKeyMetrics: one state per key is 1, the others 0; signatures
// count per key; ARC sets count per step and status.
func TestDKIMKeyMetrics(t *testing.T) {
	o := New(fakeDaemon{})
	o.DKIMKeyState("k1", sign.RecordOK)
	o.DKIMKeyState("k1", sign.RecordMissing)
	o.DKIMSigned("k1")
	o.DKIMSigned("k1")
	o.ARCSealed("arc_list_seal", nil)
	o.ARCSealed("arc_list_seal", errors.New("arc: chain already failed"))
	o.ARCSealed("arc_seal", nil)
	mfs, err := o.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetValue()
			}
			if m.GetGauge() != nil {
				got[name] = m.GetGauge().GetValue()
			}
			if m.GetCounter() != nil {
				got[name] = m.GetCounter().GetValue()
			}
		}
	}
	if got["mailwarden_dkim_key_record,k1,missing"] != 1 || got["mailwarden_dkim_key_record,k1,ok"] != 0 || got["mailwarden_dkim_signatures_total,k1"] != 2 {
		t.Errorf("metrics %v", got)
	}
	if got["mailwarden_arc_seal_total,sealed,arc_list_seal"] != 1 || got["mailwarden_arc_seal_total,error,arc_list_seal"] != 1 || got["mailwarden_arc_seal_total,sealed,arc_seal"] != 1 {
		t.Errorf("ARC seal metrics %v", got)
	}
}

type queueDaemon struct{ fakeDaemon }

func (queueDaemon) StoreQueue() (store.BehindStats, bool) {
	return store.BehindStats{Queued: 7, Committed: 5, Dropped: 1, Pending: 1}, true
}
func (queueDaemon) ScanQueues() map[string]virus.LimitStats {
	return map[string]virus.LimitStats{"clamav:clamd": {Max: 8, Active: 2, Waiting: 3, Scans: 40, QueueTimeouts: 4, Waited: 1500 * time.Millisecond}}
}

func TestQueueMetrics(t *testing.T) {
	o := New(queueDaemon{})
	for name, want := range map[string]float64{
		"mailwarden_store_writes_dropped_total":     1,
		"mailwarden_store_writes_pending":           1,
		"mailwarden_virus_scans_waiting":            3,
		"mailwarden_virus_queue_timeouts_total":     4,
		"mailwarden_virus_queue_wait_seconds_total": 1.5,
	} {
		if got := gather(t, o, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func gather(t *testing.T, o *Ops, name string) float64 {
	t.Helper()
	mfs, err := o.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s not exported", name)
	return 0
}

func TestPProfOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		c := &Config{Address: "127.0.0.1:0", Path: "/metrics", PProf: on}
		o := New(fakeDaemon{})
		stop, addr, err := serve(o, c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: 404, true: 200}[on]; resp.StatusCode != want {
			t.Errorf("pprof = %v: /debug/pprof/cmdline answered %d, want %d", on, resp.StatusCode, want)
		}
		stop()
	}
}

type rulesDaemon struct {
	fakeDaemon
	st sa.CacheStats
}

func (d rulesDaemon) RuleCacheStats() (sa.CacheStats, bool) { return d.st, true }

// The SpamAssassin automata budget is exported from the rules in force.
func TestRuleCacheMetrics(t *testing.T) {
	o := New(rulesDaemon{st: sa.CacheStats{Limit: 32 << 20, Bytes: 5 << 20, Resets: 3, Flushes: 900}})
	mfs, err := o.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if g := m.GetGauge(); g != nil {
				got[mf.GetName()] = g.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				got[mf.GetName()] = c.GetValue()
			}
		}
	}
	want := map[string]float64{"mailwarden_sa_cache_bytes": 5 << 20, "mailwarden_sa_cache_limit_bytes": 32 << 20,
		"mailwarden_sa_cache_resets_total": 3, "mailwarden_sa_cache_flushes_total": 900}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// A daemon without rules exports none of them.
	mfs, _ = New(fakeDaemon{}).Registry().Gather()
	for _, mf := range mfs {
		if _, ok := want[mf.GetName()]; ok {
			t.Errorf("%s exported without rules", mf.GetName())
		}
	}
}
