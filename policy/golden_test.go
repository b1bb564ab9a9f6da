package policy

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

	"github.com/mailwarden/mailwarden/policy/message"
)

var update = flag.Bool("update", false, "rewrite the golden .want files")

// goldenVerdict is the stable part of a verdict (no durations).
type goldenVerdict struct {
	Action           string            `json:"action"`
	WouldBe          string            `json:"would_be"`
	Score            float64           `json:"score"`
	Reasons          []string          `json:"reasons"`
	Reply            string            `json:"reply,omitempty"`
	QuarantineReason string            `json:"quarantine_reason,omitempty"`
	Prepend          []message.Field   `json:"prepend"`
	Delete           []HeaderRef       `json:"delete"`
	Checks           map[string]Status `json:"checks"`
}

// readEnv reads a golden .env file: key=value lines, "#" comments; the
// first line must be "# proves: ...".
func readEnv(t *testing.T, path string, m *message.Message, cfg *Config) string {
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
		case "mode":
			mode, err := ParseMode(v)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
			cfg.Mode = mode
		default:
			t.Fatalf("%s:%d: unknown key %q", path, n, k)
		}
	}
	return proves
}

func TestGolden(t *testing.T) {
	dir := filepath.Join("testdata", "golden")
	cases, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(cases) < 10 {
		t.Fatalf("want at least 10 golden cases, have %d (%v)", len(cases), err)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, eml := range cases {
		name := strings.TrimSuffix(filepath.Base(eml), ".eml")
		t.Run(name, func(t *testing.T) {
			base := strings.TrimSuffix(eml, ".eml")
			cfg, err := LoadFile(filepath.Join(dir, "config.toml"), nil)
			if err != nil {
				t.Fatal(err)
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
			m := &message.Message{QueueID: name, Header: h, Body: message.BytesBody(body)}
			proves := readEnv(t, base+".env", m, cfg)
			if !bytes.Contains(readme, []byte("`"+name+"`")) {
				t.Errorf("README.md does not list %s", name)
			}
			p, err := New(cfg, nil, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			v := p.Run(context.Background(), m)
			g := goldenVerdict{
				Action: v.Action.String(), WouldBe: v.WouldBe.String(), Score: v.Score, Reasons: v.Reasons,
				QuarantineReason: v.QuarantineReason, Prepend: v.Prepend, Delete: v.Delete, Checks: map[string]Status{},
			}
			if !v.Reply.IsZero() {
				g.Reply = v.Reply.String()
			}
			if g.Reasons == nil {
				g.Reasons = []string{}
			}
			if g.Delete == nil {
				g.Delete = []HeaderRef{}
			}
			for _, c := range v.Checks {
				g.Checks[c.Name] = c.Status
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
}
