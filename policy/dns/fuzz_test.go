package dns

import (
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/mailwarden/mailwarden/policy"
)

// FuzzAnswer feeds arbitrary DNS replies to the answer handling (CNAME
// chains, negative answers, TTLs): no crash, bounded work, sane TTLs.
func FuzzAnswer(f *testing.F) {
	m := new(mdns.Msg)
	m.SetQuestion("example.com.", mdns.TypeTXT)
	m.Answer = []mdns.RR{
		&mdns.CNAME{Hdr: mdns.RR_Header{Name: "example.com.", Rrtype: mdns.TypeCNAME, Class: 1, Ttl: 60}, Target: "b.example.com."},
		&mdns.CNAME{Hdr: mdns.RR_Header{Name: "b.example.com.", Rrtype: mdns.TypeCNAME, Class: 1, Ttl: 60}, Target: "example.com."},
		&mdns.TXT{Hdr: mdns.RR_Header{Name: "b.example.com.", Rrtype: mdns.TypeTXT, Class: 1, Ttl: 30}, Txt: []string{"v=spf1 -all"}},
	}
	b, _ := m.Pack()
	f.Add(b)
	n := new(mdns.Msg)
	n.SetQuestion("example.com.", mdns.TypeTXT)
	n.Rcode = mdns.RcodeNameError
	n.Ns = []mdns.RR{&mdns.SOA{Hdr: mdns.RR_Header{Name: "com.", Rrtype: mdns.TypeSOA, Class: 1, Ttl: 900}, Minttl: 4000000000}}
	b2, _ := n.Pack()
	f.Add(b2)
	f.Add(b[:len(b)/2])
	r, _ := New(&Config{Servers: []string{"127.0.0.1:1"}, Timeout: 1, Attempts: 1, CacheSize: 10, MaxTTL: policy.Duration(time.Hour), NegativeTTL: policy.Duration(5 * time.Minute)})
	now := time.Unix(1e9, 0)
	r.now = func() time.Time { return now }
	f.Fuzz(func(t *testing.T, wire []byte) {
		resp := new(mdns.Msg)
		if err := resp.Unpack(wire); err != nil {
			return
		}
		a := r.toAnswer(resp, "example.com.", mdns.TypeTXT, "test")
		if a.expires.Sub(now) > time.Hour || a.expires.Before(now) {
			t.Fatalf("TTL %v out of bounds", a.expires.Sub(now))
		}
		rrs, err := a.result("example.com.")
		if (err == nil) == a.notFound {
			t.Fatalf("result %v / notFound %v", err, a.notFound)
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype != mdns.TypeTXT {
				t.Fatalf("answer of type %d", rr.Header().Rrtype)
			}
		}
	})
}
