// Package dnstest is an in-process authoritative-style DNS server for tests,
// built on miekg/dns. It answers like a real recursive resolver would to a
// stub client (RFC 1035, RFC 2308):
//
//   - NXDOMAIN when no record exists at or below a name, NODATA (NOERROR
//     with an empty answer) when the name exists with other types; both carry
//     a SOA record in the authority section (RFC 2308 §3) whose minimum field
//     is the negative TTL;
//   - the RA bit is set on every reply, AA on answers from its zone data;
//   - CNAMEs are followed (within the zone data) and included in the answer;
//   - names can be made to fail with SERVFAIL or REFUSED, or to time out
//     (the query is read and never answered).
//
// Usage:
//
//	s := dnstest.Start(t)                      // UDP and TCP on 127.0.0.1, random port
//	s.Add("example.com. 300 IN TXT \"v=spf1 -all\"")
//	s.Add("mail.example.com. A 192.0.2.1")     // zone-file syntax, TTL optional (default 300)
//	s.SetServFail("broken.example.")
//	s.SetTimeout("slow.example.")              // also applies to names below it
//	s.SetTimeoutExact("example.com.")          // this name only
//	// point a resolver at s.Addr ("127.0.0.1:PORT")
//
// The server stops when the test ends (t.Cleanup). StartServer does the same
// without a testing.TB, for the e2e harness and benchmarks; call Close.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running test DNS server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is "127.0.0.1:PORT", the same port for UDP and TCP.
	Addr string

	udp, tcp *dns.Server

	mu       sync.RWMutex
	rrs      map[string][]dns.RR // owner name (lower case, FQDN) → records
	rcodes   map[string]int
	timeouts map[string]bool
	exact    map[string]bool // timeouts for one name only
	negTTL   uint32

	queries atomic.Int64
	seen    sync.Map // "name/TYPE" → *atomic.Int64
}

// Start starts a server on 127.0.0.1 (UDP and TCP, same random port) and
// stops it when t ends. Records given are added as with Add.
func Start(t testing.TB, records ...string) *Server {
	t.Helper()
	s, err := StartServer()
	if err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddErr(records...); err != nil {
		t.Fatalf("dnstest: %v", err)
	}
	return s
}

// StartServer starts a server without a test; the caller must Close it.
func StartServer() (*Server, error) {
	s := &Server{
		rrs:      map[string][]dns.RR{},
		rcodes:   map[string]int{},
		timeouts: map[string]bool{},
		exact:    map[string]bool{},
		negTTL:   60,
	}
	var pc net.PacketConn
	var l net.Listener
	var err error
	// Find a port free for both UDP and TCP.
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("dnstest: %w", err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dnstest: %w", err)
	}
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	var started sync.WaitGroup
	started.Add(2)
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: started.Done}
	s.tcp = &dns.Server{Listener: l, Handler: h, NotifyStartedFunc: started.Done}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	started.Wait()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	s.udp.Shutdown()
	s.tcp.Shutdown()
	return nil
}

// Add adds records in zone-file syntax ("name [ttl] [IN] TYPE rdata").
// Names are taken as fully qualified. It panics on a syntax error (tests
// give literal records); use AddErr for data from files.
func (s *Server) Add(records ...string) {
	if err := s.AddErr(records...); err != nil {
		panic(err)
	}
}

// AddErr is Add returning the parse error.
func (s *Server) AddErr(records ...string) error {
	for _, r := range records {
		rr, err := dns.NewRR("$TTL 300\n$ORIGIN .\n" + r)
		if err != nil {
			return fmt.Errorf("dnstest: %q: %w", r, err)
		}
		if rr == nil {
			continue
		}
		s.AddRR(rr)
	}
	return nil
}

// AddRR adds parsed records.
func (s *Server) AddRR(rrs ...dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		n := key(rr.Header().Name)
		rr.Header().Name = n
		s.rrs[n] = append(s.rrs[n], rr)
	}
}

// AddTXT adds a TXT record made of the given strings (each ≤ 255 bytes,
// split automatically when longer), for data that zone syntax makes awkward.
func (s *Server) AddTXT(name string, ttl uint32, strs ...string) {
	var parts []string
	for _, x := range strs {
		for len(x) > 255 {
			parts = append(parts, x[:255])
			x = x[255:]
		}
		parts = append(parts, x)
	}
	s.AddRR(&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: parts})
}

// Remove deletes every record at name (of any type when no type is given).
func (s *Server) Remove(name string, types ...uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := key(name)
	if len(types) == 0 {
		delete(s.rrs, n)
		return
	}
	var keep []dns.RR
	for _, rr := range s.rrs[n] {
		drop := false
		for _, t := range types {
			drop = drop || rr.Header().Rrtype == t
		}
		if !drop {
			keep = append(keep, rr)
		}
	}
	s.rrs[n] = keep
}

// Reset removes all records and failure settings.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rrs = map[string][]dns.RR{}
	s.rcodes = map[string]int{}
	s.timeouts = map[string]bool{}
	s.exact = map[string]bool{}
}

// SetServFail makes queries for name and the names below it fail with SERVFAIL.
func (s *Server) SetServFail(name string) { s.SetRcode(name, dns.RcodeServerFailure) }

// SetRcode makes queries for name and the names below it answer with rcode
// (e.g. dns.RcodeRefused); dns.RcodeSuccess clears it.
func (s *Server) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, key(name))
	} else {
		s.rcodes[key(name)] = rcode
	}
}

// SetTimeout makes queries for name and the names below it go unanswered.
// "." makes the whole server silent.
func (s *Server) SetTimeout(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeouts[key(name)] = true
}

// SetTimeoutExact makes queries for name only (not the names below it) go
// unanswered.
func (s *Server) SetTimeoutExact(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exact[key(name)] = true
}

// ClearTimeout undoes SetTimeout and SetTimeoutExact for name.
func (s *Server) ClearTimeout(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.timeouts, key(name))
	delete(s.exact, key(name))
}

// SetNegativeTTL sets the SOA minimum (the negative-caching TTL) of replies
// without answers; default 60 s.
func (s *Server) SetNegativeTTL(ttl uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.negTTL = ttl
}

// Queries is the number of queries received so far.
func (s *Server) Queries() int64 { return s.queries.Load() }

// QueryCount is how many queries for name and type (e.g. dns.TypeTXT) were received.
func (s *Server) QueryCount(name string, qtype uint16) int64 {
	if v, ok := s.seen.Load(key(name) + "/" + dns.TypeToString[qtype]); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// key is the canonical form of a name: lower case, fully qualified, in the
// presentation form miekg/dns gives names read off the wire (special
// characters escaped), so that names from records and from queries match.
func key(name string) string {
	n := strings.ToLower(dns.Fqdn(name))
	buf := make([]byte, 1024)
	if off, err := dns.PackDomainName(n, buf, 0, nil, false); err == nil {
		if u, _, err := dns.UnpackDomainName(buf[:off], 0); err == nil {
			return strings.ToLower(u)
		}
	}
	return n
}

// matchUp reports whether name or one of its parents is in set.
func matchUp[V any](set map[string]V, name string) (V, bool) {
	for {
		if v, ok := set[name]; ok {
			return v, true
		}
		if name == "." {
			var zero V
			return zero, false
		}
		i := strings.IndexByte(name, '.')
		if i < 0 || i == len(name)-1 {
			name = "."
		} else {
			name = name[i+1:]
		}
	}
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := key(q.Name)
	c, _ := s.seen.LoadOrStore(name+"/"+dns.TypeToString[q.Qtype], new(atomic.Int64))
	c.(*atomic.Int64).Add(1)

	s.mu.RLock()
	if _, ok := matchUp(s.timeouts, name); ok || s.exact[name] {
		s.mu.RUnlock()
		return // never answer
	}
	if rc, ok := matchUp(s.rcodes, name); ok {
		s.mu.RUnlock()
		m.Rcode = rc
		w.WriteMsg(m)
		return
	}
	m.Authoritative = true
	cur := name
	for range 8 { // follow CNAMEs within our data
		var cname *dns.CNAME
		found := false
		for _, rr := range s.rrs[cur] {
			h := rr.Header()
			if h.Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
				m.Answer = append(m.Answer, dns.Copy(rr))
				found = true
			} else if cn, ok := rr.(*dns.CNAME); ok && q.Qtype != dns.TypeCNAME {
				cname = cn
			}
		}
		if found || cname == nil {
			break
		}
		m.Answer = append(m.Answer, dns.Copy(cname))
		cur = key(cname.Target)
	}
	if len(m.Answer) == 0 || m.Answer[len(m.Answer)-1].Header().Rrtype == dns.TypeCNAME {
		if !s.exists(cur) {
			m.Rcode = dns.RcodeNameError
		}
		// RFC 2308 §3: negative answers carry the SOA in the authority section.
		m.Ns = []dns.RR{s.soa(cur)}
	}
	s.mu.RUnlock()
	if w.LocalAddr().Network() == "udp" {
		// Truncate like a real server so that clients retry over TCP.
		size := 512
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
			m.SetEdns0(o.UDPSize(), false)
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// exists reports whether name owns records or has names below it (an empty
// non-terminal is NODATA, not NXDOMAIN: RFC 8020).
func (s *Server) exists(name string) bool {
	if len(s.rrs[name]) > 0 {
		return true
	}
	suffix := "." + name
	for n, rrs := range s.rrs {
		if len(rrs) > 0 && strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

// soa returns a SOA for the negative answer about name: owned by the name's
// last two labels (a plausible zone apex).
func (s *Server) soa(name string) dns.RR {
	labels := dns.SplitDomainName(name)
	zone := "."
	if len(labels) >= 2 {
		zone = dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
	} else if len(labels) == 1 {
		zone = dns.Fqdn(labels[0])
	}
	ns, mbox := "ns."+zone, "hostmaster."+zone
	if zone == "." {
		ns, mbox = "ns.invalid.", "hostmaster.invalid."
	}
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.negTTL},
		Ns:      ns,
		Mbox:    mbox,
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400,
		Minttl: s.negTTL,
	}
}
