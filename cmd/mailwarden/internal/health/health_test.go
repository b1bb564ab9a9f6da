package health

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
)

type recorder struct {
	mu     sync.Mutex
	rounds [][]Result
}

func (r *recorder) HealthResults(rs []Result) {
	r.mu.Lock()
	r.rounds = append(r.rounds, rs)
	r.mu.Unlock()
}

func TestProberInjected(t *testing.T) {
	c := Default()
	c.RelayHosts = []string{"relay1:25", "relay2:25"}
	c.Redis = "redis:6379"
	var mu sync.Mutex
	down := map[string]bool{"relay2:25": true}
	probe := func(_ context.Context, target string) error {
		mu.Lock()
		defer mu.Unlock()
		if down[target] {
			return errors.New("connection refused")
		}
		return nil
	}
	tick := make(chan time.Time)
	rec := &recorder{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := New(c, Options{
		Probes:   map[Kind]Probe{KindSMTP: probe, KindRedis: probe},
		Ticker:   func(time.Duration) (<-chan time.Time, func()) { return tick, func() {} },
		Now:      func() time.Time { return now },
		Reporter: rec,
	})
	p.Start()
	tick <- time.Time{} // first round (at start) is done once the tick is taken
	rs := p.Results()
	if len(rs) != 3 {
		t.Fatalf("results %+v", rs)
	}
	want := map[string]bool{"relay1:25": true, "relay2:25": false, "redis:6379": true}
	for _, r := range rs {
		if r.Up != want[r.Target] || (r.Up == (r.Error != "")) || !r.Checked.Equal(now) {
			t.Errorf("%+v", r)
		}
	}
	if rs[0].Kind != KindRedis {
		t.Errorf("not sorted: %+v", rs)
	}
	mu.Lock()
	down = map[string]bool{}
	mu.Unlock()
	tick <- time.Time{}
	tick <- time.Time{} // taken only after the previous round finished
	p.Close()
	for _, r := range p.Results() {
		if !r.Up {
			t.Errorf("still down after recovery: %+v", r)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.rounds) < 2 {
		t.Fatalf("reported %d rounds", len(rec.rounds))
	}
}

func TestProbePanicAndNoTargets(t *testing.T) {
	c := Default()
	c.Clamd = "unix:/x"
	p := New(c, Options{Probes: map[Kind]Probe{KindClamd: func(context.Context, string) error { panic("boom") }}})
	rs := p.Round(context.Background())
	if len(rs) != 1 || rs[0].Up || !strings.Contains(rs[0].Error, "panicked") {
		t.Fatalf("%+v", rs)
	}
	if rs := New(Default(), Options{}).Round(context.Background()); rs != nil {
		t.Fatal("results with no targets")
	}
}

// serve runs handle on each connection of a fresh loopback listener.
func serve(t *testing.T, network, addr string, handle func(net.Conn)) string {
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().String()
}

func TestRealProbes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	smtpOK := serve(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		r := bufio.NewReader(c)
		c.Write([]byte("220-mx ESMTP\r\n220 mx\r\n"))
		line, _ := r.ReadString('\n')
		if strings.HasPrefix(line, "EHLO probe.test") {
			c.Write([]byte("250-mx\r\n250 PIPELINING\r\n"))
		} else {
			c.Write([]byte("500 what\r\n"))
		}
		r.ReadString('\n')
	})
	smtpBusy := serve(t, "tcp", "127.0.0.1:0", func(c net.Conn) { c.Write([]byte("421 busy\r\n")) })
	if err := SMTP("probe.test")(ctx, smtpOK); err != nil {
		t.Errorf("smtp ok: %v", err)
	}
	if err := SMTP("probe.test")(ctx, smtpBusy); err == nil {
		t.Error("421 greeting counted as up")
	}
	sock := filepath.Join(t.TempDir(), "clamd.sock")
	serve(t, "unix", sock, func(c net.Conn) {
		b, _ := bufio.NewReader(c).ReadString(0)
		if b == "zPING\x00" {
			c.Write([]byte("PONG\x00"))
		}
	})
	if err := Clamd(ctx, "unix:"+sock); err != nil {
		t.Errorf("clamd: %v", err)
	}
	silent := serve(t, "tcp", "127.0.0.1:0", func(c net.Conn) { time.Sleep(2 * time.Second) })
	sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	if err := Clamd(sctx, "tcp:"+silent); err == nil {
		t.Error("silent clamd counted as up")
	}
	scancel()
	redis := serve(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		r := bufio.NewReader(c)
		for i := 0; i < 3; i++ {
			r.ReadString('\n')
		}
		c.Write([]byte("+PONG\r\n"))
	})
	if err := Redis(ctx, redis); err != nil {
		t.Errorf("redis: %v", err)
	}
	if err := Redis(ctx, smtpBusy); err == nil {
		t.Error("an SMTP server counted as Redis")
	}
	d := dnstest.Start(t, "ok.test. 60 IN A 192.0.2.1")
	if err := DNS("ok.test")(ctx, d.Addr); err != nil {
		t.Errorf("dns: %v", err)
	}
	if err := DNS("nx.test")(ctx, d.Addr); err != nil {
		t.Errorf("NXDOMAIN is an answer: %v", err)
	}
	d.SetServFail("bad.test")
	if err := DNS("bad.test")(ctx, d.Addr); err == nil {
		t.Error("SERVFAIL counted as up")
	}
	closed := serve(t, "tcp", "127.0.0.1:0", func(net.Conn) {})
	if err := Redis(ctx, closed); err == nil {
		t.Error("closed connection counted as up")
	}
}

func TestConfig(t *testing.T) {
	mods := []policy.Module{Section()}
	_, err := policy.Load("t", []byte("[health]\nrelay_hosts = [\"nohost\"]\nclamd = \"/sock\"\nredis = \"x\"\ninterval = \"1ms\"\n"), mods)
	for _, k := range []string{"health.relay_hosts", "health.clamd", "health.redis", "health.interval"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("want an error on %s, got %v", k, err)
		}
	}
	cfg, err := policy.Load("t", []byte("[health]\nrelay_hosts = [\"127.0.0.1:1\"]\ninterval = \"1h\"\ntimeout = \"1s\"\n"), mods)
	if err != nil {
		t.Fatal(err)
	}
	rec := &struct {
		recorderMetrics
	}{}
	p := New(ConfigOf(cfg), Options{Reporter: rec})
	if rec.n() != 0 {
		t.Fatal("New probed: only Start may")
	}
	p.Start()
	deadline := time.Now().Add(5 * time.Second)
	for rec.n() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	p.Close()
	if rec.n() == 0 {
		t.Fatal("the started prober never reported")
	}
	rec.mu.Lock()
	if r := rec.rounds[0][0]; r.Up || r.Kind != KindSMTP {
		t.Errorf("closed port reported %+v", r)
	}
	rec.mu.Unlock()
}

type recorderMetrics struct{ recorder }

func (*recorderMetrics) CheckDone(string, policy.Status, time.Duration) {}
func (*recorderMetrics) MessageDone(*policy.Verdict)                    {}
func (r *recorderMetrics) n() int                                       { r.mu.Lock(); defer r.mu.Unlock(); return len(r.rounds) }

func FuzzSMTPReply(f *testing.F) {
	f.Add("220-a\r\n220 b\r\n")
	f.Add("250\n")
	f.Add("2")
	f.Add("abc-def\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		code, err := smtpReply(bufio.NewReader(strings.NewReader(s)))
		if err == nil && (code < 0 || code > 999) {
			t.Fatalf("code %d", code)
		}
	})
}
