package auth

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/policy/message"
)

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"v=DMARC1; p=reject", "v=DMARC1;p=none;rua=mailto:a@b,mailto:c@d;pct=50;sp=quarantine;adkim=s",
		"V=DMARC1; P=REJECT", "v=DMARC1; p=", "v=DMARC1;;;;", "v=DMARC1; pct=-1; p=none", "v=spf1 -all", strings.Repeat("v=DMARC1; p=none;", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err == nil {
			if r.Policy != PolicyNone && r.Policy != PolicyQuarantine && r.Policy != PolicyReject {
				t.Fatalf("policy %q from %q", r.Policy, s)
			}
			if r.Percent < 0 || r.Percent > 100 {
				t.Fatalf("pct %d", r.Percent)
			}
		}
	})
}

func FuzzFromDomains(f *testing.F) {
	for _, s := range []string{"Alice <a@example.com>", "a@b.example, c@d.example", "\"x, y\" <a@[192.0.2.1]>", "undisclosed-recipients:;",
		"=?utf-8?q?x?= <j@bücher.example>", "<<<@@@>>>", "a@", "@b", "a@b..c", strings.Repeat("a@b.c,", 500)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := message.Header{{Name: "From", Value: " " + s}}
		ds, n, _ := FromDomains(h)
		if n != 1 {
			t.Fatalf("fields %d", n)
		}
		for _, d := range ds {
			if d == "" || d != NormalizeDomain(d) {
				t.Fatalf("domain %q not normalised (input %q)", d, s)
			}
			OrgDomain(d)
			Aligned(d, "example.com", AlignRelaxed)
		}
	})
}

// fakeDNS answers SPF's queries from a map and counts them.
type fakeDNS struct {
	txt     map[string][]string
	queries atomic.Int64
}

func (f *fakeDNS) notFound(n string) error {
	return &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
}
func (f *fakeDNS) LookupTXT(_ context.Context, n string) ([]string, error) {
	f.queries.Add(1)
	if t, ok := f.txt[strings.ToLower(strings.TrimSuffix(n, "."))]; ok {
		return t, nil
	}
	return nil, f.notFound(n)
}
func (f *fakeDNS) LookupMX(_ context.Context, n string) ([]*net.MX, error) {
	f.queries.Add(1)
	return []*net.MX{{Host: "mx." + n, Pref: 1}}, nil
}
func (f *fakeDNS) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) {
	f.queries.Add(1)
	if strings.HasPrefix(n, "void") {
		return nil, f.notFound(n)
	}
	return []net.IPAddr{{IP: net.ParseIP("192.0.2.99")}}, nil
}
func (f *fakeDNS) LookupAddr(_ context.Context, a string) ([]string, error) {
	f.queries.Add(1)
	return []string{"host.example."}, nil
}

// FuzzSPFRecord serves a fuzzed SPF record (and the same record at every
// include/redirect target, which makes loops) and checks that evaluation
// ends with a valid status within the RFC 7208 §4.6.4 bounds.
func FuzzSPFRecord(f *testing.F) {
	for _, s := range []string{"v=spf1 -all", "v=spf1 include:example.com -all", "v=spf1 redirect=example.com", "v=spf1 a:void1.example a:void2.example a:void3.example -all",
		"v=spf1 mx mx mx mx mx mx mx mx mx mx mx -all", "v=spf1 exists:%{i}.%{l}.%{d}.example ~all", "v=spf1 ptr ?all", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all",
		"v=spf1 " + strings.Repeat("include:example.com ", 50), "v=spf1 %{", "v=spf1 a/33 -all"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		fd := &fakeDNS{txt: map[string][]string{"example.com": {rec}, "a.example.com": {rec}}}
		a := newAuth(DefaultConfig(), nil, nil, nil)
		a.spfDNS = fd
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		o := a.evalSPF(ctx, netip.MustParseAddr("192.0.2.1"), "helo.example.com", "x@example.com")
		switch o.Status {
		case StatusNone, StatusNeutral, StatusPass, StatusFail, StatusSoftfail, StatusTemperror, StatusPermerror:
		default:
			t.Fatalf("status %q", o.Status)
		}
		// 1 initial TXT + 10 terms, each of which may fan out to at most
		// 10 MX/PTR address lookups (§4.6.4), plus exp=.
		if n := fd.queries.Load(); n > 1+10*11+2 {
			t.Fatalf("%d DNS queries for %q", n, rec)
		}
	})
}

// TestHostileDNS: huge TXT records, hundreds of records, include and
// redirect loops, void lookups, all through the real resolver and server.
func TestHostileDNS(t *testing.T) {
	s := dnstest.Start(t,
		`loop.example. TXT "v=spf1 include:loop.example -all"`,
		`redir.example. TXT "v=spf1 redirect=redir2.example"`,
		`redir2.example. TXT "v=spf1 redirect=redir.example"`,
		`void.example. TXT "v=spf1 a:n1.void.example a:n2.void.example a:n3.void.example -all"`,
		`many.example. TXT "v=spf1 a a a a a a a a a a a a -all"`,
		`many.example. A 192.0.2.200`,
	)
	s.AddTXT("huge.example", 300, "v=spf1 "+strings.Repeat("ip4:198.51.100.1 ", 3000)+"-all")
	for i := range 300 {
		s.AddTXT("hundreds.example", 300, "v=spf1 ip4:198.51.100."+string(rune('0'+i%10))+" -all")
	}
	for i := range 300 {
		s.AddTXT("_dmarc.hundreds.example", 300, "v=DMARC1; p=reject; x="+strings.Repeat("y", i))
	}
	w := newWorldCfg(t, s, DefaultConfig())
	for _, c := range []struct {
		from string
		want policy.Status
	}{
		{"a@loop.example", StatusPermerror},
		{"a@redir.example", StatusPermerror},
		{"a@void.example", StatusPermerror},
		{"a@many.example", StatusPermerror},
		{"a@huge.example", StatusFail},
		{"a@hundreds.example", StatusPermerror},
	} {
		before := s.Queries()
		start := time.Now()
		r := w.run(msg("192.0.2.1", "h.example", c.from, "From: "+c.from+"\n\nx\n"))
		if r["spf"].Status != c.want {
			t.Errorf("%s: spf %s (%s), want %s", c.from, r["spf"].Status, r["spf"].Detail, c.want)
		}
		if n := s.Queries() - before; n > 30 {
			t.Errorf("%s: %d queries", c.from, n)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: took %v", c.from, d)
		}
	}
	// Hundreds of DMARC records: several records → no policy (§6.6.3).
	r := w.run(msg("192.0.2.1", "h.example", "a@hundreds.example", "From: a@hundreds.example\n\nx\n"))
	if r["dmarc"].Status != StatusNone {
		t.Errorf("hundreds of DMARC records: %s", r["dmarc"].Status)
	}
}

// FuzzArrivalResults: the arrival record a list re-injection carries is
// read without panic; a found payload starts with our authserv-id and
// an arc= result is one token.
func FuzzArrivalResults(f *testing.F) {
	f.Add(" mx.example.org;\n\tspf=pass smtp.mailfrom=a@b.example;\n\tarc=pass smtp.remote-ip=192.0.2.1")
	f.Add(" mx.example.org.; ARC=Fail")
	f.Add(" other.example; arc=pass")
	f.Add(";;;arc=")
	f.Fuzz(func(t *testing.T, v string) {
		p, ok := ArrivalResults(message.Header{{Name: "Authentication-Results", Value: v}}, "mx.example.org")
		if ok && !strings.HasPrefix(strings.ToLower(p), "mx.example.org") {
			t.Fatalf("payload %q for another authserv-id", p)
		}
		r := ARCResultOf(p)
		if strings.ContainsAny(string(r), " \t\r\n;") {
			t.Fatalf("arc result %q", r)
		}
	})
}
