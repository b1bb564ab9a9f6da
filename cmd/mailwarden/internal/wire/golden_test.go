package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/clamav/clamdtest"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/policy/message"
)

var update = flag.Bool("update", false, "rewrite the golden .want files")

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

// readEnv reads a .env file: key=value lines, "#" comments; the first
// line must be "# proves: ...".
func readEnv(t *testing.T, path string, m *message.Message) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	proves := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			proves, _ = strings.CutPrefix(line, "# proves: ")
			if proves == line || proves == "" {
				t.Fatalf("%s: the first line must be \"# proves: what this case shows\"", path)
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: want key=value", path, n)
		}
		switch k {
		case "client_ip":
			m.Client.Addr = netip.MustParseAddr(v)
		case "helo":
			m.Client.HELO = v
		case "from":
			m.MailFrom = strings.Trim(v, "<>")
		case "rcpt":
			m.Rcpts = append(m.Rcpts, v)
		case "auth":
			m.Auth = v
		default:
			t.Fatalf("%s:%d: unknown key %q", path, n, k)
		}
	}
	return proves
}

// TestGolden runs every case through the real modules on services built
// from testdata/config.toml: the test DNS server (with the case's .dns
// records), the fake clamd and a memory store, fresh for each case.
func TestGolden(t *testing.T) {
	dir := "testdata"
	cases, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(cases) < 10 {
		t.Fatalf("want at least 10 golden cases, have %d (%v)", len(cases), err)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
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
	for _, eml := range cases {
		name := strings.TrimSuffix(filepath.Base(eml), ".eml")
		base := strings.TrimSuffix(eml, ".eml")
		t.Run(name, func(t *testing.T) {
			cfg, err := policy.Load("config.toml", []byte(text), Sections())
			if err != nil {
				t.Fatal(err)
			}
			srv.Reset()
			if zone, err := os.ReadFile(base + ".dns"); err == nil {
				for _, l := range strings.Split(string(zone), "\n") {
					if l = strings.TrimSpace(l); l != "" && l[0] != ';' {
						if err := srv.AddErr(l); err != nil {
							t.Fatalf("%s.dns: %v", name, err)
						}
					}
				}
			}
			f, err := os.Open(eml)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h, body, err := message.ReadMessage(f, cfg.Message.MaxHeaders)
			if err != nil {
				t.Fatal(err)
			}
			m := &message.Message{QueueID: name, Header: h, Body: message.BytesBody(body), Received: time.Unix(1_795_000_000, 0)}
			proves := readEnv(t, base+".env", m)
			if !bytes.Contains(readme, []byte("`"+name+"`")) {
				t.Errorf("README.md does not list %s", name)
			}
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
				for _, c := range v.Checks {
					g.Checks[c.Name] = c.Status
					checksSeen[c.Name] = true
				}
			}
			got, err := json.MarshalIndent(g, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			if *update {
				if err := os.WriteFile(base+".want", got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(base + ".want")
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s\nproves: %s\n--- got\n%s--- want\n%s", name, proves, got, want)
			}
		})
	}
	// Every check of the pipeline ran in at least one case.
	for _, c := range []string{"lists", "rules", "spf", "dkim", "dmarc", "spam", "limit", "autoreply", "virus", "relay", "local_only", "spool"} {
		if !checksSeen[c] {
			t.Errorf("no golden case ran the %s check", c)
		}
	}
}
