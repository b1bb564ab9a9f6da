package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/health"
	"github.com/mailwarden/mailwarden/policy"
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
