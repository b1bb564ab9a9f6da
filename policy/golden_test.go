package policy

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mailwarden/mailwarden/policy/goldentest"
	"github.com/mailwarden/mailwarden/policy/message"
)

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

func TestGolden(t *testing.T) {
	dir := filepath.Join("testdata", "golden")
	for _, c := range goldentest.Cases(t, dir, 10) {
		t.Run(c.Name, func(t *testing.T) {
			cfg, err := LoadFile(filepath.Join(dir, "config.toml"), nil)
			if err != nil {
				t.Fatal(err)
			}
			m := c.Message(t, cfg.Message.MaxHeaders)
			proves := c.Env(t, m, func(k, v string) error {
				if k != "mode" {
					return fmt.Errorf("unknown key %q", k)
				}
				mode, err := ParseMode(v)
				cfg.Mode = mode
				return err
			})
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
			c.Compare(t, proves, g)
		})
	}
}
