package dmarc

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/rua"
	"github.com/mailwarden/mailwarden/policy/store"
)

func TestValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults (off): %v", err)
	}
	c.Enabled = true
	err := c.Validate()
	for _, key := range []string{"org_name", "submitter", "email"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("enabled without %s: %v", key, err)
		}
	}
	c.OrgName, c.Submitter, c.Email = "Org", "receiver.example", "dmarc@receiver.example"
	if err := c.Validate(); err != nil {
		t.Errorf("complete: %v", err)
	}
	c.GiveUpAfter = 0
	if c.Validate() == nil {
		t.Errorf("give_up_after 0 accepted")
	}
}

type nxdomain struct{}

func (nxdomain) LookupTXT(_ context.Context, name string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

type mta struct {
	mu   sync.Mutex
	sent []string
	got  chan struct{}
}

func (m *mta) Send(_ context.Context, from, to string, msg []byte, commit func() error) error {
	if err := commit(); err != nil {
		return err
	}
	m.mu.Lock()
	m.sent = append(m.sent, to)
	m.mu.Unlock()
	m.got <- struct{}{}
	return nil
}

// The daemon's service: observations go through the queue into the store,
// and the scheduler's tick (a fake clock) sends the finished day.
func TestServiceCollectsAndSendsOnSchedule(t *testing.T) {
	c := DefaultConfig()
	c.Enabled, c.OrgName, c.Submitter, c.Email = true, "Org", "receiver.example", "DMARC <dmarc@receiver.example>"
	svc := New(c, store.NewMemory(), nxdomain{}, slog.New(slog.DiscardHandler))
	m := &mta{got: make(chan struct{}, 1)}
	svc.Reporter.Transport = m
	day := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	fire := make(chan time.Time)
	var clock atomic.Int64 // the fake clock, read by the scheduler's goroutine
	svc.Scheduler.Now = func() time.Time { return time.Unix(clock.Load(), 0).UTC() }
	svc.Scheduler.After = func(time.Duration) <-chan time.Time { return fire }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc.Start(ctx)

	sink := svc.Sink()
	sink.Observe(rua.Observation{Time: day, Policy: rua.Policy{Domain: "example.com", P: rua.DispositionNone, Pct: 100,
		RUA: []string{"mailto:agg@example.com"}}, Row: rua.Row{SourceIP: netip.MustParseAddr("192.0.2.1"), HeaderFrom: "example.com"}})
	deadline := time.Now().Add(5 * time.Second)
	for svc.Stats().Recorded == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if svc.Stats().Recorded != 1 {
		t.Fatalf("stats %+v", svc.Stats())
	}
	clock.Store(day.Add(10 * time.Hour).Unix()) // 20:00, the same day: nothing to send
	fire <- time.Time{}
	select {
	case <-m.got:
		t.Fatal("sent before the day ended")
	case <-time.After(100 * time.Millisecond):
	}
	clock.Store(day.Add(15 * time.Hour).Unix()) // 01:00 the next day
	fire <- time.Time{}
	select {
	case <-m.got:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent after the day ended")
	}
	for svc.Stats().Sent == 0 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(10 * time.Millisecond) // the outbox records after the MTA's answer
	}
	if m.sent[0] != "agg@example.com" || svc.Reporter.From != "dmarc@receiver.example" || svc.Stats().Sent != 1 {
		t.Errorf("sent %v from %s, stats %+v", m.sent, svc.Reporter.From, svc.Stats())
	}
	if svc.Sink() == nil || (*Service)(nil).Sink() != nil {
		t.Errorf("sinks")
	}
}

// At shutdown the queue is written out before Wait returns (the daemon
// closes the store after it).
func TestServiceDrainsOnShutdown(t *testing.T) {
	c := DefaultConfig()
	c.Enabled, c.OrgName, c.Submitter, c.Email = true, "Org", "receiver.example", "dmarc@receiver.example"
	svc := New(c, store.NewMemory(), nxdomain{}, slog.New(slog.DiscardHandler))
	svc.Scheduler.After = func(time.Duration) <-chan time.Time { return nil }
	ctx, cancel := context.WithCancel(context.Background())
	svc.Start(ctx)
	day := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 200; i++ {
		svc.Sink().Observe(rua.Observation{Time: day, Policy: rua.Policy{Domain: "example.com", P: rua.DispositionNone, Pct: 100,
			RUA: []string{"mailto:agg@example.com"}}, Row: rua.Row{SourceIP: netip.MustParseAddr("192.0.2.1"), HeaderFrom: "example.com"}})
	}
	cancel()
	if err := svc.Wait(); err != nil {
		t.Fatal(err)
	}
	if st := svc.Stats(); st.Recorded+st.Dropped != 200 || st.Dropped != 0 {
		t.Errorf("stats after shutdown %+v", st)
	}
}
