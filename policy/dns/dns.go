// Package dns is the caching stub resolver shared by every check that needs
// DNS (SPF, DKIM, DMARC, DNSBL). It sends recursive queries (RD set) to the
// configured upstream servers with miekg/dns and keeps a bounded cache:
//
//   - positive answers for the smallest TTL of the answer RRset (RFC 1035
//     §3.2.1, RFC 2181 §5.2), capped by max_ttl;
//   - negative answers (NXDOMAIN and NODATA) for the SOA minimum taken from
//     the authority section, as RFC 2308 §5 says, or a short default;
//   - temporary failures (timeouts, SERVFAIL, REFUSED, network errors) are
//     never cached, so they are retried by the next message.
//
// Concurrent identical queries are coalesced: one goes to the network, the
// others wait for it, each within its own context. Errors are *net.DNSError
// so that callers and libraries (blitiri.com.ar/go/spf, go-msgauth) can tell
// a permanent "no such name" (IsNotFound) from a temporary failure
// (IsTimeout, IsTemporary): RFC 7208 §2.6.6 temperror and RFC 7489 §6.6.3
// depend on that split.
//
// The daemon builds one Resolver from the [dns] section (Section, ConfigOf,
// New) and hands it to the checks that need it; it and its cache outlive
// reloads that leave [dns] unchanged.
package dns

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/mailwarden/mailwarden/policy"
)

// Config is the [dns] section.
type Config struct {
	// Servers are upstream recursive resolvers, "host:port" or "host"
	// (port 53). Empty: the nameservers of resolv_conf.
	Servers []string `toml:"servers"`
	// ResolvConf is read when Servers is empty.
	ResolvConf string `toml:"resolv_conf"`
	// Timeout bounds one query to one server.
	Timeout policy.Duration `toml:"timeout"`
	// Attempts is how many times each server is tried.
	Attempts int `toml:"attempts"`
	// CacheSize bounds the cache (entries); 0 disables caching.
	CacheSize int `toml:"cache_size"`
	// MaxTTL caps how long any answer is cached.
	MaxTTL policy.Duration `toml:"max_ttl"`
	// NegativeTTL is used for NXDOMAIN/NODATA answers without a SOA, and
	// caps the SOA minimum.
	NegativeTTL policy.Duration `toml:"negative_ttl"`
}

// DefaultConfig returns the defaults of the [dns] section.
func DefaultConfig() *Config {
	return &Config{
		ResolvConf:  "/etc/resolv.conf",
		Timeout:     policy.Duration(3 * time.Second),
		Attempts:    2,
		CacheSize:   10000,
		MaxTTL:      policy.Duration(time.Hour),
		NegativeTTL: policy.Duration(5 * time.Minute),
	}
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	for i, s := range c.Servers {
		if _, err := serverAddr(s); err != nil {
			errs = append(errs, policy.KeyErr("servers", "entry %d: %v", i+1, err))
		}
	}
	if c.Timeout.D() <= 0 {
		errs = append(errs, policy.KeyErr("timeout", "must be positive"))
	}
	if c.Attempts < 1 || c.Attempts > 10 {
		errs = append(errs, policy.KeyErr("attempts", "must be between 1 and 10"))
	}
	if c.CacheSize < 0 {
		errs = append(errs, policy.KeyErr("cache_size", "must not be negative"))
	}
	if c.MaxTTL.D() < 0 || c.NegativeTTL.D() < 0 {
		errs = append(errs, policy.KeyErr("max_ttl", "TTLs must not be negative"))
	}
	if len(c.Servers) == 0 && c.ResolvConf == "" {
		errs = append(errs, policy.KeyErr("servers", "set servers or resolv_conf"))
	}
	return errors.Join(errs...)
}

func serverAddr(s string) (string, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("dns: %q is not an address or address:port", s)
	}
	return s, nil
}

// SectionName is the resolver's config section.
const SectionName = "dns"

// Section is the [dns] section. It builds no step: the daemon builds one
// Resolver from it (New) and hands it to the checks that need it; the
// resolver and its cache outlive reloads that leave [dns] unchanged.
func Section() policy.Module {
	return policy.Module{Name: SectionName, Default: func() any { return DefaultConfig() }}
}

// ConfigOf returns the [dns] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, SectionName); c != nil {
		return c
	}
	return DefaultConfig()
}

// Resolver is a caching stub resolver; safe for concurrent use.
type Resolver struct {
	servers  []string
	timeout  time.Duration
	attempts int
	maxTTL   time.Duration
	negTTL   time.Duration
	cache    *cache
	now      func() time.Time

	mu       sync.Mutex
	inflight map[qkey]*call

	stats struct{ lookups, hits, coalesced, sent, failures atomic.Int64 }
}

// Stats are the resolver's counters since it was built.
type Stats struct {
	Lookups   int64 // calls to Query (every Lookup* method)
	CacheHits int64 // answered from the cache
	Coalesced int64 // joined an identical query in flight
	Sent      int64 // network exchanges (one per lookup that went out)
	Failures  int64 // temporary failures (timeouts, SERVFAIL, network)
}

// Stats returns the counters (for metrics and health checks).
func (r *Resolver) Stats() Stats {
	return Stats{
		Lookups:   r.stats.lookups.Load(),
		CacheHits: r.stats.hits.Load(),
		Coalesced: r.stats.coalesced.Load(),
		Sent:      r.stats.sent.Load(),
		Failures:  r.stats.failures.Load(),
	}
}

type qkey struct {
	name  string
	qtype uint16
}

type call struct {
	done chan struct{}
	ans  answer
	err  error
}

// answer is what the cache holds: the RRs of the answer section (CNAMEs
// included) or a negative result.
type answer struct {
	rrs      []dns.RR
	rcode    int // dns.RcodeSuccess or dns.RcodeNameError
	server   string
	expires  time.Time
	notFound bool // NXDOMAIN or NODATA
}

// New builds a resolver from a config (nil: defaults).
func New(cfg *Config) (*Resolver, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	r := &Resolver{
		timeout:  cfg.Timeout.D(),
		attempts: max(cfg.Attempts, 1),
		maxTTL:   cfg.MaxTTL.D(),
		negTTL:   cfg.NegativeTTL.D(),
		cache:    newCache(cfg.CacheSize),
		now:      time.Now,
		inflight: map[qkey]*call{},
	}
	if r.timeout <= 0 {
		r.timeout = 3 * time.Second
	}
	for _, s := range cfg.Servers {
		a, err := serverAddr(s)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, a)
	}
	if len(r.servers) == 0 {
		cc, err := dns.ClientConfigFromFile(cfg.ResolvConf)
		if err == nil {
			for _, s := range cc.Servers {
				r.servers = append(r.servers, net.JoinHostPort(s, cc.Port))
			}
		}
		if len(r.servers) == 0 {
			// Like the C library: no resolv.conf means a local resolver.
			r.servers = []string{"127.0.0.1:53", "[::1]:53"}
		}
	}
	return r, nil
}

// Servers returns the upstream servers in use.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// Close releases nothing (no sockets are kept); it exists so that the
// pipeline's shared services can be closed uniformly.
func (r *Resolver) Close() error { return nil }

// Probe asks every upstream server for the root's NS records, bypassing
// the cache, and returns the first failure (for health checks). A server
// that answers at all, even with an error code other than SERVFAIL, is up.
func (r *Resolver) Probe(ctx context.Context) error {
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	m.RecursionDesired = true
	for _, srv := range r.servers {
		resp, err := r.ask(ctx, m, srv)
		if err != nil {
			return fmt.Errorf("dns: probe %s: %w", srv, err)
		}
		if resp.Rcode == dns.RcodeServerFailure {
			return fmt.Errorf("dns: probe %s: SERVFAIL", srv)
		}
	}
	return nil
}

// Flush empties the cache.
func (r *Resolver) Flush() { r.cache.flush() }

// Error texts of the *net.DNSError values we return.
const (
	errNoSuchHost = "no such host"
	errNoRecords  = "no records of this type"
	errServFail   = "server misbehaving"
	errTimeout    = "i/o timeout"
	errBadName    = "invalid domain name"
)

// IsNotFound reports whether err says the name or the records do not exist
// (a permanent, cacheable fact).
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// IsTemporary reports whether err is a temporary failure (timeout, SERVFAIL,
// network error, cancelled context): worth retrying later.
func IsTemporary(err error) bool {
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.IsTimeout || de.IsTemporary
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

func dnsErr(text, name, server string, temporary, timeout, notFound bool) *net.DNSError {
	return &net.DNSError{Err: text, Name: name, Server: server, IsTemporary: temporary, IsTimeout: timeout, IsNotFound: notFound}
}

// Query returns the answer RRs for name and type (CNAMEs included, in
// order). A missing name or type is a *net.DNSError with IsNotFound.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	return r.query(ctx, name, qtype, true)
}

// Fresh is a view of a Resolver that asks the servers, never the cache
// (the answers still go into the cache). It is for checks whose point is
// to see a change an operator just made: a DKIM key record published a
// minute ago must not stay hidden behind a cached NXDOMAIN for the SOA
// minimum. A recursive resolver between us and the authoritative
// servers may still have the old answer cached.
type Fresh struct{ r *Resolver }

// Fresh returns the uncached view of r.
func (r *Resolver) Fresh() Fresh { return Fresh{r} }

// LookupTXT is Resolver.LookupTXT without the cache.
func (f Fresh) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := f.r.query(ctx, name, dns.TypeTXT, false)
	if err != nil {
		return nil, err
	}
	return txtOf(rrs), nil
}

// query answers from the cache when cached is set and it has the answer,
// else from the servers (identical queries in flight are asked once).
func (r *Resolver) query(ctx context.Context, name string, qtype uint16, cached bool) ([]dns.RR, error) {
	name = strings.ToLower(dns.Fqdn(strings.TrimSpace(name)))
	if _, ok := dns.IsDomainName(name); !ok || len(name) > 254 || strings.Contains(name, "..") {
		return nil, dnsErr(errBadName, name, "", false, false, true)
	}
	name = canonical(name)
	r.stats.lookups.Add(1)
	k := qkey{name, qtype}
	now := r.now()
	if cached {
		if a, ok := r.cache.get(k, now); ok {
			r.stats.hits.Add(1)
			return a.result(name)
		}
	}
	r.mu.Lock()
	c, ok := r.inflight[k]
	if ok {
		r.stats.coalesced.Add(1)
	} else {
		r.stats.sent.Add(1)
		c = &call{done: make(chan struct{})}
		r.inflight[k] = c
		// The network query is shared, so it must not die with the first
		// caller's context; it is bounded by timeout × attempts × servers.
		go func() {
			c.ans, c.err = r.exchange(context.WithoutCancel(ctx), name, qtype)
			if c.err != nil {
				r.stats.failures.Add(1)
			}
			if c.err == nil && r.cache != nil {
				r.cache.put(k, c.ans)
			}
			r.mu.Lock()
			delete(r.inflight, k)
			r.mu.Unlock()
			close(c.done)
		}()
	}
	r.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, dnsErr(ctx.Err().Error(), name, "", true, true, false)
	}
	if c.err != nil {
		return nil, c.err
	}
	return c.ans.result(name)
}

func (a answer) result(name string) ([]dns.RR, error) {
	if a.notFound {
		text := errNoRecords
		if a.rcode == dns.RcodeNameError {
			text = errNoSuchHost
		}
		return nil, dnsErr(text, name, a.server, false, false, true)
	}
	return a.rrs, nil
}

// exchange asks the servers in turn until one gives a definite answer.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (answer, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	var last *net.DNSError
	for range r.attempts {
		for _, srv := range r.servers {
			resp, err := r.ask(ctx, m, srv)
			if err != nil {
				var ne net.Error
				timeout := errors.As(err, &ne) && ne.Timeout()
				text := err.Error()
				if timeout {
					text = errTimeout
				}
				last = dnsErr(text, name, srv, true, timeout, false)
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return r.toAnswer(resp, name, qtype, srv), nil
			default:
				// SERVFAIL, REFUSED, NOTIMP...: another server may do better.
				last = dnsErr(errServFail+" ("+dns.RcodeToString[resp.Rcode]+")", name, srv, true, false, false)
			}
		}
	}
	if last == nil {
		last = dnsErr("no servers", name, "", true, false, false)
	}
	return answer{}, last
}

func (r *Resolver) ask(ctx context.Context, m *dns.Msg, srv string) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: 4096}
	resp, _, err := c.ExchangeContext(ctx, m, srv)
	if err == nil && resp.Truncated {
		// RFC 7766 §5: retry over TCP when the UDP answer was truncated.
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, srv)
	}
	if err == nil && resp.Id != m.Id {
		err = errors.New("dns: reply id mismatch")
	}
	return resp, err
}

// toAnswer picks the RRs that answer the question, following the CNAME
// chain inside the answer section (RFC 1034 §3.6.2), and computes the TTL.
func (r *Resolver) toAnswer(resp *dns.Msg, name string, qtype uint16, srv string) answer {
	now := r.now()
	a := answer{rcode: resp.Rcode, server: srv}
	target := name
	var ttl uint32 = 1<<31 - 1
	for range 16 {
		progressed := false
		for _, rr := range resp.Answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, target) || h.Class != dns.ClassINET {
				continue
			}
			if h.Rrtype == qtype {
				a.rrs = append(a.rrs, rr)
				ttl = min(ttl, h.Ttl)
			} else if cn, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME && !progressed {
				ttl = min(ttl, h.Ttl)
				target = strings.ToLower(cn.Target)
				progressed = true
			}
		}
		if len(a.rrs) > 0 || !progressed {
			break
		}
	}
	if len(a.rrs) > 0 && resp.Rcode == dns.RcodeSuccess {
		a.rcode = dns.RcodeSuccess
		d := time.Duration(ttl) * time.Second
		if r.maxTTL > 0 && d > r.maxTTL {
			d = r.maxTTL
		}
		a.expires = now.Add(d)
		return a
	}
	// Negative answer. RFC 2308 §5: cache it for the smaller of the SOA's
	// TTL and its minimum field.
	a.rrs = nil
	a.notFound = true
	d := r.negTTL
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			d = min(d, time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second)
		}
	}
	a.expires = now.Add(d)
	return a
}

// LookupTXT returns the TXT records of name, each the concatenation of its
// character-strings (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	return txtOf(rrs), nil
}

func txtOf(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}

// LookupA returns the IPv4 addresses of name (for DNSBL queries such as
// 4.3.2.1.zen.example).
func (r *Resolver) LookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	return r.lookupAddrs(ctx, name, dns.TypeA)
}

// LookupAAAA returns the IPv6 addresses of name.
func (r *Resolver) LookupAAAA(ctx context.Context, name string) ([]netip.Addr, error) {
	return r.lookupAddrs(ctx, name, dns.TypeAAAA)
}

func (r *Resolver) lookupAddrs(ctx context.Context, name string, qtype uint16) ([]netip.Addr, error) {
	rrs, err := r.Query(ctx, name, qtype)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
				out = append(out, a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(v.AAAA); ok {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// LookupIP returns the IPv4 and IPv6 addresses of name, asked concurrently.
// It fails only when neither lookup gave an address; a temporary failure
// wins over "not found".
func (r *Resolver) LookupIP(ctx context.Context, name string) ([]netip.Addr, error) {
	var v6 []netip.Addr
	var err6 error
	done := make(chan struct{})
	go func() {
		v6, err6 = r.LookupAAAA(ctx, name)
		close(done)
	}()
	v4, err4 := r.LookupA(ctx, name)
	<-done
	out := append(v4, v6...)
	if len(out) > 0 {
		return out, nil
	}
	switch {
	case err4 != nil && IsTemporary(err4):
		return nil, err4
	case err6 != nil && IsTemporary(err6):
		return nil, err6
	case err4 != nil:
		return nil, err4
	case err6 != nil:
		return nil, err6
	}
	return nil, dnsErr(errNoRecords, name, "", false, false, true)
}

// LookupHost is LookupIP (the name the DNSBL code may prefer).
func (r *Resolver) LookupHost(ctx context.Context, name string) ([]netip.Addr, error) {
	return r.LookupIP(ctx, name)
}

// LookupIPAddr is LookupIP in the net.Resolver shape (for the SPF library).
func (r *Resolver) LookupIPAddr(ctx context.Context, name string) ([]net.IPAddr, error) {
	ips, err := r.LookupIP(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]net.IPAddr, len(ips))
	for i, ip := range ips {
		out[i] = net.IPAddr{IP: net.IP(ip.AsSlice())}
	}
	return out, nil
}

// LookupMX returns the MX records of name sorted by preference.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.Query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []*net.MX
	for _, rr := range rrs {
		if mx, ok := rr.(*dns.MX); ok {
			out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pref < out[j].Pref })
	return out, nil
}

// LookupAddr returns the PTR names of an IP address (reverse DNS).
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	arpa, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, dnsErr("unrecognized address", addr, "", false, false, false)
	}
	rrs, err := r.Query(ctx, arpa, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, p.Ptr)
		}
	}
	return out, nil
}

// canonical puts a name in the presentation form miekg/dns uses for names
// read off the wire (special characters escaped, e.g. a space as "\ "), so
// that answer owner names compare equal to the question.
func canonical(name string) string {
	var buf [512]byte
	off, err := dns.PackDomainName(name, buf[:], 0, nil, false)
	if err != nil {
		return name
	}
	u, _, err := dns.UnpackDomainName(buf[:off], 0)
	if err != nil {
		return name
	}
	return strings.ToLower(u)
}

// cache is a size-bounded LRU of answers.
type cache struct {
	mu   sync.Mutex
	size int
	ll   *list.List
	m    map[qkey]*list.Element
}

type entry struct {
	k qkey
	a answer
}

func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	return &cache{size: size, ll: list.New(), m: map[qkey]*list.Element{}}
}

func (c *cache) get(k qkey, now time.Time) (answer, bool) {
	if c == nil {
		return answer{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return answer{}, false
	}
	en := e.Value.(*entry)
	if !now.Before(en.a.expires) {
		c.ll.Remove(e)
		delete(c.m, k)
		return answer{}, false
	}
	c.ll.MoveToFront(e)
	return en.a, true
}

func (c *cache) put(k qkey, a answer) {
	if c == nil || a.expires.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		e.Value.(*entry).a = a
		c.ll.MoveToFront(e)
		return
	}
	c.m[k] = c.ll.PushFront(&entry{k, a})
	for c.ll.Len() > c.size {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*entry).k)
	}
}

func (c *cache) flush() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	clear(c.m)
}

// Len is the number of cached answers.
func (r *Resolver) cacheLen() int {
	if r.cache == nil {
		return 0
	}
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	return r.cache.ll.Len()
}
