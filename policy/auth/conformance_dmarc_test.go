package auth

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/idna"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
)

// The Public Suffix List's own test vectors, for the organizational domain
// (RFC 7489 §3.2). The expected value is the registrable domain, "null"
// for none.
func TestConformancePSL(t *testing.T) {
	data := string(readConf(t, "dmarc/publicsuffix/tests.txt"))
	sc := bufio.NewScanner(strings.NewReader(data))
	pass, total := 0, 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "//") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("bad line %q", line)
		}
		in, want := f[0], f[1]
		if in == "null" {
			in = ""
		}
		if want == "null" {
			want = ""
		} else if a, err := idna.Lookup.ToASCII(want); err == nil {
			want = strings.ToLower(a) // we compare in A-labels
		}
		total++
		if got := RegistrableDomain(in); got != want {
			t.Errorf("RegistrableDomain(%q) = %q, want %q", f[0], got, want)
			continue
		}
		pass++
	}
	fmt.Printf("PSL conformance: %d of %d cases pass\n", pass, total)
	if total < 70 {
		t.Errorf("only %d cases read", total)
	}
}

// The OpenDMARC zone fixture, loaded under example.org, evaluated with RFC
// 7489 rules (PSL organizational domain, one fallback; psd= is a DMARCbis
// tag and ignored as unknown, §6.3). The fixture's comments give the
// expected RFC 7489 outcomes where they apply: here the PSL makes
// example.org the organizational domain of every dmarcwalk name.
func TestConformanceOpenDMARCZone(t *testing.T) {
	zone := string(readConf(t, "dmarc/opendmarc/test-dns.zone.inc"))
	s := dnstest.Start(t)
	loadZoneInc(t, s, zone, "example.org.")
	w := newWorldCfg(t, s, DefaultConfig())
	for _, c := range []struct {
		from    string
		found   string // where the record is found ("" none)
		policy  Policy
		status  policy.Status
		comment string
	}{
		{"example.org", "example.org", PolicyNone, StatusFail, "apex record p=none"},
		{"webhost.example.org", "example.org", PolicyNone, StatusFail, "existing host without DMARC: org domain's record"},
		{"nosuchname.example.org", "example.org", PolicyNone, StatusFail, "NXDOMAIN subdomain: org domain's record"},
		{"direct.dmarcwalk.example.org", "direct.dmarcwalk.example.org", PolicyReject, StatusFail, "own record, no walk"},
		{"dmarcwalk.example.org", "dmarcwalk.example.org", PolicyReject, StatusFail, "own record; psd=y ignored"},
		{"sub.nopsd.dmarcwalk.example.org", "example.org", PolicyNone, StatusFail, "PSL divergence: one fallback to the PSL org domain, not a tree walk"},
		{"sub.psdn.dmarcwalk.example.org", "example.org", PolicyNone, StatusFail, "RFC 7489 never walks to psdn"},
		{"leaf.mid.psdy.dmarcwalk.example.org", "example.org", PolicyNone, StatusFail, "no tree walk"},
		{"d6.d5.d4.d3.d2.d1.eightlabel.dmarcwalk.example.org", "example.org", PolicyNone, StatusFail, "no 8-label shortcut"},
		{"multirecord.dmarcwalk.example.org", "", "", StatusNone, "§6.6.3 step 6: two records at the From domain: no DMARC processing"},
	} {
		d := Discover(context.Background(), w.a.resolver.LookupTXT, isTemp, c.from)
		var found string
		var pol Policy
		if d.Record != nil {
			found, pol = d.Domain, d.Record.Policy
		}
		if found != c.found || pol != c.policy || d.Err != nil {
			t.Errorf("%s (%s): found at %q p=%q err=%v, want %q p=%q", c.from, c.comment, found, pol, d.Err, c.found, c.policy)
		}
		o := w.a.evalDomain(context.Background(), c.from, nil, nil)
		if o.Status != c.status {
			t.Errorf("%s: status %s, want %s", c.from, o.Status, c.status)
		}
	}
	// The SPF record of the fixture: a, mx, ip6 and a: hosts, ~all. Its
	// "a:mailserver02" is a single-label name in SPF (not relative to the
	// zone as in BIND), which does not exist: 10.0.0.3 only softfails.
	for _, c := range []struct {
		ip   string
		want policy.Status
	}{{"10.0.0.1", StatusPass}, {"10.0.0.2", StatusPass}, {"10.0.0.3", StatusSoftfail}, {"2001:db8::1", StatusPass}, {"10.0.0.4", StatusSoftfail}} {
		r := w.run(msg(c.ip, "mailserver01.example.org", "a@example.org", "From: a@example.org\n\nx\n"))
		if r["spf"].Status != c.want {
			t.Errorf("SPF from %s: %s, want %s", c.ip, r["spf"].Status, c.want)
		}
		wantDMARC := StatusFail
		if c.want == StatusPass {
			wantDMARC = StatusPass
		}
		if r["dmarc"].Status != wantDMARC {
			t.Errorf("DMARC from %s: %s, want %s", c.ip, r["dmarc"].Status, wantDMARC)
		}
	}
}

func isTemp(err error) bool {
	type temp interface{ Temporary() bool }
	te, ok := err.(temp)
	return ok && te.Temporary()
}

// loadZoneInc reads the BIND fragment: relative names, $ORIGIN switches
// relative to the current origin, comments.
func loadZoneInc(t *testing.T, s *dnstest.Server, zone, origin string) {
	cur := origin
	for _, line := range strings.Split(zone, "\n") {
		if i := strings.Index(line, ";"); i >= 0 && !strings.Contains(line[:i], "\"") {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if f[0] == "$ORIGIN" {
			if strings.HasSuffix(f[1], ".") {
				cur = f[1]
			} else {
				cur = f[1] + "." + cur
			}
			continue
		}
		name := f[0]
		switch {
		case name == "@":
			name = cur
		case !strings.HasSuffix(name, "."):
			name = name + "." + cur
		}
		rest := strings.Join(f[1:], " ")
		rest = strings.TrimPrefix(rest, "IN ")
		// Relative targets (MX 10 mailserver01) are relative to the origin.
		rf := strings.Fields(rest)
		if rf[0] == "MX" && len(rf) == 3 && !strings.HasSuffix(rf[2], ".") {
			rest = "MX " + rf[1] + " " + rf[2] + "." + cur
		}
		if rf[0] == "TXT" {
			txt := strings.TrimSpace(strings.TrimPrefix(rest, "TXT"))
			s.AddTXT(name, 300, strings.Trim(txt, "\""))
			continue
		}
		s.Add(name + " 300 IN " + rest)
	}
}
