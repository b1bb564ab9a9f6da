package rua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/store"
)

// fakeDNS answers TXT queries from a map; names in temp fail temporarily.
type fakeDNS struct {
	txt  map[string][]string
	temp map[string]bool
}

func (f *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	if f.temp[name] {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	if t, ok := f.txt[name]; ok {
		return t, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

type delivery struct {
	from, to string
	msg      string
}

// fakeMTA is a Transport. fail decides the outcome of each attempt before
// the final "."; afterDot what happens after it was sent.
type fakeMTA struct {
	mu        sync.Mutex
	delivered []delivery
	attempts  int
	fail      func(attempt int) error
	afterDot  func(attempt int) error
}

func (f *fakeMTA) Send(_ context.Context, from, to string, msg []byte, commit func() error) error {
	f.mu.Lock()
	f.attempts++
	n := f.attempts
	f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(n); err != nil {
			return err
		}
	}
	if err := commit(); err != nil {
		return err // aborted before the ".": the MTA has nothing
	}
	f.mu.Lock()
	f.delivered = append(f.delivered, delivery{from, to, string(msg)})
	f.mu.Unlock()
	if f.afterDot != nil {
		return f.afterDot(n)
	}
	return nil
}

func (f *fakeMTA) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.delivered)
}

// flakyStore fails Set for keys matching failSet.
type flakyStore struct {
	*store.Memory
	failSet func(key string, val []byte) bool
}

func (s *flakyStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if s.failSet != nil && s.failSet(key, val) {
		return fmt.Errorf("%w: injected", store.ErrUnavailable)
	}
	return s.Memory.Set(ctx, key, val, ttl)
}

type world struct {
	clock time.Time
	mem   *store.Memory
	st    *flakyStore
	col   *Collector
	mta   *fakeMTA
	dns   *fakeDNS
}

func newWorld(t *testing.T, rua ...string) *world {
	t.Helper()
	w := &world{clock: day1}
	w.mem = store.NewMemory()
	w.mem.Now = func() time.Time { return w.clock }
	w.st = &flakyStore{Memory: w.mem}
	w.col = &Collector{Store: w.st}
	w.mta = &fakeMTA{}
	w.dns = &fakeDNS{txt: map[string][]string{}, temp: map[string]bool{}}
	if len(rua) == 0 {
		rua = []string{"mailto:dmarc@example.com"}
	}
	for i := 1; i <= 3; i++ {
		o := obs(fmt.Sprintf("127.0.0.%d", i), day1)
		o.Policy.RUA = rua
		if _, err := w.col.Record(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// reporter is a fresh Reporter on the world's store: a new one models a
// daemon restart.
func (w *world) reporter() *Reporter {
	return &Reporter{
		Collector: w.col, Verifier: &Verifier{Resolver: w.dns}, Transport: w.mta,
		Identity: ident, From: "dmarc-noreply@receiver.example",
		Logger: slog.New(slog.DiscardHandler),
	}
}

func (w *world) run(t *testing.T, r *Reporter, at time.Time) error {
	t.Helper()
	w.clock = at
	return r.Run(context.Background(), at)
}

func (w *world) jobs(t *testing.T) []Job {
	t.Helper()
	js, err := w.reporter().Jobs(context.Background(), day1)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

var nextDay = time.Date(2026, 12, 2, 0, 20, 0, 0, time.UTC)

func TestOutboxSendsOnceAfterTheDay(t *testing.T) {
	w := newWorld(t)
	r := w.reporter()
	if err := r.RunDay(context.Background(), day1, day1.Add(time.Hour)); !errors.Is(err, ErrDayNotOver) {
		t.Fatalf("same day: %v", err)
	}
	w.run(t, r, day1.Add(13*time.Hour)) // still day 1: nothing to send
	if w.mta.count() != 0 {
		t.Fatalf("sent during the day")
	}
	if err := w.run(t, r, nextDay); err != nil {
		t.Fatal(err)
	}
	if w.mta.count() != 1 {
		t.Fatalf("delivered %d", w.mta.count())
	}
	d := w.mta.delivered[0]
	if d.to != "dmarc@example.com" || d.from != "dmarc-noreply@receiver.example" ||
		!strings.Contains(d.msg, "Report-ID: <"+ReportID("receiver.example", "example.com", day1)+">") {
		t.Errorf("delivery = %s %s\n%.400s", d.from, d.to, d.msg)
	}
	js := w.jobs(t)
	if len(js) != 1 || js[0].State != StateSent || js[0].Attempts != 1 || !js[0].SentAt.Equal(nextDay) {
		t.Fatalf("jobs = %+v", js)
	}
	// Later passes, and a restarted daemon, send nothing more.
	w.run(t, r, nextDay.Add(time.Hour))
	w.run(t, w.reporter(), nextDay.Add(25*time.Hour))
	if w.mta.count() != 1 || r.Stats().Sent.Load() != 1 || r.Stats().Built.Load() != 1 {
		t.Errorf("delivered %d, stats sent %d built %d", w.mta.count(), r.Stats().Sent.Load(), r.Stats().Built.Load())
	}
}

func TestOutboxReportIsBuiltOnce(t *testing.T) {
	w := newWorld(t)
	w.mta.fail = func(n int) error {
		if n == 1 {
			return &SendError{Code: 451, Err: errors.New("try later")}
		}
		return nil
	}
	r := w.reporter()
	w.run(t, r, nextDay)
	// A late row of day 1 arrives after the report was built.
	w.col.Record(context.Background(), obs("127.0.0.99", day1.Add(23*time.Hour)))
	w.run(t, r, nextDay.Add(3*time.Hour))
	if w.mta.count() != 1 {
		t.Fatalf("delivered %d", w.mta.count())
	}
	if strings.Count(w.mta.delivered[0].msg, "Report-ID") != 1 {
		t.Fatal("bad message")
	}
	// The retried message carries the report as first built (3 messages).
	if !strings.Contains(w.mta.delivered[0].msg, "3 messages") {
		t.Errorf("retry sent a rebuilt report:\n%.600s", w.mta.delivered[0].msg)
	}
}

func TestOutboxRetriesWithBackoffThenGivesUp(t *testing.T) {
	w := newWorld(t)
	w.mta.fail = func(int) error { return &SendError{Code: 421, Err: errors.New("service not available")} }
	r := w.reporter()
	if err := w.run(t, r, nextDay); err == nil {
		t.Fatal("no error for a failed delivery")
	}
	j := w.jobs(t)[0]
	if j.State != StatePending || j.Attempts != 1 || !j.NextTry.Equal(nextDay.Add(20*time.Minute)) || !strings.Contains(j.LastError, "421") {
		t.Fatalf("after one failure: %+v", j)
	}
	// Before NextTry nothing is attempted.
	w.run(t, r, nextDay.Add(10*time.Minute))
	if w.mta.attempts != 1 {
		t.Fatalf("attempted before next try: %d", w.mta.attempts)
	}
	at := nextDay
	for i := 0; i < 100 && w.jobs(t)[0].State == StatePending; i++ {
		at = at.Add(time.Hour)
		w.run(t, r, at)
	}
	j = w.jobs(t)[0]
	if j.State != StateGivenUp || r.Stats().GivenUp.Load() != 1 {
		t.Fatalf("after 100 hourly passes: %+v", j)
	}
	if end := DayStart(nextDay).Add(72 * time.Hour); at.Before(end) || at.After(end.Add(time.Hour)) {
		t.Errorf("given up at %v, created %v", at, nextDay)
	}
	n := w.mta.attempts
	w.run(t, r, at.Add(time.Hour))
	if w.mta.attempts != n || w.mta.count() != 0 {
		t.Errorf("a given-up job was attempted again")
	}
}

// TestOutboxCrashBetweenSentAndRecorded: the MTA accepted the message
// but the daemon died before recording it. The restarted daemon must not
// send it again.
func TestOutboxCrashBetweenSentAndRecorded(t *testing.T) {
	w := newWorld(t)
	w.st.failSet = func(key string, val []byte) bool {
		return strings.HasPrefix(key, "rua:j:") && strings.Contains(string(val), `"state":"sent"`)
	}
	r := w.reporter()
	if err := w.run(t, r, nextDay); err == nil {
		t.Fatal("the failed record went unnoticed")
	}
	if w.mta.count() != 1 || w.jobs(t)[0].State != StateSending {
		t.Fatalf("delivered %d, job %+v", w.mta.count(), w.jobs(t)[0])
	}
	w.st.failSet = nil
	// Restart within the lease: the job is left alone.
	r2 := w.reporter()
	w.run(t, r2, nextDay.Add(5*time.Minute))
	// Restart after the lease: closed as sent, unconfirmed, not resent.
	r3 := w.reporter()
	w.run(t, r3, nextDay.Add(time.Hour))
	w.run(t, r3, nextDay.Add(2*time.Hour))
	j := w.jobs(t)[0]
	if w.mta.count() != 1 || j.State != StateSent || !j.Unconfirmed || r3.Stats().Unconfirmed.Load() != 1 {
		t.Fatalf("delivered %d, job %+v", w.mta.count(), j)
	}
}

// TestOutboxCrashBeforeDot: recording "sending" failed, so the final "."
// was never sent: the MTA has nothing and the report is sent later.
func TestOutboxCrashBeforeDot(t *testing.T) {
	w := newWorld(t)
	w.st.failSet = func(key string, val []byte) bool {
		return strings.HasPrefix(key, "rua:j:") && strings.Contains(string(val), `"state":"sending"`)
	}
	r := w.reporter()
	w.run(t, r, nextDay)
	if w.mta.count() != 0 || w.jobs(t)[0].State != StatePending {
		t.Fatalf("delivered %d, job %+v", w.mta.count(), w.jobs(t)[0])
	}
	w.st.failSet = nil
	w.run(t, w.reporter(), nextDay.Add(time.Hour))
	if w.mta.count() != 1 || w.jobs(t)[0].State != StateSent || w.jobs(t)[0].Unconfirmed {
		t.Fatalf("delivered %d, job %+v", w.mta.count(), w.jobs(t)[0])
	}
}

// TestOutboxUnknownOutcome: the connection broke after the "." with no
// reply: treated like the crash case, never resent.
func TestOutboxUnknownOutcome(t *testing.T) {
	w := newWorld(t)
	w.mta.afterDot = func(int) error { return &SendError{Committed: true, Err: errors.New("connection reset")} }
	r := w.reporter()
	w.run(t, r, nextDay)
	w.run(t, r, nextDay.Add(time.Hour))
	w.run(t, r, nextDay.Add(2*time.Hour))
	if w.mta.count() != 1 || w.mta.attempts != 1 || !w.jobs(t)[0].Unconfirmed {
		t.Fatalf("attempts %d, job %+v", w.mta.attempts, w.jobs(t)[0])
	}
}

func TestOutboxExternalDestinations(t *testing.T) {
	w := newWorld(t, "mailto:a@reports.example", "mailto:b@victim.example", "mailto:c@flaky.example")
	w.dns.txt["example.com._report._dmarc.reports.example"] = []string{"v=DMARC1"}
	w.dns.temp["example.com._report._dmarc.flaky.example"] = true
	r := w.reporter()
	w.run(t, r, nextDay)
	state := map[string]State{}
	for _, j := range w.jobs(t) {
		state[j.To] = j.State
	}
	if state["a@reports.example"] != StateSent || state["b@victim.example"] != StateGivenUp || state["c@flaky.example"] != StatePending {
		t.Fatalf("states = %v", state)
	}
	if w.mta.count() != 1 || r.Stats().Unauthorized.Load() != 1 {
		t.Errorf("delivered %d", w.mta.count())
	}
	// The temperror clears: the report goes out on a later pass.
	delete(w.dns.temp, "example.com._report._dmarc.flaky.example")
	w.dns.txt["example.com._report._dmarc.flaky.example"] = []string{"v=DMARC1; rua=mailto:c@flaky.example"}
	w.run(t, r, nextDay.Add(time.Hour))
	if w.mta.count() != 2 || w.mta.delivered[1].to != "c@flaky.example" {
		t.Errorf("after the temperror: %d deliveries", w.mta.count())
	}
}

func TestOutboxSizeLimitSendsNotice(t *testing.T) {
	w := newWorld(t, "mailto:small@example.com!1k", "mailto:big@example.com!1m")
	r := w.reporter()
	w.run(t, r, nextDay)
	if w.mta.count() != 2 {
		t.Fatalf("delivered %d", w.mta.count())
	}
	for _, d := range w.mta.delivered {
		notice := !strings.Contains(d.msg, "application/gzip")
		if (d.to == "small@example.com") != notice {
			t.Errorf("%s: notice = %v", d.to, notice)
		}
		if notice && (len(d.msg) > 1024 || !strings.Contains(d.msg, "larger than the limit of 1024 bytes")) {
			t.Errorf("notice:\n%s", d.msg)
		}
	}
	if r.Stats().Notices.Load() != 1 || r.Stats().Sent.Load() != 1 {
		t.Errorf("stats notices %d sent %d", r.Stats().Notices.Load(), r.Stats().Sent.Load())
	}
}

func TestOutboxDestinationLimits(t *testing.T) {
	w := newWorld(t, "https://example.com/r", "mailto:1@example.com", "mailto:1@EXAMPLE.com",
		"mailto:2@example.com", "mailto:3@example.com", "mailto:4@example.com")
	r := w.reporter()
	w.run(t, r, nextDay)
	var tos []string
	for _, d := range w.mta.delivered {
		tos = append(tos, d.to)
	}
	if fmt.Sprint(tos) != "[1@example.com 2@example.com 3@example.com]" {
		t.Errorf("delivered to %v", tos)
	}
}

func TestOutboxLockedJobIsSkipped(t *testing.T) {
	w := newWorld(t)
	r := w.reporter()
	// Another daemon holds the lock of the job.
	jk := jobKey(day(day1), "example.com", "dmarc@example.com")
	w.clock = nextDay
	w.mem.Set(context.Background(), lockKey(jk), []byte("x"), time.Hour)
	w.run(t, r, nextDay)
	if w.mta.attempts != 0 {
		t.Fatalf("a locked job was sent")
	}
	w.run(t, r, nextDay.Add(2*time.Hour)) // the lock expired
	if w.mta.count() != 1 {
		t.Fatalf("delivered %d", w.mta.count())
	}
}

func TestBuildDryRun(t *testing.T) {
	w := newWorld(t)
	reps, err := w.reporter().Build(context.Background(), day1)
	if err != nil || len(reps) != 1 || reps[0].Messages != 3 {
		t.Fatalf("build = %v, %v", reps, err)
	}
	if js := w.jobs(t); len(js) != 0 {
		t.Errorf("a dry run created jobs: %+v", js)
	}
}
