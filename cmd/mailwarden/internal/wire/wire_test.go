package wire

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/health"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/policy/virus/icap/icaptest"
)

func load(t *testing.T, text string) *policy.Config {
	t.Helper()
	cfg, err := policy.Load("t.toml", []byte(text), Sections())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A reload keeps every service whose own section is unchanged: the
// resolver (and its cache) survives a change to [score]; a change to [dns]
// builds a new resolver and retires the old one; a change to [store]
// replaces the store only.
func TestReloadKeepsUnchangedServices(t *testing.T) {
	srv := dnstest.Start(t, "cached.test. 3600 IN TXT \"v=1\"")
	base := fmt.Sprintf("local_domains = [\"example.org\"]\n[dns]\nservers = [%q]\nattempts = 1\n[store]\nbackend = \"memory\"\n", srv.Addr)
	s1, retired, err := BuildServices(load(t, base), nil, Options{})
	if err != nil || len(retired) != 0 {
		t.Fatalf("first build: %v, retired %d", err, len(retired))
	}
	t.Cleanup(func() { s1.Close() })
	ctx := context.Background()
	if _, err := s1.Resolver.LookupTXT(ctx, "cached.test"); err != nil {
		t.Fatal(err)
	}
	sent := s1.Resolver.Stats().Sent

	// SIGHUP with only [score] changed.
	s2, retired, err := BuildServices(load(t, base+"[score]\nreject = 30.0\n"), s1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Resolver != s1.Resolver || s2.Store != s1.Store || s2.Tokens != s1.Tokens || s1.Tokens == nil || len(retired) != 0 {
		t.Fatalf("unchanged services rebuilt (resolver kept %v, store kept %v, Bayes tokens kept %v, retired %d)", s2.Resolver == s1.Resolver, s2.Store == s1.Store, s2.Tokens == s1.Tokens, len(retired))
	}
	srv.Reset() // the answer can only come from the cache now
	if txt, err := s2.Resolver.LookupTXT(ctx, "cached.test"); err != nil || len(txt) != 1 || txt[0] != "v=1" {
		t.Fatalf("after reload: %v %v (cache lost)", txt, err)
	}
	if s2.Resolver.Stats().Sent != sent {
		t.Errorf("the cached answer was asked again: %d queries sent, want %d", s2.Resolver.Stats().Sent, sent)
	}

	// [store] changed: a new store and the Bayes tokens over it, the old
	// ones retired; the resolver stays.
	s3, retired, err := BuildServices(load(t, fmt.Sprintf("local_domains = [\"example.org\"]\n[dns]\nservers = [%q]\nattempts = 1\n[store]\nbackend = \"memory\"\ntimeout = \"3s\"\n", srv.Addr)), s2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Resolver != s2.Resolver || s3.Store == s2.Store || s3.Tokens == s2.Tokens || len(retired) != 2 {
		t.Fatalf("[store] change: resolver kept %v, store replaced %v, tokens replaced %v, retired %d (want 2)", s3.Resolver == s2.Resolver, s3.Store != s2.Store, s3.Tokens != s2.Tokens, len(retired))
	}
	for _, c := range retired {
		c.Close()
	}

	// [dns] changed: a new resolver with an empty cache.
	s4, retired, err := BuildServices(load(t, fmt.Sprintf("local_domains = [\"example.org\"]\n[dns]\nservers = [%q]\nattempts = 2\n[store]\nbackend = \"memory\"\ntimeout = \"3s\"\n", srv.Addr)), s3, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s4.Close() })
	if s4.Resolver == s3.Resolver || s4.Store != s3.Store || len(retired) != 1 {
		t.Fatalf("[dns] change: resolver replaced %v, store kept %v, retired %d (want 1)", s4.Resolver != s3.Resolver, s4.Store == s3.Store, len(retired))
	}
	for _, c := range retired {
		c.Close()
	}
}

// Building services and a pipeline starts nothing: the health prober
// reports only after Start (which only the daemon calls).
func TestBuildStartsNothing(t *testing.T) {
	rep := &reporter{}
	cfg := load(t, "[health]\nrelay_hosts = [\"127.0.0.1:1\"]\ninterval = \"1h\"\ntimeout = \"1s\"\n[store]\nbackend = \"memory\"\n")
	s, _, err := BuildServices(cfg, nil, Options{Metrics: rep})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := policy.New(cfg, Modules(s), nil, nil, rep)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if s.Prober == nil {
		t.Fatal("no prober built for an enabled [health]")
	}
	if r := s.Prober.Results(); len(r) != 0 {
		t.Fatalf("the prober ran before Start: %v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Start(ctx)
	rep.wait(t)
}

// reporter is the daemon's metrics as the prober sees them.
type reporter struct {
	mu     sync.Mutex
	rounds int
}

func (*reporter) CheckDone(string, policy.Status, time.Duration) {}
func (*reporter) MessageDone(*policy.Verdict)                    {}
func (r *reporter) HealthResults([]health.Result)                { r.mu.Lock(); r.rounds++; r.mu.Unlock() }

func (r *reporter) wait(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		n := r.rounds
		r.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the started prober never reported")
}

// The anti-virus engines are one service: kept across a reload that leaves
// [virus] and [clamav] alone, rebuilt (and the old ones closed) when an
// engine changes.
func TestReloadVirusEngines(t *testing.T) {
	ic := icaptest.Start(t, icaptest.Options{Preview: -1})
	conf := func(maxSize string) string {
		return fmt.Sprintf("local_domains = [\"example.org\"]\n[store]\nbackend = \"memory\"\n[virus]\nenabled = true\n[[virus.engine]]\ntype = \"clamd\"\naddresses = [\"unix:/nonexistent/clamd.ctl\"]\n[[virus.engine]]\ntype = \"icap\"\nname = \"second\"\naddresses = [%q]\nmax_size = %q\n", ic.URL(), maxSize)
	}
	s1, _, err := BuildServices(load(t, conf("10MB")), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s1.Scanners) != 2 || s1.Scanners[0].Name() != "clamd:clamd1" || s1.Scanners[1].Name() != "icap:second" {
		t.Fatalf("scanners %v", s1.Scanners)
	}
	s2, retired, err := BuildServices(load(t, conf("10MB")+"[score]\nreject = 30.0\n"), s1, Options{})
	if err != nil || len(retired) != 0 || s2.Scanners[1] != s1.Scanners[1] {
		t.Fatalf("unchanged engines rebuilt: %v, retired %d", err, len(retired))
	}
	s3, retired, err := BuildServices(load(t, conf("5MB")), s2, Options{})
	if err != nil || len(retired) != 1 || s3.Scanners[1] == s2.Scanners[1] {
		t.Fatalf("a changed engine kept: %v, retired %d", err, len(retired))
	}
	for _, c := range retired {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
	s3.Close()
	// Both forms at once: the migration error, at build.
	if _, _, err := BuildServices(load(t, conf("5MB")+"[[clamav.server]]\nname = \"old\"\n"), nil, Options{}); err == nil {
		t.Error("[[virus.engine]] and [[clamav.server]] together accepted")
	}
}

// A SIGHUP that changes neither [dkim_sign] nor [dns] keeps the key
// tracker but checks the records again at once: the operator published
// the record and reloads to make the key sign. The check asks the DNS
// server although our cache still holds the NXDOMAIN of the first one
// (an hour's negative TTL). Building alone asks nothing.
func TestReloadRechecksKeyRecords(t *testing.T) {
	srv := dnstest.Start(t)
	srv.SetNegativeTTL(3600)
	key, err := sign.GenerateKey(sign.AlgoEd25519)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "k1.pem")
	if err := sign.WriteKey(file, key); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("[dns]\nservers = [%q]\nattempts = 1\n[dkim_sign]\nenabled = true\n[[dkim_sign.key]]\nname = \"k1\"\ndomain = \"example.org\"\nselector = \"s1\"\nfile = %q\n", srv.Addr, file)
	s1, _, err := BuildServices(load(t, cfg), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s1.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if srv.Queries() != 0 {
		t.Fatalf("building asked DNS %d times", srv.Queries())
	}
	s1.Start(ctx)
	if st := s1.KeyTracker.State("k1"); st.State != sign.RecordMissing {
		t.Fatalf("at start: %+v", st)
	}
	const name = "s1._domainkey.example.org"
	if _, err := s1.Resolver.LookupTXT(ctx, name); err == nil {
		t.Fatal("the record exists before it is published")
	}
	txt, _ := sign.TXTRecord(key.Public())
	srv.AddTXT(name+".", 300, txt)

	s2, retired, err := BuildServices(load(t, cfg), s1, Options{})
	if err != nil || len(retired) != 0 || s2.KeyTracker != s1.KeyTracker {
		t.Fatalf("reload: %v, retired %d, tracker kept %v", err, len(retired), s2.KeyTracker == s1.KeyTracker)
	}
	if st := s2.KeyTracker.State("k1"); st.State != sign.RecordMissing {
		t.Fatalf("checked before Start: %+v", st)
	}
	s2.Start(ctx)
	if st := s2.KeyTracker.State("k1"); st.State != sign.RecordOK || !st.Usable {
		t.Fatalf("after the reload: %+v", st)
	}
	// A second Start of the same set checks nothing more.
	before := srv.QueryCount(name, mdns.TypeTXT)
	s2.Start(ctx)
	if n := srv.QueryCount(name, mdns.TypeTXT); n != before {
		t.Errorf("Start again asked %d more times", n-before)
	}
}
