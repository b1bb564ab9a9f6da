package quarcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/quarantine"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

type rel struct{ to []string }

func (r *rel) Release(ctx context.Context, it *quarantine.Item, rcpt string, msg io.Reader, by string) error {
	r.to = append(r.to, rcpt+" by "+by)
	return nil
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	ix, err := quarantine.OpenBolt(filepath.Join(dir, "i.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	now := t0
	r := &rel{}
	q, _ := quarantine.New(quarantine.Config{Dir: dir, Index: ix, Now: func() time.Time { return now }, Releaser: r})
	ctx := context.Background()
	raw := "From: x@spam.example\r\nSubject: Cheap\tpills\r\n\r\nbody\r\n"
	spam, _ := q.Put(ctx, quarantine.Meta{MailFrom: "x@spam.example", Recipients: []string{"a@example.org", "b@example.org"}, Category: quarantine.CategorySpam, Score: 8}, strings.NewReader(raw))
	q.Put(ctx, quarantine.Meta{MailFrom: "y@v.example", Recipients: []string{"c@example.org"}, Category: quarantine.CategoryVirus}, strings.NewReader(raw))
	now = now.Add(2 * time.Hour)

	run := func(args ...string) string {
		t.Helper()
		req, err := Parse(args)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		req.By = "root"
		resp, err := Handle(ctx, q, req)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		var b bytes.Buffer
		if err := Print(&b, req, resp, now); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	out := run("list")
	if !strings.Contains(out, spam.ID) || strings.Count(out, "\n") != 3 || !strings.Contains(out, "Cheap pills") {
		t.Errorf("list:\n%s", out)
	}
	if out := run("list", "-category", "virus"); strings.Contains(out, spam.ID) {
		t.Errorf("list -category virus:\n%s", out)
	}
	if out := run("show", "-raw", spam.ID); out != raw {
		t.Errorf("show -raw: %q", out)
	}
	if out := run("release", "-rcpt", "b@example.org", spam.ID); !strings.Contains(out, "b@example.org released by cli:root") {
		t.Errorf("release:\n%s", out)
	}
	if len(r.to) != 1 || r.to[0] != "b@example.org by cli:root" {
		t.Errorf("released %v", r.to)
	}
	if out := run("stats"); !strings.HasPrefix(out, "2 held (spam 1, virus 1), ") || !strings.HasSuffix(out, " B, oldest 2h0m0s ago\n") {
		t.Errorf("stats: %q", out)
	}
	now = now.Add(15 * 24 * time.Hour)
	if out := run("purge"); !strings.HasPrefix(out, "expired 1 by age") {
		t.Errorf("purge: %q", out)
	}
	var resp Response
	if err := json.Unmarshal([]byte(run("show", "-json", spam.ID)), &resp); err != nil || resp.Item.Recipient("a@example.org").State != quarantine.StateExpired {
		t.Errorf("show -json: %+v %v", resp.Item, err)
	}
	if _, err := Handle(ctx, q, Request{Cmd: "show", ID: "nope"}); !errors.Is(err, quarantine.ErrNotFound) {
		t.Errorf("show of a bad id: %v", err)
	}
	// the recipients' sender lists, as an admin (audited as cli:root)
	if out := run("senders", "-rcpt", "a@example.org"); out != "a@example.org: no sender listed\n" {
		t.Errorf("empty list: %q", out)
	}
	run("deny", "-rcpt", "a@example.org", "pest@spam.example")
	out = run("allow", "-rcpt", "A@example.org", "<Friend@Shop.example>")
	if !strings.Contains(out, "friend@shop.example  allow  cli:root") || !strings.Contains(out, "pest@spam.example    deny   cli:root") {
		t.Errorf("allow:\n%s", out)
	}
	if out := run("unlist", "-rcpt", "a@example.org", "pest@spam.example"); strings.Contains(out, "pest@") {
		t.Errorf("unlist:\n%s", out)
	}
	if _, err := Handle(ctx, q, Request{Cmd: "unlist", Rcpt: "a@example.org", Sender: "pest@spam.example"}); !errors.Is(err, quarantine.ErrNotFound) {
		t.Errorf("unlist of a missing sender: %v", err)
	}
	log, _ := q.Audit(ctx, 3)
	if len(log) != 3 || log[0].Action != quarantine.ActionUnlist || log[0].Actor != "cli:root" || log[1].Action != quarantine.ActionAllow {
		t.Errorf("audit: %+v", log)
	}
}

func TestParseErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"show"}, {"release", "a", "b"}, {"list", "extra"}, {"list", "-bogus"},
		{"senders"}, {"allow", "-rcpt", "a@x"}, {"deny", "s@y"}, {"senders", "-rcpt", "a@x", "s@y"}} {
		if _, err := Parse(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestSummary(t *testing.T) {
	if s := Summary(quarantine.Stats{}, t0); s != "empty" {
		t.Error(s)
	}
	s := Summary(quarantine.Stats{Items: 3, Bytes: 3 << 20, Oldest: t0.Add(-26 * time.Hour),
		ByCategory: map[quarantine.Category]int{quarantine.CategorySpam: 2, quarantine.CategoryDMARC: 1}}, t0)
	if s != "3 held (spam 2, dmarc 1), 3.0 MiB, oldest 26h0m0s ago" {
		t.Error(s)
	}
}
