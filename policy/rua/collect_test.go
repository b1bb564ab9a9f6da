package rua

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/store"
)

var _ Store = (*store.Memory)(nil) // the shared store satisfies our interface

var day1 = time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)

func testPolicy() Policy {
	return Policy{Domain: "example.com", ADKIM: "r", ASPF: "r", P: DispositionReject, Pct: 100,
		RUA: []string{"mailto:dmarc@example.com"}}
}

func obs(ip string, t time.Time) Observation {
	return Observation{
		Time:   t,
		Policy: testPolicy(),
		Row: Row{
			SourceIP: netip.MustParseAddr(ip), HeaderFrom: "example.com", EnvelopeFrom: "example.com",
			Disposition: DispositionNone, DKIM: ResultPass, SPF: ResultPass,
			DKIMAuth: []DKIMAuth{{"example.com", "s1", DKIMPass}},
			SPFAuth:  []SPFAuth{{"example.com", ScopeMFrom, SPFPass}},
		},
		Recipients: []string{"user@receiver.example"},
		Subject:    "hello",
	}
}

func newCollector(t *testing.T, now time.Time) (*Collector, *store.Memory) {
	t.Helper()
	m := store.NewMemory()
	m.Now = func() time.Time { return now }
	return &Collector{Store: m}, m
}

func TestRowKeyCanonical(t *testing.T) {
	a := obs("192.0.2.1", day1).Row
	b := a
	b.HeaderFrom = "Example.COM."
	b.SourceIP = netip.MustParseAddr("::ffff:192.0.2.1")
	b.DKIMAuth = []DKIMAuth{{"EXAMPLE.com", "S1", DKIMPass}}
	if RowKey(a) != RowKey(b) {
		t.Errorf("case, trailing dot and mapped IPv4 change the key")
	}
	c := a
	c.DKIMAuth = []DKIMAuth{{"b.example", "x", DKIMFail}, {"a.example", "y", DKIMPass}}
	d := a
	d.DKIMAuth = []DKIMAuth{{"a.example", "y", DKIMPass}, {"b.example", "x", DKIMFail}}
	if RowKey(c) != RowKey(d) {
		t.Errorf("tuple order changes the key")
	}
	for name, mod := range map[string]func(*Row){
		"ip":          func(r *Row) { r.SourceIP = netip.MustParseAddr("192.0.2.2") },
		"envfrom":     func(r *Row) { r.EnvelopeFrom = "bounce.example.com" },
		"disposition": func(r *Row) { r.Disposition = DispositionReject },
		"dkim":        func(r *Row) { r.DKIM = ResultFail },
		"spf":         func(r *Row) { r.SPF = ResultFail },
		"reason":      func(r *Row) { r.Reasons = []Reason{{OverrideLocalPolicy, "arc=pass"}} },
		"dkim tuple":  func(r *Row) { r.DKIMAuth[0].Result = DKIMFail },
		"spf scope":   func(r *Row) { r.SPFAuth = []SPFAuth{{"example.com", ScopeHELO, SPFPass}} },
	} {
		r := obs("192.0.2.1", day1).Row
		mod(&r)
		if RowKey(r) == RowKey(a) {
			t.Errorf("%s: a different row has the same key", name)
		}
	}
}

func TestRecordCountsAndMerges(t *testing.T) {
	ctx := context.Background()
	c, _ := newCollector(t, day1)
	for i := 0; i < 3; i++ {
		if s, err := c.Record(ctx, obs("192.0.2.1", day1.Add(time.Duration(i)*time.Hour))); s != SkipNone || err != nil {
			t.Fatalf("record: %v %v", s, err)
		}
	}
	other := obs("192.0.2.7", day1)
	other.Row.DKIM, other.Row.Disposition = ResultFail, DispositionReject
	c.Record(ctx, other)
	// The next UTC day is another report.
	c.Record(ctx, obs("192.0.2.1", time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)))
	// A subdomain policy found at another domain is another report.
	sub := obs("192.0.2.1", day1)
	sub.Policy.Domain = "Other.Example."
	c.Record(ctx, sub)

	doms, err := c.Domains(ctx, day1)
	if err != nil || fmt.Sprint(doms) != "[example.com other.example]" {
		t.Fatalf("domains = %v, %v", doms, err)
	}
	d, err := c.Load(ctx, day1, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Rows) != 2 || d.Rows[0].Count != 3 || d.Rows[1].Count != 1 || d.Messages() != 4 {
		t.Fatalf("rows = %+v", d.Rows)
	}
	if d.Rows[1].Row.SourceIP.String() != "192.0.2.7" || d.Rows[1].Row.Disposition != DispositionReject {
		t.Errorf("second row = %+v", d.Rows[1].Row)
	}
	if d.Policy.P != DispositionReject || d.Policy.RUA[0] != "mailto:dmarc@example.com" {
		t.Errorf("policy = %+v", d.Policy)
	}
	next, _ := c.Load(ctx, day1.AddDate(0, 0, 1), "example.com")
	if next == nil || next.Messages() != 1 {
		t.Errorf("next day = %+v", next)
	}
	if got := c.Stats().Recorded.Load(); got != 6 {
		t.Errorf("recorded = %d", got)
	}

	// Merge: equal rows add up, new rows are appended.
	e, _ := c.Load(ctx, day1, "example.com")
	d.Merge(e)
	if len(d.Rows) != 2 || d.Rows[0].Count != 6 || d.Messages() != 8 {
		t.Errorf("merged = %+v", d.Rows)
	}
	d.Merge(next)
	if len(d.Rows) != 2 || d.Rows[0].Count != 7 {
		t.Errorf("merged next = %+v", d.Rows)
	}
}

func TestRecordCap(t *testing.T) {
	ctx := context.Background()
	c, _ := newCollector(t, day1)
	c.MaxRows = 2
	var capped int
	for i := 1; i <= 5; i++ {
		_, err := c.Record(ctx, obs(fmt.Sprintf("192.0.2.%d", i), day1))
		if errors.Is(err, ErrCapped) {
			capped++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// Rows already itemised keep counting after the cap.
	if _, err := c.Record(ctx, obs("192.0.2.1", day1)); err != nil {
		t.Fatalf("existing row after cap: %v", err)
	}
	if capped != 3 || c.Stats().Capped.Load() != 3 {
		t.Errorf("capped = %d, stat %d", capped, c.Stats().Capped.Load())
	}
	d, _ := c.Load(ctx, day1, "example.com")
	if len(d.Rows) != 2 || d.NotItemised != 3 || d.Messages() != 6 {
		t.Fatalf("data = %+v", d)
	}
	f := Build(Identity{OrgName: "Test", Submitter: "receiver.example", Email: "dmarc@receiver.example"}, d)
	if len(f.Metadata.Errors) != 1 || len(f.Records) != 2 {
		t.Fatalf("capped report metadata = %+v", f.Metadata)
	}
	want := "row limit reached: 2 rows itemised, 3 further messages not itemised (6 messages in total)"
	if f.Metadata.Errors[0] != want {
		t.Errorf("error = %q", f.Metadata.Errors[0])
	}
}

func TestLoopGuard(t *testing.T) {
	g := LoopGuard{
		ReportAddresses:   []string{"DMARC-Reports@receiver.example"},
		ExcludeDomains:    []string{".internal.example", "skip.example"},
		ExcludeRecipients: []string{"@lists.receiver.example", "postmaster@receiver.example"},
		ExcludeSources:    []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
	}
	c, _ := newCollector(t, day1)
	c.Guard = g
	for _, tc := range []struct {
		name string
		mod  func(*Observation)
		want Skip
	}{
		{"plain", func(*Observation) {}, SkipNone},
		{"no rua", func(o *Observation) { o.Policy.RUA = nil }, SkipNoRUA},
		{"to report address", func(o *Observation) {
			o.Recipients = []string{"x@receiver.example", "<dmarc-reports@RECEIVER.example>"}
		}, SkipReportAddress},
		{"report subject", func(o *Observation) {
			o.Subject = "Report Domain: receiver.example Submitter: google.com Report-ID: <1>"
		}, SkipIncomingReport},
		{"report attachment", func(o *Observation) {
			o.MediaTypes = []string{"multipart/mixed", "application/gzip"}
			o.FileNames = []string{"google.com!receiver.example!1764547200!1764633599.xml.gz"}
		}, SkipIncomingReport},
		{"legacy zip report", func(o *Observation) {
			o.MediaTypes = []string{"application/zip"}
			o.FileNames = []string{"Microsoft.com!receiver.example!1764547200!1764633599.ZIP"}
		}, SkipIncomingReport},
		{"failure report", func(o *Observation) { o.MediaTypes = []string{"multipart/report", "message/feedback-report"} }, SkipIncomingReport},
		{"ordinary zip", func(o *Observation) {
			o.MediaTypes = []string{"multipart/mixed", "application/zip"}
			o.FileNames = []string{"invoice.zip"}
		}, SkipNone},
		{"zip to report address", func(o *Observation) {
			o.MediaTypes = []string{"application/zip"}
			o.FileNames = []string{"whatever.zip"}
			o.Recipients = []string{"dmarc-reports@receiver.example"}
		}, SkipReportAddress},
		{"excluded subdomain", func(o *Observation) { o.Policy.Domain = "a.internal.example" }, SkipExcluded},
		{"excluded apex", func(o *Observation) { o.Row.HeaderFrom = "internal.example" }, SkipExcluded},
		{"excluded domain", func(o *Observation) { o.Policy.Domain = "skip.example" }, SkipExcluded},
		{"not a suffix match", func(o *Observation) { o.Policy.Domain = "noskip.example" }, SkipNone},
		{"excluded recipient domain", func(o *Observation) { o.Recipients = []string{"l@lists.receiver.example"} }, SkipExcluded},
		{"excluded recipient", func(o *Observation) { o.Recipients = []string{"Postmaster@receiver.example"} }, SkipExcluded},
		{"excluded source", func(o *Observation) { o.Row.SourceIP = netip.MustParseAddr("198.51.100.9") }, SkipExcluded},
		{"no source", func(o *Observation) { o.Row.SourceIP = netip.Addr{} }, SkipInvalid},
	} {
		o := obs("192.0.2.1", day1)
		tc.mod(&o)
		if got, _ := c.Record(context.Background(), o); got != tc.want {
			t.Errorf("%s: skip = %q, want %q", tc.name, got, tc.want)
		}
	}
	d, _ := c.Load(context.Background(), day1, "example.com")
	if d.Messages() != 2 { // "plain" and "ordinary zip"; "not a suffix match" is another domain
		t.Errorf("counted %d messages for example.com", d.Messages())
	}
}

func TestRecordStoreFailureIsReported(t *testing.T) {
	c := &Collector{Store: failStore{store.NewMemory()}}
	_, err := c.Record(context.Background(), obs("192.0.2.1", day1))
	if err == nil || c.Stats().Errors.Load() != 1 {
		t.Fatalf("err = %v, errors = %d", err, c.Stats().Errors.Load())
	}
}

type failStore struct{ *store.Memory }

func (failStore) MGet(context.Context, []string) ([][]byte, error) {
	return nil, store.ErrUnavailable
}
