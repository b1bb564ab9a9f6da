package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/rua"
	"github.com/mailwarden/mailwarden/policy/store"
)

// dmarc send --dry-run writes the day's reports, and dmarc ingest reads
// them back.
func TestDMARCDryRunAndIngest(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state.db")
	cfg := filepath.Join(dir, "mw.toml")
	os.WriteFile(cfg, []byte(`[store]
backend = "bolt"
path = "`+db+`"
[dns]
servers = ["127.0.0.1:1"]
[dmarc_report]
enabled = true
org_name = "Test"
submitter = "receiver.example"
email = "dmarc-noreply@receiver.example"
`), 0o644)
	st := store.NewBolt(db, time.Second)
	if err := st.Open(); err != nil {
		t.Fatal(err)
	}
	c := &rua.Collector{Store: st}
	day := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i, ip := range []string{"192.0.2.1", "192.0.2.1", "198.51.100.7"} {
		o := rua.Observation{Time: day.Add(time.Duration(i) * time.Minute),
			Policy: rua.Policy{Domain: "example.com", P: rua.DispositionNone, Pct: 100, RUA: []string{"mailto:d@example.com"}},
			Row:    rua.Row{SourceIP: netip.MustParseAddr(ip), HeaderFrom: "example.com", EnvelopeFrom: "example.com", DKIM: rua.ResultPass}}
		if i == 2 {
			o.Row.DKIM = rua.ResultFail
		}
		if _, err := c.Record(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"dmarc", "send", "-config", cfg, "--date", "2026-12-01", "--dry-run", "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("send: %d %s", code, stderr.String())
	}
	files, _ := filepath.Glob(filepath.Join(out, "receiver.example!example.com!*.xml.gz"))
	emls, _ := filepath.Glob(filepath.Join(out, "*.eml"))
	if len(files) != 1 || len(emls) != 1 || !strings.Contains(stdout.String(), "3 messages") {
		t.Fatalf("dry run wrote %v %v; said %s", files, emls, stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"dmarc", "ingest", "--json", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("ingest: %d %s", code, stderr.String())
	}
	var s rua.Summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil || s.Reports != 1 || s.Messages != 3 || s.Pass != 2 || s.Fail != 1 {
		t.Errorf("summary %+v (%v)", s, err)
	}
	if code := run([]string{"dmarc", "send", "-config", cfg, "--date", "tomorrow"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad date: exit %d", code)
	}
	if code := run([]string{"dmarc"}, &stdout, &stderr); code != 2 {
		t.Errorf("no subcommand: exit %d", code)
	}
}
