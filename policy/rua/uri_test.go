package rua

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		host string
		size int64
		err  bool
	}{
		{"mailto:dmarc@example.com", "dmarc@example.com", "example.com", 0, false},
		{" mailto:Reports@Example.COM!10m", "Reports@Example.COM", "example.com", 10 << 20, false},
		{"mailto:r@example.com!500", "r@example.com", "example.com", 500, false},
		{"mailto:r@example.com!2k", "r@example.com", "example.com", 2048, false},
		{"mailto:r@example.com!1g", "r@example.com", "example.com", 1 << 30, false},
		{"MAILTO:r%21x@example.com?subject=x", "r!x@example.com", "example.com", 0, false},
		{"https://example.com/report", "", "", 0, true},
		{"mailto:example.com", "", "", 0, true},
		{"mailto:r@example.com!0", "", "", 0, true},
		{"mailto:r@example.com!xm", "", "", 0, true},
		{"mailto:r@example.com!99999999999999999999t", "", "", 0, true},
		{"mailto:a@x.example%2Cb@y.example", "", "", 0, true},
		{"mailto:a b@example.com", "", "", 0, true},
	} {
		d, err := ParseURI(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%q: err = %v", tc.in, err)
			continue
		}
		if !tc.err && (d.Addr != tc.addr || d.Host != tc.host || d.MaxSize != tc.size) {
			t.Errorf("%q = %+v", tc.in, d)
		}
	}
	if _, err := ParseURI("https://example.com/"); !errors.Is(err, ErrScheme) {
		t.Errorf("https: %v, want ErrScheme", err)
	}
}

// resolver points a stub resolver at the test DNS server.
func resolver(s *dnstest.Server) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}}
}

func TestVerifyExternalDestinations(t *testing.T) {
	s := dnstest.Start(t,
		`example.com._report._dmarc.reports.example. TXT "v=DMARC1"`,
		`example.com._report._dmarc.semi.example. TXT "v=DMARC1;"`,
		`example.com._report._dmarc.notdmarc.example. TXT "v=spf1 -all"`,
		`example.com._report._dmarc.override.example. TXT "v=DMARC1; rua=mailto:other@override.example!1m,mailto:evil@elsewhere.example"`,
	)
	s.SetServFail("example.com._report._dmarc.broken.example.")
	s.SetTimeout("example.com._report._dmarc.slow.example.")
	v := &Verifier{Resolver: resolver(s)}
	for _, tc := range []struct {
		name string
		dest string
		want Authorization
		to   string
	}{
		{"same domain", "mailto:d@example.com", Authorized, "d@example.com"},
		{"same organization", "mailto:d@reports.mail.example.com", Authorized, "d@reports.mail.example.com"},
		{"authorised", "mailto:d@reports.example", Authorized, "d@reports.example"},
		{"trailing semicolon", "mailto:d@semi.example", Authorized, "d@semi.example"},
		{"no record", "mailto:d@victim.example", Unauthorized, ""},
		{"not a DMARC record", "mailto:d@notdmarc.example", Unauthorized, ""},
		{"override on same host", "mailto:d@override.example", Authorized, "other@override.example"},
		{"servfail", "mailto:d@broken.example", TempError, ""},
		{"timeout", "mailto:d@slow.example", TempError, ""},
	} {
		dest, err := ParseURI(tc.dest)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		got, dests, err := v.Verify(ctx, "example.com", dest)
		cancel()
		if got != tc.want {
			t.Errorf("%s: %s (%v), want %s", tc.name, got, err, tc.want)
			continue
		}
		if tc.want == TempError && err == nil {
			t.Errorf("%s: temperror without error", tc.name)
		}
		if len(dests) == 0 {
			dests = []Destination{dest}
		}
		if tc.to != "" && (len(dests) != 1 || dests[0].Addr != tc.to) {
			t.Errorf("%s: destinations %+v, want %s", tc.name, dests, tc.to)
		}
	}
	// The override keeps its own size limit.
	_, dests, _ := v.Verify(context.Background(), "example.com", Destination{Addr: "d@override.example", Host: "override.example"})
	if len(dests) != 1 || dests[0].MaxSize != 1<<20 {
		t.Errorf("override = %+v", dests)
	}
	// Same organization needs no query at all.
	before := s.Queries()
	v.Verify(context.Background(), "sub.example.com", Destination{Addr: "d@example.com", Host: "example.com"})
	if s.Queries() != before {
		t.Errorf("a same-organization destination was looked up")
	}
}

func TestOrgDomain(t *testing.T) {
	for in, want := range map[string]string{
		"a.b.example.com": "example.com", "Example.COM.": "example.com", "x.example.co.uk": "example.co.uk",
		"co.uk": "co.uk", "": "",
	} {
		if got := OrgDomain(in); got != want {
			t.Errorf("OrgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
