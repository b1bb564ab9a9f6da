package virus_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/virus"
)

// gate is a Scanner whose scans wait until released, recording how many
// run at once and each scan's deadline.
type gate struct {
	release       chan struct{}
	started       chan time.Time
	running, peak atomic.Int32
	max           int // MaxScans answer; 0: not a ScanLimiter answer (error)
	mu            sync.Mutex
	deadlines     []time.Time
}

func newGate() *gate { return &gate{release: make(chan struct{}), started: make(chan time.Time, 100)} }

func (g *gate) Name() string { return "clamav:gate" }
func (g *gate) Scan(ctx context.Context, open func() io.Reader, size int64) virus.Finding {
	n := g.running.Add(1)
	defer g.running.Add(-1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	dl, _ := ctx.Deadline()
	g.mu.Lock()
	g.deadlines = append(g.deadlines, dl)
	g.mu.Unlock()
	g.started <- time.Now()
	select {
	case <-g.release:
		return virus.Finding{Status: virus.StatusClean}
	case <-ctx.Done():
		return virus.Finding{Status: virus.StatusError, Err: ctx.Err()}
	}
}

type limitingGate struct {
	*gate
	asked atomic.Int32
}

func (g *limitingGate) MaxScans(context.Context) (int, error) {
	g.asked.Add(1)
	if g.max == 0 {
		return 0, errors.New("no STATS")
	}
	return g.max, nil
}

func open() io.Reader { return strings.NewReader("x") }

func TestLimitedBoundsConcurrency(t *testing.T) {
	g := newGate()
	l := virus.NewLimited(g, 2, time.Hour, time.Hour)
	never := make(chan time.Time)
	virus.SetAfter(l, func(time.Duration) <-chan time.Time { return never })
	var wg sync.WaitGroup
	res := make(chan virus.Finding, 5)
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); res <- l.Scan(context.Background(), open, 1) }()
	}
	<-g.started
	<-g.started
	// Two run; the other three wait.
	for st := l.Stats(); st.Waiting != 3; st = l.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st := l.Stats(); st.Active != 2 || st.Max != 2 {
		t.Fatalf("stats %+v", st)
	}
	close(g.release)
	wg.Wait()
	close(res)
	for f := range res {
		if f.Status != virus.StatusClean {
			t.Errorf("finding %+v", f)
		}
	}
	if p := g.peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
	if st := l.Stats(); st.Scans != 5 || st.Active != 0 || st.Waiting != 0 || st.QueueTimeouts != 0 {
		t.Errorf("stats after %+v", st)
	}
}

func TestLimitedQueueTimeout(t *testing.T) {
	g := newGate()
	l := virus.NewLimited(g, 1, time.Hour, 5*time.Second)
	fire := make(chan time.Time, 1)
	var asked time.Duration
	virus.SetAfter(l, func(d time.Duration) <-chan time.Time { asked = d; return fire })
	first := make(chan virus.Finding, 1)
	go func() { first <- l.Scan(context.Background(), open, 1) }()
	<-g.started
	fire <- time.Time{} // the second scan's wait runs out
	f := l.Scan(context.Background(), open, 1)
	if f.Status != virus.StatusError || !errors.Is(f.Err, virus.ErrQueueTimeout) || asked != 5*time.Second {
		t.Fatalf("queued scan: %+v (wait %v)", f, asked)
	}
	if st := l.Stats(); st.QueueTimeouts != 1 || st.Waiting != 0 || st.Active != 1 {
		t.Fatalf("stats %+v", st)
	}
	close(g.release)
	if f := <-first; f.Status != virus.StatusClean {
		t.Fatalf("running scan: %+v", f)
	}
	// The slot is free again.
	if f := l.Scan(context.Background(), open, 1); f.Status != virus.StatusClean {
		t.Fatalf("after: %+v", f)
	}
}

// The scan's deadline counts from when it starts, not from when it
// started waiting.
func TestLimitedTimeoutFromScanStart(t *testing.T) {
	g := newGate()
	const timeout = time.Hour
	l := virus.NewLimited(g, 1, timeout, time.Hour)
	never := make(chan time.Time)
	virus.SetAfter(l, func(time.Duration) <-chan time.Time { return never })
	done := make(chan struct{})
	go func() { l.Scan(context.Background(), open, 1); close(done) }()
	<-g.started
	second := make(chan struct{})
	go func() { l.Scan(context.Background(), open, 1); close(second) }()
	for l.Stats().Waiting != 1 {
		time.Sleep(time.Millisecond)
	}
	g.release <- struct{}{} // end the first scan; the second starts now
	secondStart := <-g.started
	close(g.release)
	<-done
	<-second
	g.mu.Lock()
	dl := g.deadlines[1]
	g.mu.Unlock()
	// Scan start + timeout, give or take the instants between the context
	// and the recorded start.
	if d := dl.Sub(secondStart); d < timeout-time.Second || d > timeout {
		t.Fatalf("second scan's deadline is %v after its start, want %v", d, timeout)
	}
}

func TestLimitedAsksEngine(t *testing.T) {
	for _, tc := range []struct{ answer, want int }{{3, 3}, {0, virus.DefaultMaxScans}} {
		g := &limitingGate{gate: newGate()}
		g.max = tc.answer
		close(g.release)
		l := virus.NewLimited(g, 0, time.Hour, time.Hour)
		l.Scan(context.Background(), open, 1)
		l.Scan(context.Background(), open, 1)
		if st := l.Stats(); st.Max != tc.want || g.asked.Load() != 1 {
			t.Errorf("engine answers %d: max %d (asked %d times), want %d once", tc.answer, st.Max, g.asked.Load(), tc.want)
		}
	}
}

// A queue timeout is tempfailed with its own reason, even where on_error
// would deliver unscanned.
func TestQueueTimeoutTempfails(t *testing.T) {
	cfg := virus.DefaultConfig()
	cfg.Enabled = true
	cfg.OnError = policy.ActionAccept
	s := &fake{name: "clamav:x", f: virus.Finding{Status: virus.StatusError, Err: virus.ErrQueueTimeout}}
	r, err := virus.New(cfg, []virus.Scanner{s}, nil, nil).Check(context.Background(), msg("x\r\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != policy.ActionTempfail || !r.Mandatory || len(r.Reasons) != 1 || r.Reasons[0] != virus.ReasonQueueTimeout {
		t.Fatalf("result %+v", r)
	}
	if header(r, "X-Virus-Status") != "Unscanned (error)" {
		t.Fatalf("X-Virus-Status %q", header(r, "X-Virus-Status"))
	}
}
