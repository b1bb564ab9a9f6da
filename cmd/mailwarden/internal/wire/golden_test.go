package wire

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/clamav/clamdtest"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/policy/goldentest"
	"github.com/mailwarden/mailwarden/policy/message"
)

// goldenRcpt is the RCPT-time decision on one recipient.
type goldenRcpt struct {
	Rcpt    string   `json:"rcpt"`
	Action  string   `json:"action"`
	Reply   string   `json:"reply,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
}

// goldenVerdict is the stable part of a verdict (no durations).
type goldenVerdict struct {
	Rcpts            []goldenRcpt             `json:"rcpts"`
	Action           string                   `json:"action"`
	WouldBe          string                   `json:"would_be"`
	Score            float64                  `json:"score"`
	Flagged          bool                     `json:"flagged"`
	Reasons          []string                 `json:"reasons"`
	Reply            string                   `json:"reply,omitempty"`
	QuarantineReason string                   `json:"quarantine_reason,omitempty"`
	Prepend          []message.Field          `json:"prepend"`
	Delete           []policy.HeaderRef       `json:"delete"`
	ChangeFrom       string                   `json:"change_from,omitempty"`
	DeleteRcpts      []string                 `json:"delete_rcpts,omitempty"`
	Checks           map[string]policy.Status `json:"checks"`
}

// TestGolden runs every case through the real modules on services built
// from testdata/config.toml: the test DNS server (with the case's .dns
// records), the fake clamd and a memory store, fresh for each case.
func TestGolden(t *testing.T) {
	dir := "testdata"
	tmpl, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.Start(t)
	clamd := clamdtest.Start(t, clamdtest.Options{Signatures: map[string]string{"EICAR-STANDARD-ANTIVIRUS-TEST-FILE": "Eicar-Test-Signature"}})
	sarules, err := filepath.Abs(filepath.Join(dir, "sa"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("%DNS%", srv.Addr, "%CLAMD%", clamd.Addr(), "%SPOOL%", t.TempDir(), "%SARULES%", sarules).Replace(string(tmpl))
	checksSeen := map[string]bool{}
	for _, c := range goldentest.Cases(t, dir, 10) {
		t.Run(c.Name, func(t *testing.T) {
			cfg, err := policy.Load("config.toml", []byte(text), Sections())
			if err != nil {
				t.Fatal(err)
			}
			srv.Reset()
			if zone, err := os.ReadFile(c.Base + ".dns"); err == nil {
				for _, l := range strings.Split(string(zone), "\n") {
					if l = strings.TrimSpace(l); l != "" && l[0] != ';' {
						if err := srv.AddErr(l); err != nil {
							t.Fatalf("%s.dns: %v", c.Name, err)
						}
					}
				}
			}
			m := c.Message(t, cfg.Message.MaxHeaders)
			m.Received = time.Unix(1_795_000_000, 0)
			proves := c.Env(t, m, nil)
			p, svc, err := Pipeline(cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close()
			defer p.Close()

			ctx := context.Background()
			g := goldenVerdict{Checks: map[string]policy.Status{}, Reasons: []string{}, Delete: []policy.HeaderRef{}}
			env := &message.Envelope{Client: m.Client, Auth: m.Auth, MailFrom: m.MailFrom}
			var accepted []string
			for _, r := range m.Rcpts {
				a, reply, reasons := p.Rcpt(ctx, env, r)
				gr := goldenRcpt{Rcpt: r, Action: a.String(), Reasons: reasons}
				if !reply.IsZero() {
					gr.Reply = reply.String()
				}
				g.Rcpts = append(g.Rcpts, gr)
				if a == policy.ActionAccept {
					accepted = append(accepted, r)
					env.Rcpts = append(env.Rcpts, r)
				}
			}
			m.Rcpts = accepted
			if len(accepted) > 0 {
				v := p.Run(ctx, m)
				g.Action, g.WouldBe, g.Score, g.Flagged = v.Action.String(), v.WouldBe.String(), v.Score, v.Flagged
				g.Reasons = append(g.Reasons, v.Reasons...)
				g.QuarantineReason, g.Prepend, g.ChangeFrom, g.DeleteRcpts = v.QuarantineReason, v.Prepend, v.ChangeFrom, v.DeleteRcpts
				g.Delete = append(g.Delete, v.Delete...)
				if !v.Reply.IsZero() {
					g.Reply = v.Reply.String()
				}
				for _, ch := range v.Checks {
					g.Checks[ch.Name] = ch.Status
					checksSeen[ch.Name] = true
				}
			}
			c.Compare(t, proves, g)
		})
	}
	// Every check of the pipeline ran in at least one case.
	for _, c := range []string{"lists", "rules", "spf", "dkim", "dmarc", "spam", "limit", "autoreply", "virus", "relay", "local_only", "spool"} {
		if !checksSeen[c] {
			t.Errorf("no golden case ran the %s check", c)
		}
	}
}
