package dns

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
)

// newTest gives a resolver with a short timeout, for the tests that wait
// for one to run out.
func newTest(t *testing.T, s *dnstest.Server) *Resolver {
	t.Helper()
	return newTestTimeout(t, s, 200*time.Millisecond)
}

// newTestTimeout is for tests that expect answers: a loaded CI machine
// (race detector, parallel packages) can take longer than 200 ms.
func newTestTimeout(t *testing.T, s *dnstest.Server, d time.Duration) *Resolver {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Servers = []string{s.Addr}
	cfg.Timeout = policy.Duration(d)
	cfg.Attempts = 1
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLookups(t *testing.T) {
	s := dnstest.Start(t,
		`example.com. 300 TXT "v=spf1 " "ip4:192.0.2.0/24 -all"`,
		`example.com. MX 20 mx2.example.com.`,
		`example.com. MX 10 mx1.example.com.`,
		`mx1.example.com. A 192.0.2.1`,
		`mx1.example.com. AAAA 2001:db8::1`,
		`www.example.com. CNAME mx1.example.com.`,
		`2.0.0.127.zen.example. A 127.0.0.2`,
		`1.2.0.192.in-addr.arpa. PTR mx1.example.com.`,
	)
	r := newTestTimeout(t, s, 5*time.Second)
	ctx := context.Background()
	txt, err := r.LookupTXT(ctx, "Example.COM")
	if err != nil || len(txt) != 1 || txt[0] != "v=spf1 ip4:192.0.2.0/24 -all" {
		t.Errorf("TXT = %q, %v", txt, err)
	}
	mx, err := r.LookupMX(ctx, "example.com")
	if err != nil || len(mx) != 2 || mx[0].Host != "mx1.example.com." || mx[0].Pref != 10 {
		t.Errorf("MX = %v, %v", mx, err)
	}
	ips, err := r.LookupIP(ctx, "www.example.com")
	if err != nil || len(ips) != 2 || ips[0].String() != "192.0.2.1" || ips[1].String() != "2001:db8::1" {
		t.Errorf("IP = %v, %v", ips, err)
	}
	a, err := r.LookupA(ctx, "2.0.0.127.zen.example")
	if err != nil || len(a) != 1 || a[0].String() != "127.0.0.2" {
		t.Errorf("A = %v, %v", a, err)
	}
	ptr, err := r.LookupAddr(ctx, "192.0.2.1")
	if err != nil || len(ptr) != 1 || ptr[0] != "mx1.example.com." {
		t.Errorf("PTR = %v, %v", ptr, err)
	}
	ipa, err := r.LookupIPAddr(ctx, "mx1.example.com")
	if err != nil || len(ipa) != 2 {
		t.Errorf("IPAddr = %v, %v", ipa, err)
	}
}

func TestNegativeAndErrors(t *testing.T) {
	s := dnstest.Start(t, `host.example. A 192.0.2.1`)
	s.SetServFail("broken.example")
	s.SetTimeout("slow.example")
	r := newTest(t, s)
	ctx := context.Background()

	_, err := r.LookupTXT(ctx, "nx.example")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound || de.Temporary() || !IsNotFound(err) || IsTemporary(err) {
		t.Errorf("NXDOMAIN: %#v", err)
	}
	_, err = r.LookupTXT(ctx, "host.example") // NODATA
	if !IsNotFound(err) || IsTemporary(err) {
		t.Errorf("NODATA: %v", err)
	}
	_, err = r.LookupTXT(ctx, "a.broken.example")
	if !errors.As(err, &de) || !de.IsTemporary || de.IsNotFound || !IsTemporary(err) {
		t.Errorf("SERVFAIL: %#v", err)
	}
	start := time.Now()
	_, err = r.LookupTXT(ctx, "slow.example")
	if !errors.As(err, &de) || !de.IsTimeout || !de.Temporary() {
		t.Errorf("timeout: %#v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// The caller's own deadline is honoured and is temporary.
	r2 := newTest(t, s)
	r2.timeout = 5 * time.Second
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = r2.LookupTXT(cctx, "slow.example")
	if !IsTemporary(err) {
		t.Errorf("ctx deadline: %v", err)
	}
	// Invalid names are permanent, no query sent.
	n := s.Queries()
	_, err = r.LookupTXT(ctx, strings.Repeat("a", 70)+".example")
	if !IsNotFound(err) || s.Queries() != n {
		t.Errorf("bad name: %v (queries %d → %d)", err, n, s.Queries())
	}
}

func TestCache(t *testing.T) {
	s := dnstest.Start(t, `a.example. 100 TXT "one"`)
	s.SetNegativeTTL(30)
	r := newTest(t, s)
	now := time.Unix(1_000_000, 0)
	r.now = func() time.Time { return now }
	ctx := context.Background()
	for range 3 {
		if txt, err := r.LookupTXT(ctx, "a.example"); err != nil || txt[0] != "one" {
			t.Fatal(txt, err)
		}
		r.LookupTXT(ctx, "nx.example")
	}
	if n := s.QueryCount("a.example", mdns.TypeTXT); n != 1 {
		t.Errorf("positive: %d queries, want 1 (cached)", n)
	}
	if n := s.QueryCount("nx.example", mdns.TypeTXT); n != 1 {
		t.Errorf("negative: %d queries, want 1 (cached per SOA minimum)", n)
	}
	now = now.Add(31 * time.Second) // negative expired, positive not
	r.LookupTXT(ctx, "a.example")
	r.LookupTXT(ctx, "nx.example")
	if a, n := s.QueryCount("a.example", mdns.TypeTXT), s.QueryCount("nx.example", mdns.TypeTXT); a != 1 || n != 2 {
		t.Errorf("after 31s: a=%d nx=%d, want 1 and 2", a, n)
	}
	now = now.Add(70 * time.Second)
	r.LookupTXT(ctx, "a.example")
	if a := s.QueryCount("a.example", mdns.TypeTXT); a != 2 {
		t.Errorf("after TTL: a=%d, want 2", a)
	}
	// Temporary failures are not cached.
	s.SetServFail("bad.example")
	r.LookupTXT(ctx, "bad.example")
	r.LookupTXT(ctx, "bad.example")
	if n := s.QueryCount("bad.example", mdns.TypeTXT); n != 2 {
		t.Errorf("SERVFAIL cached: %d queries", n)
	}
}

// TestFresh: the uncached view asks the server although the cache holds
// an NXDOMAIN, sees a record published since, and leaves it in the cache
// for the cached lookups.
func TestFresh(t *testing.T) {
	s := dnstest.Start(t)
	s.SetNegativeTTL(3600)
	r := newTest(t, s)
	now := time.Unix(1_000_000, 0)
	r.now = func() time.Time { return now }
	ctx := context.Background()
	const name = "sel._domainkey.example.org"
	if _, err := r.LookupTXT(ctx, name); !IsNotFound(err) {
		t.Fatalf("before: %v", err)
	}
	s.AddTXT(name+".", 300, "v=DKIM1; p=abc")
	if _, err := r.LookupTXT(ctx, name); !IsNotFound(err) {
		t.Fatalf("cached NXDOMAIN expected, got %v", err)
	}
	txt, err := r.Fresh().LookupTXT(ctx, name)
	if err != nil || len(txt) != 1 || txt[0] != "v=DKIM1; p=abc" {
		t.Fatalf("fresh: %v %v", txt, err)
	}
	if n := s.QueryCount(name, mdns.TypeTXT); n != 2 {
		t.Errorf("%d queries, want 2 (the first, the fresh one)", n)
	}
	if txt, err := r.LookupTXT(ctx, name); err != nil || len(txt) != 1 {
		t.Errorf("the fresh answer was not cached: %v %v", txt, err)
	}
	if n := s.QueryCount(name, mdns.TypeTXT); n != 2 {
		t.Errorf("%d queries after the cached lookup, want 2", n)
	}
}

func TestCacheBound(t *testing.T) {
	s := dnstest.Start(t)
	cfg := DefaultConfig()
	cfg.Servers = []string{s.Addr}
	cfg.CacheSize = 10
	r, _ := New(cfg)
	for i := range 50 {
		r.LookupTXT(context.Background(), string(rune('a'+i%26))+strings.Repeat("x", i)+".example")
	}
	if n := r.cacheLen(); n != 10 {
		t.Errorf("cache holds %d entries, want 10", n)
	}
}

func TestCoalesce(t *testing.T) {
	s := dnstest.Start(t, `c.example. TXT "x"`)
	s.SetTimeout("c.example") // hold the first query so that others pile up
	r := newTest(t, s)
	r.timeout = 300 * time.Millisecond
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.LookupTXT(context.Background(), "c.example")
		}()
	}
	time.Sleep(100 * time.Millisecond)
	s.ClearTimeout("c.example")
	wg.Wait()
	if n := s.QueryCount("c.example", mdns.TypeTXT); n > 2 {
		t.Errorf("%d queries for 20 concurrent lookups", n)
	}
	if st := r.Stats(); st.Lookups != 20 || st.Coalesced+st.Sent+st.CacheHits != 20 || st.Coalesced < 18 {
		t.Errorf("stats %+v", st)
	}
}

func TestHugeAnswer(t *testing.T) {
	s := dnstest.Start(t)
	for i := range 300 {
		s.AddTXT("many.example", 300, strings.Repeat("y", 150)+string(rune('A'+i%26))+strings.Repeat("z", i%7))
	}
	s.AddTXT("long.example", 300, strings.Repeat("v", 4000))
	r := newTest(t, s)
	txt, err := r.LookupTXT(context.Background(), "long.example")
	if err != nil || len(txt) != 1 || len(txt[0]) != 4000 {
		t.Errorf("long TXT: %d, %v", len(txt), err)
	}
	txt, err = r.LookupTXT(context.Background(), "many.example")
	if err != nil && !IsTemporary(err) {
		t.Errorf("many TXT: %v", err)
	}
	t.Logf("many.example: %d records, err %v", len(txt), err)
}

func TestConfig(t *testing.T) {
	c := DefaultConfig()
	c.Servers = []string{"127.0.0.1:5353", "::1", "10.0.0.1", "bogus"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "entry 4") {
		t.Errorf("Validate = %v", err)
	}
	c.Servers = c.Servers[:3]
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := New(c)
	if err != nil || strings.Join(r.Servers(), ",") != "127.0.0.1:5353,[::1]:53,10.0.0.1:53" {
		t.Errorf("servers %v %v", r.Servers(), err)
	}
	d, err := New(DefaultConfig())
	if err != nil || len(d.Servers()) == 0 {
		t.Errorf("default servers %v %v", d.Servers(), err)
	}
}

func TestSection(t *testing.T) {
	cfg, err := policy.Load("t.toml", []byte("[dns]\nservers = [\"127.0.0.1:5300\"]\ncache_size = 5\n"), []policy.Module{Section()})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := New(ConfigOf(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if r1.Servers()[0] != "127.0.0.1:5300" || r1.cache.size != 5 {
		t.Errorf("ConfigOf: %v", r1.Servers())
	}
	if c := ConfigOf(nil); c.CacheSize != DefaultConfig().CacheSize {
		t.Errorf("ConfigOf(nil) = %+v, want the defaults", c)
	}
	if _, err := policy.Load("t.toml", []byte("[dns]\nservrs = []\n"), []policy.Module{Section()}); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestProbe(t *testing.T) {
	s := dnstest.Start(t)
	r := newTest(t, s)
	if err := r.Probe(context.Background()); err != nil {
		t.Errorf("probe: %v", err)
	}
	s.SetServFail(".")
	if err := r.Probe(context.Background()); err == nil {
		t.Error("SERVFAIL not reported")
	}
	s.SetTimeout(".")
	if err := r.Probe(context.Background()); err == nil {
		t.Error("timeout not reported")
	}
}
