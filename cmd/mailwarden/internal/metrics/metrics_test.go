package metrics

import (
	"encoding/json"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/dmarc"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/health"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
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

// TestDKIMKeyMetrics: one state per key is 1, the others 0; signatures
// count per key.
func TestDKIMKeyMetrics(t *testing.T) {
	o := New(fakeDaemon{})
	o.DKIMKeyState("k1", sign.RecordOK)
	o.DKIMKeyState("k1", sign.RecordMissing)
	o.DKIMSigned("k1")
	o.DKIMSigned("k1")
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
}
