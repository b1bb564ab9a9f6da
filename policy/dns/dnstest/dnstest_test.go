package dnstest

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func ask(t *testing.T, s *Server, net, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net, Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestAnswers(t *testing.T) {
	s := Start(t,
		`example.com. 120 IN TXT "v=spf1 -all"`,
		`mail.example.com A 192.0.2.1`,
		`alias.example.com CNAME mail.example.com.`,
		`a.b.deep.example.com A 192.0.2.9`,
	)
	r := ask(t, s, "udp", "EXAMPLE.com", dns.TypeTXT)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.RecursionAvailable || !r.Authoritative {
		t.Fatalf("TXT: %v", r)
	}
	if txt := r.Answer[0].(*dns.TXT); strings.Join(txt.Txt, "") != "v=spf1 -all" || txt.Hdr.Ttl != 120 {
		t.Errorf("TXT answer %v", txt)
	}
	// NODATA: name exists, no TXT; SOA in authority.
	r = ask(t, s, "udp", "mail.example.com", dns.TypeTXT)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || !r.RecursionAvailable {
		t.Errorf("NODATA: %v", r)
	}
	// NXDOMAIN with SOA.
	r = ask(t, s, "tcp", "nope.example.com", dns.TypeA)
	if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].(*dns.SOA).Minttl != 60 {
		t.Errorf("NXDOMAIN: %v", r)
	}
	// Empty non-terminal is NODATA.
	r = ask(t, s, "udp", "deep.example.com", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("ENT: %v", r)
	}
	// CNAME chased.
	r = ask(t, s, "udp", "alias.example.com", dns.TypeA)
	if len(r.Answer) != 2 || r.Answer[1].(*dns.A).A.String() != "192.0.2.1" {
		t.Errorf("CNAME: %v", r)
	}
	if n := s.QueryCount("example.com", dns.TypeTXT); n != 1 {
		t.Errorf("QueryCount = %d", n)
	}
}

func TestFailures(t *testing.T) {
	s := Start(t, `ok.example A 192.0.2.1`)
	s.SetServFail("broken.example")
	r := ask(t, s, "udp", "x.broken.example", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure || !r.RecursionAvailable {
		t.Errorf("SERVFAIL: %v", r)
	}
	s.SetTimeout("slow.example")
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("a.slow.example.", dns.TypeA)
	if _, _, err := c.Exchange(m, s.Addr); err == nil {
		t.Error("timeout name answered")
	}
	s.ClearTimeout("slow.example")
	if r := ask(t, s, "udp", "a.slow.example", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("after ClearTimeout: %v", r)
	}
	if r := ask(t, s, "udp", "ok.example", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("ok: %v", r)
	}
}

func TestTruncation(t *testing.T) {
	s := Start(t)
	for i := range 100 {
		s.AddTXT("big.example", 300, strings.Repeat("x", 200)+string(rune('a'+i%26)))
	}
	r := ask(t, s, "udp", "big.example", dns.TypeTXT)
	if !r.Truncated {
		t.Errorf("large UDP answer not truncated (%d answers)", len(r.Answer))
	}
	r = ask(t, s, "tcp", "big.example", dns.TypeTXT)
	if len(r.Answer) != 100 {
		t.Errorf("TCP answers = %d, want 100", len(r.Answer))
	}
}
