package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
)

func TestParseRecord(t *testing.T) {
	for _, c := range []struct {
		in   string
		want *Record
		err  string
	}{
		{"v=DMARC1; p=reject", &Record{Policy: PolicyReject, ADKIM: "r", ASPF: "r", Percent: 100}, ""},
		{"v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20;", &Record{Policy: PolicyQuarantine, SubdomainPolicy: PolicyNone, ADKIM: "s", ASPF: "s", Percent: 20}, ""},
		// Lenient: tag names in any case, values in any case, spaces, unknown tags.
		{" v = DMARC1 ; P=Reject ; ADKIM=S; foo=bar; fo=1; ri=86400 ;", &Record{Policy: PolicyReject, ADKIM: "s", ASPF: "r", Percent: 100}, ""},
		{"v=DMARC1; p=none; rua=mailto:a@example.com, mailto:b@example.com", &Record{Policy: PolicyNone, ADKIM: "r", ASPF: "r", Percent: 100, RUA: []string{"mailto:a@example.com", "mailto:b@example.com"}}, ""},
		// Bad optional values fall back to defaults.
		{"v=DMARC1; p=reject; pct=150; adkim=x; sp=bogus", &Record{Policy: PolicyReject, ADKIM: "r", ASPF: "r", Percent: 100}, ""},
		// §6.6.3 step 6: invalid p with rua → p=none.
		{"v=DMARC1; p=bogus; rua=mailto:d@example.com", &Record{Policy: PolicyNone, ADKIM: "r", ASPF: "r", Percent: 100, RUA: []string{"mailto:d@example.com"}}, ""},
		{"v=DMARC1; p=bogus", nil, "invalid p="},
		{"v=DMARC1", nil, "missing p="},
		{"v=DMARC1; rua=mailto:x@example.com", &Record{Policy: PolicyNone, ADKIM: "r", ASPF: "r", Percent: 100, RUA: []string{"mailto:x@example.com"}}, ""},
		// Not DMARC records at all (§6.6.3 step 4 discards them).
		{"v=spf1 -all", nil, "not a DMARC record"},
		{"p=reject; v=DMARC1", nil, "not a DMARC record"},
		{"v=DMARC2; p=reject", nil, "not a DMARC record"},
		{"", nil, "not a DMARC record"},
	} {
		got, err := ParseRecord(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got.Policy != c.want.Policy || got.SubdomainPolicy != c.want.SubdomainPolicy || got.ADKIM != c.want.ADKIM ||
			got.ASPF != c.want.ASPF || got.Percent != c.want.Percent || strings.Join(got.RUA, ",") != strings.Join(c.want.RUA, ",") {
			t.Errorf("%q: got %+v, want %+v", c.in, got, c.want)
		}
	}
}

// RFC 7489 §3.1: identifier alignment.
func TestAligned(t *testing.T) {
	for _, c := range []struct {
		auth, from string
		mode       Alignment
		want       bool
	}{
		{"example.com", "example.com", AlignStrict, true},
		{"EXAMPLE.com.", "example.COM", AlignStrict, true},
		{"mail.example.com", "example.com", AlignStrict, false}, // §3.1.1 strict: exact match
		{"mail.example.com", "example.com", AlignRelaxed, true}, // relaxed: same org domain
		{"example.com", "news.example.com", AlignRelaxed, true},
		{"a.example.com", "b.example.com", AlignRelaxed, true},
		{"example.net", "example.com", AlignRelaxed, false},
		{"example.co.uk", "other.co.uk", AlignRelaxed, false}, // public suffix is not an org domain
		{"a.example.co.uk", "example.co.uk", AlignRelaxed, true},
		{"bücher.example", "xn--bcher-kva.example", AlignStrict, true}, // IDNA A-labels
		{"", "example.com", AlignRelaxed, false},
	} {
		if got := Aligned(c.auth, c.from, c.mode); got != c.want {
			t.Errorf("Aligned(%q, %q, %s) = %t", c.auth, c.from, c.mode, got)
		}
	}
}

func TestFromDomains(t *testing.T) {
	for _, c := range []struct {
		hdr    string
		want   string
		fields int
		ok     bool
	}{
		{"From: Alice <alice@Example.COM>", "example.com", 1, true},
		{"From: alice@example.com, bob@example.net", "example.com,example.net", 1, true},
		{"From: a@example.com\nFrom: b@example.org", "example.com,example.org", 2, true},
		{"From: \"Weird, Name\" <a@sub.example.com>", "sub.example.com", 1, true},
		{"From: =?utf-8?q?J=C3=B6rg?= <j@bücher.example>", "xn--bcher-kva.example", 1, true},
		{"From: broken <a@example.com", "example.com", 1, true}, // lenient fallback
		{"From: undisclosed-recipients:;", "", 1, false},        // a group without addresses: no domain
		{"From: nobody", "", 1, false},
		{"Subject: no from", "", 0, false},
	} {
		m := msg("", "", "", c.hdr+"\n\nbody\n")
		d, n, ok := FromDomains(m.Header)
		if strings.Join(d, ",") != c.want || n != c.fields || ok != c.ok {
			t.Errorf("%q: %v %d %t, want %s %d %t", c.hdr, d, n, ok, c.want, c.fields, c.ok)
		}
	}
}

// dmarcZone is a DNS world for the RFC 7489 clause tests.
var dmarcZone = []string{
	`_dmarc.reject.example. TXT "v=DMARC1; p=reject"`,
	`_dmarc.quar.example. TXT "v=DMARC1; p=quarantine"`,
	`_dmarc.none.example. TXT "v=DMARC1; p=none"`,
	`_dmarc.strict.example. TXT "v=DMARC1; p=reject; adkim=s; aspf=s"`,
	`_dmarc.sp.example. TXT "v=DMARC1; p=reject; sp=none"`,
	`_dmarc.pct.example. TXT "v=DMARC1; p=reject; pct=50"`,
	`_dmarc.pctq.example. TXT "v=DMARC1; p=quarantine; pct=0"`,
	`_dmarc.multi.example. TXT "v=DMARC1; p=reject"`,
	`_dmarc.multi.example. TXT "v=DMARC1; p=none"`,
	`_dmarc.mixed.example. TXT "v=spf1 -all"`,
	`_dmarc.mixed.example. TXT "v=DMARC1; p=reject"`,
	`_dmarc.bad.example. TXT "v=DMARC1; p=sometimes"`,
	`_dmarc.own.sp.example. TXT "v=DMARC1; p=quarantine"`,
	`_dmarc.co.uk. TXT "v=DMARC1; p=reject"`,
}

// spfPass is an SPF outcome for a domain.
func spfO(status policy.Status, domain string) *SPFOutcome {
	return &SPFOutcome{Status: status, Domain: domain, Identity: "mailfrom"}
}

func dkimO(status policy.Status, domain string) *DKIMOutcome {
	return &DKIMOutcome{Status: status, Signatures: []DKIMSignature{{Status: status, Domain: domain}}}
}

// TestDMARCClauses walks RFC 7489 §3.1 (alignment) and §6.6 (evaluation).
func TestDMARCClauses(t *testing.T) {
	s := dnstest.Start(t, dmarcZone...)
	s.SetTimeout("_dmarc.slow.example")
	w := newWorldCfg(t, s, DefaultConfig())
	for _, c := range []struct {
		name    string
		from    string
		spf     *SPFOutcome
		dkim    *DKIMOutcome
		sample  int
		want    policy.Status
		applied Policy
	}{
		{"§3.1.2 SPF aligned exact", "From: a@reject.example", spfO(StatusPass, "reject.example"), nil, 0, StatusPass, ""},
		{"§3.1.2 SPF relaxed subdomain", "From: a@reject.example", spfO(StatusPass, "bounce.reject.example"), nil, 0, StatusPass, ""},
		{"§3.1.2 SPF strict subdomain fails", "From: a@strict.example", spfO(StatusPass, "bounce.strict.example"), nil, 0, StatusFail, PolicyReject},
		{"§3.1.1 DKIM relaxed", "From: a@reject.example", nil, dkimO(StatusPass, "mail.reject.example"), 0, StatusPass, ""},
		{"§3.1.1 DKIM strict fails", "From: a@strict.example", nil, dkimO(StatusPass, "mail.strict.example"), 0, StatusFail, PolicyReject},
		{"§3.1.1 DKIM strict exact", "From: a@strict.example", nil, dkimO(StatusPass, "strict.example"), 0, StatusPass, ""},
		{"§4.2 unaligned passes fail", "From: a@reject.example", spfO(StatusPass, "other.example"), dkimO(StatusPass, "other.example"), 0, StatusFail, PolicyReject},
		{"§4.2 aligned SPF fail + aligned DKIM fail", "From: a@reject.example", spfO(StatusFail, "reject.example"), dkimO(StatusFail, "reject.example"), 0, StatusFail, PolicyReject},
		{"§6.3 p=quarantine", "From: a@quar.example", spfO(StatusFail, "quar.example"), nil, 0, StatusFail, PolicyQuarantine},
		{"§6.3 p=none", "From: a@none.example", nil, nil, 0, StatusFail, PolicyNone},
		{"§6.6.3 fallback to org domain, sp=", "From: a@deep.sub.sp.example", nil, nil, 0, StatusFail, PolicyNone},
		{"§6.6.3 own record at subdomain: p, not sp", "From: a@own.sp.example", nil, nil, 0, StatusFail, PolicyQuarantine},
		{"§6.6.3 org fallback without sp: p", "From: a@x.reject.example", nil, nil, 0, StatusFail, PolicyReject},
		{"§6.6.3 no record anywhere", "From: a@nothing.example", nil, nil, 0, StatusNone, ""},
		{"§6.6.3 step 6 multiple records: no policy", "From: a@multi.example", nil, nil, 0, StatusNone, ""},
		{"§6.6.3 step 4 non-DMARC TXT discarded", "From: a@mixed.example", nil, nil, 0, StatusFail, PolicyReject},
		{"§6.6.3 syntax error: permerror", "From: a@bad.example", nil, nil, 0, StatusPermerror, ""},
		{"§6.6.3 DNS timeout: temperror", "From: a@slow.example", spfO(StatusPass, "slow.example"), nil, 0, StatusTemperror, ""},
		{"§3.2 a public suffix (co.uk) is never the org domain", "From: a@example.co.uk", nil, nil, 0, StatusNone, ""},
		{"§6.6.4 pct sampled in", "From: a@pct.example", nil, nil, 49, StatusFail, PolicyReject},
		{"§6.6.4 pct sampled out: next policy", "From: a@pct.example", nil, nil, 50, StatusFail, PolicyQuarantine},
		{"§6.6.4 pct=0 quarantine → none", "From: a@pctq.example", nil, nil, 0, StatusFail, PolicyNone},
		{"SPF temperror could have aligned: temperror", "From: a@reject.example", spfO(StatusTemperror, "reject.example"), nil, 0, StatusTemperror, ""},
		{"DKIM temperror could have aligned: temperror", "From: a@reject.example", nil, dkimO(StatusTemperror, "reject.example"), 0, StatusTemperror, ""},
		{"temperror unaligned does not save it", "From: a@reject.example", spfO(StatusTemperror, "other.example"), nil, 0, StatusFail, PolicyReject},
		{"§6.6.1 multiple From domains: strictest", "From: a@none.example, b@reject.example", nil, nil, 0, StatusFail, PolicyReject},
		{"§6.6.1 multiple From fields", "From: a@none.example\nFrom: b@quar.example", nil, nil, 0, StatusFail, PolicyQuarantine},
		{"§6.6.1 one passes, one fails: fail", "From: a@reject.example, b@none.example", nil, dkimO(StatusPass, "reject.example"), 0, StatusFail, PolicyNone},
		{"§6.6.1 no From: none", "Subject: x", nil, nil, 0, StatusNone, ""},
		{"§6.6.1 From without domain: permerror", "From: nobody", nil, nil, 0, StatusPermerror, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			w.a.sample = func() int { return c.sample }
			m := msg("", "", "", c.from+"\n\nx\n")
			o := w.a.evalDMARC(context.Background(), m.Header, c.spf, c.dkim)
			if o.Status != c.want || o.Applied != c.applied {
				t.Errorf("got %s applied=%q (%v), want %s %q", o.Status, o.Applied, o.Err, c.want, c.applied)
			}
		})
	}
	if n := s.QueryCount("_dmarc.co.uk", 16); n != 0 {
		t.Errorf("_dmarc.co.uk queried %d times", n)
	}
}

// TestEnforcement checks what the configuration makes of the statuses.
func TestEnforcement(t *testing.T) {
	s := dnstest.Start(t, dmarcZone...)
	s.Add(
		`reject.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`none.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`nodmarc.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`lists.example. TXT "v=spf1 ip4:203.0.113.0/24 -all"`,
	)
	s.SetTimeout("slow.example")
	w := newWorldCfg(t, s, DefaultConfig())
	out := "198.51.100.7"
	cases := []struct {
		name             string
		ip, mailFrom     string
		from             string
		action           policy.Action
		reason           string
		dmarc            policy.Status
		reply            string
		spfScore, others bool
	}{
		{"p=reject fail → reject 550 5.7.1", out, "a@reject.example", "a@reject.example", policy.ActionReject, "dmarc-reject", StatusFail, "550 5.7.1", true, false},
		{"p=reject pass → accept", "192.0.2.5", "a@reject.example", "a@reject.example", policy.ActionAccept, "", StatusPass, "", false, false},
		{"p=quarantine → quarantine", out, "a@quar.example", "a@quar.example", policy.ActionQuarantine, "dmarc-quarantine", StatusFail, "", false, false},
		{"p=none → accept, dmarc-fail", out, "a@none.example", "a@none.example", policy.ActionAccept, "dmarc-fail", StatusFail, "", true, false},
		{"no policy: SPF fail only scores by default", out, "a@nodmarc.example", "a@nodmarc.example", policy.ActionAccept, "spf-fail", StatusNone, "", true, false},
		{"DNS timeout → tempfail, never reject", out, "a@slow.example", "a@slow.example", policy.ActionTempfail, "auth-temperror", StatusTemperror, "", false, false},
		{"trusted network: not judged", "10.99.0.1", "a@reject.example", "a@reject.example", policy.ActionAccept, "", policy.StatusSkip, "", false, false},
		{"exempt IP (forwarder)", "203.0.113.9", "a@reject.example", "a@reject.example", policy.ActionAccept, "", StatusFail, "", false, false},
		{"exempt domain (list MAIL FROM, SPF pass)", "203.0.113.10", "bounce@lists.example", "a@reject.example", policy.ActionAccept, "", StatusFail, "", false, false},
	}
	w.cfg.ExemptIPs = policy.Networks{policy.Prefix(mustPrefix("203.0.113.9/32"))}
	w.cfg.ExemptDomains = []string{"lists.example"}
	w.a = newAuth(w.cfg, w.a.core, w.a.resolver, nil)
	w.a.sample = func() int { return 0 }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.run(msg(c.ip, "helo.example", c.mailFrom, "From: "+c.from+"\nSubject: x\n\nbody\n"))
			var action policy.Action
			var reasons []string
			var reply policy.Reply
			for _, n := range []string{"spf", "dkim", "dmarc"} {
				action = max(action, r[n].Action)
				reasons = append(reasons, r[n].Reasons...)
				if !r[n].Reply.IsZero() {
					reply = r[n].Reply
				}
			}
			if action != c.action || r["dmarc"].Status != c.dmarc {
				t.Errorf("action %s dmarc %s, want %s %s (reasons %v; %s; %s)", action, r["dmarc"].Status, c.action, c.dmarc, reasons, r["spf"].Detail, r["dmarc"].Detail)
			}
			if c.reason != "" && !contains(reasons, c.reason) {
				t.Errorf("reasons %v lack %s", reasons, c.reason)
			}
			if c.reply != "" && !strings.HasPrefix(reply.String(), c.reply) {
				t.Errorf("reply %q", reply)
			}
			if c.spfScore != (r["spf"].Score > 0) {
				t.Errorf("spf score %v", r["spf"].Score)
			}
		})
	}
}

// Without DMARC, the SPF action decides; with a DMARC policy, SPF failure
// only scores.
func TestSPFActionWhenDMARCDoesNotDecide(t *testing.T) {
	s := dnstest.Start(t, dmarcZone...)
	s.Add(`nodmarc.example. TXT "v=spf1 -all"`, `none.example. TXT "v=spf1 -all"`)
	cfg := DefaultConfig()
	cfg.SPF.Actions = map[string]policy.Action{"fail": policy.ActionReject}
	w := newWorldCfg(t, s, cfg)
	r := w.run(msg("198.51.100.1", "h.example", "a@nodmarc.example", "From: a@nodmarc.example\n\nx\n"))
	if r["dmarc"].Action != policy.ActionReject || !contains(r["dmarc"].Reasons, "spf-fail") || r["spf"].Action != policy.ActionAccept {
		t.Errorf("no DMARC: dmarc step %s %v, spf step %s", r["dmarc"].Action, r["dmarc"].Reasons, r["spf"].Action)
	}
	// p=none: DMARC decides, SPF fail only adds score.
	r = w.run(msg("198.51.100.1", "h.example", "a@none.example", "From: a@none.example\n\nx\n"))
	if r["dmarc"].Action != policy.ActionAccept || r["spf"].Action != policy.ActionAccept || r["spf"].Score != 3 {
		t.Errorf("p=none: dmarc %s spf %s score %v", r["dmarc"].Action, r["spf"].Action, r["spf"].Score)
	}
	// DMARC disabled: SPF applies its own action.
	cfg2 := DefaultConfig()
	cfg2.SPF.Actions = map[string]policy.Action{"fail": policy.ActionReject}
	cfg2.DMARC.Enabled = false
	w2 := newWorldCfg(t, s, cfg2)
	r = w2.run(msg("198.51.100.1", "h.example", "a@none.example", "From: a@none.example\n\nx\n"))
	if r["spf"].Action != policy.ActionReject || !contains(r["spf"].Reasons, "spf-fail") {
		t.Errorf("dmarc disabled: spf %s %v", r["spf"].Action, r["spf"].Reasons)
	}
}

func TestDMARCAuthResults(t *testing.T) {
	s := dnstest.Start(t, dmarcZone...)
	w := newWorldCfg(t, s, DefaultConfig())
	r := w.run(msg("198.51.100.1", "h.example", "a@none.example", "From: a@none.example\n\nx\n"))
	var all []authres.Result
	for _, n := range []string{"spf", "dkim", "dmarc"} {
		all = append(all, r[n].AuthResults...)
	}
	got := authres.Format("mx.test", all)
	want := "mx.test; spf=none smtp.mailfrom=a@none.example; dkim=none ; dmarc=fail header.from=none.example policy.dmarc=none"
	if strings.Join(strings.Fields(got), " ") != strings.Join(strings.Fields(want), " ") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// The whole module through the real pipeline: three checks in the report.
func TestPipeline(t *testing.T) {
	s := dnstest.Start(t, dmarcZone...)
	toml := "trusted_networks = []\nauthserv_id = \"mx.test\"\n[dns]\nservers = [\"" + s.Addr + "\"]\ntimeout = \"200ms\"\nattempts = 1\n"
	cfg, err := policy.Load("t.toml", []byte(toml), []policy.Module{dns.Section(), Module(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := dns.New(dns.ConfigOf(cfg))
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(cfg, []policy.Module{dns.Section(), Module(r, nil)}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	v := p.Run(context.Background(), msg("198.51.100.1", "h.example", "a@reject.example", "From: a@reject.example\nSubject: x\n\nbody\n"))
	got := map[string]policy.Status{}
	for _, c := range v.Checks {
		got[c.Name] = c.Status
	}
	if got["spf"] != StatusNone || got["dkim"] != StatusNone || got["dmarc"] != StatusFail || v.Action != policy.ActionReject {
		t.Errorf("checks %v action %s reasons %v", got, v.Action, v.Reasons)
	}
	if v.Reply.Code != 550 || v.Reply.Enhanced != "5.7.1" {
		t.Errorf("reply %v", v.Reply)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func mustPrefix(s string) policy.Prefix {
	p, err := policy.ParsePrefix(s)
	if err != nil {
		panic(err)
	}
	return policy.Prefix(p)
}
