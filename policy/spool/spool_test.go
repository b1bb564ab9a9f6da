package spool

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// fakeFS is a file system whose free space the test sets.
type fakeFS struct {
	mu sync.Mutex
	u  map[string]Usage
}

func (f *fakeFS) set(dir string, u Usage) { f.mu.Lock(); f.u[dir] = u; f.mu.Unlock() }
func (f *fakeFS) statfs(dir string) (Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.u[dir]
	if !ok {
		return Usage{}, errors.New("spool: no such dir")
	}
	return u, nil
}

// gauges records the last SpoolFree per dir.
type gauges struct {
	mu     sync.Mutex
	low    map[string]bool
	n      int
	events map[string]int
}

func (*gauges) CheckDone(string, policy.Status, time.Duration) {}
func (*gauges) MessageDone(*policy.Verdict)                    {}
func (g *gauges) Event(name string) {
	g.mu.Lock()
	g.events[name]++
	g.mu.Unlock()
}
func (g *gauges) SpoolFree(dir string, _, _ uint64, low bool) {
	g.mu.Lock()
	g.low[dir] = low
	g.n++
	g.mu.Unlock()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestGuardLowAndRecovery(t *testing.T) {
	fs := &fakeFS{u: map[string]Usage{
		"/q":   {FreeBytes: 500 << 20, FreeInodes: 50000, TotalInodes: 100000},
		"/tmp": {FreeBytes: 500 << 20, FreeInodes: 50000, TotalInodes: 100000},
	}}
	c := Default()
	tick := make(chan time.Time)
	stopped := make(chan struct{})
	var logs syncBuf
	gg := &gauges{low: map[string]bool{}, events: map[string]int{}}
	g := New(c, []string{"/q", "/tmp"}, Options{
		StatFS: fs.statfs,
		Ticker: func(d time.Duration) (<-chan time.Time, func()) {
			if d != 5*time.Second {
				t.Errorf("interval %v", d)
			}
			return tick, func() { close(stopped) }
		},
		Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
		Metrics: gg,
	})
	g.Start()
	ctx := context.Background()
	rcpt := func() policy.Result {
		r, err := g.CheckRcpt(ctx, &message.Envelope{}, "a@b")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := rcpt(); r.Action != policy.ActionAccept || r.Status != StatusOK {
		t.Fatalf("plenty of space: %+v", r)
	}
	// Bytes run low on /q: the next tick notices.
	fs.set("/q", Usage{FreeBytes: 10 << 20, FreeInodes: 50000, TotalInodes: 100000})
	if rcpt().Action != policy.ActionAccept {
		t.Fatal("state changed before the poll")
	}
	tick <- time.Time{}
	tick <- time.Time{} // the second send returns after the first poll finished
	r := rcpt()
	if r.Action != policy.ActionTempfail || r.Reply.String() != "452 4.3.1 Insufficient system storage" || r.Reasons[0] != ReasonLow || !strings.Contains(r.Detail, "/q") {
		t.Fatalf("low space: %+v", r)
	}
	if m, _ := g.Check(ctx, &message.Message{}, nil); m.Action != policy.ActionTempfail {
		t.Fatal("message check not deferred")
	}
	if n := strings.Count(logs.String(), `"msg":"spool space low"`); n != 1 {
		t.Fatalf("low logged %d times, want once:\n%s", n, logs.String())
	}
	gg.mu.Lock()
	if !gg.low["/q"] || gg.low["/tmp"] {
		t.Errorf("gauges %v", gg.low)
	}
	if gg.events[ReasonLow] != 2 { // one recipient, one message
		t.Errorf("deferrals counted %d, want 2", gg.events[ReasonLow])
	}
	gg.mu.Unlock()
	// Inodes run low instead; bytes are back.
	fs.set("/q", Usage{FreeBytes: 500 << 20, FreeInodes: 10, TotalInodes: 100000})
	tick <- time.Time{}
	tick <- time.Time{}
	if rcpt().Action != policy.ActionTempfail {
		t.Fatal("inodes low not deferred")
	}
	// Everything back: service resumes by itself.
	fs.set("/q", Usage{FreeBytes: 500 << 20, FreeInodes: 50000, TotalInodes: 100000})
	tick <- time.Time{}
	tick <- time.Time{}
	if r := rcpt(); r.Action != policy.ActionAccept {
		t.Fatalf("not recovered: %+v", r)
	}
	if !strings.Contains(logs.String(), `"msg":"spool space recovered"`) {
		t.Fatal("recovery not logged")
	}
	g.Close()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("ticker not stopped on Close")
	}
	g.Close() // idempotent
}

func TestGuardEdgeCases(t *testing.T) {
	fs := &fakeFS{u: map[string]Usage{"/btrfs": {FreeBytes: 1 << 30, FreeInodes: 0, TotalInodes: 0}}}
	c := Default()
	g := New(c, []string{"/btrfs", "/missing"}, Options{StatFS: fs.statfs})
	if g.Low() {
		t.Fatal("no inode table or an unreadable dir must not defer mail")
	}
	st := g.State()
	if len(st) != 2 || st[1].Error == "" || st[0].Dir != "/btrfs" {
		t.Fatalf("state %+v", st)
	}
	c.MinFreeBytes = 0
	fs.set("/btrfs", Usage{FreeBytes: 0})
	g.Poll()
	if g.Low() {
		t.Fatal("min_free_bytes = 0 should disable the byte minimum")
	}
}

func TestRealStatfs(t *testing.T) {
	u, err := Statfs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if u.FreeBytes == 0 {
		t.Fatal("no free bytes reported for a temp dir")
	}
	if _, err := Statfs("/does/not/exist"); err == nil {
		t.Fatal("statfs of a missing dir succeeded")
	}
}

func TestModuleConfig(t *testing.T) {
	mods := []policy.Module{Module(nil)}
	if _, err := policy.Load("t", []byte("[spool]\ninterval = \"1ms\"\nreply = \"550 5.3.1 x\"\ndirs = [\"rel\"]\n"), mods); err == nil ||
		!strings.Contains(err.Error(), "spool.interval") || !strings.Contains(err.Error(), "spool.reply") || !strings.Contains(err.Error(), "spool.dirs") {
		t.Fatalf("bad config accepted or badly reported: %v", err)
	}
	dir := t.TempDir()
	cfg, err := policy.Load("t", []byte("[spool]\ndirs = [\""+dir+"\"]\nmin_free_bytes = \"1KB\"\n"), mods)
	if err != nil {
		t.Fatal(err)
	}
	g := New(ConfigOf(cfg), Dirs(ConfigOf(cfg), cfg), Options{})
	g.Start()
	p, err := policy.New(cfg, []policy.Module{Module(g)}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := p.Rcpt(context.Background(), &message.Envelope{}, "a@b")
	if a != policy.ActionAccept {
		t.Fatal("real temp dir with 1KB minimum deferred")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil { // stops the poller
		t.Fatal(err)
	}
	if _, err := policy.New(cfg, []policy.Module{Module(nil)}, nil, nil, nil); err == nil {
		t.Fatal("an enabled [spool] without a guard built")
	}
}
