package sa

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

const headerEvalRules = `
header NO_RDNS_DOTCOM_HELO  eval:check_for_no_rdns_dotcom_helo()
header HELO_IP_MISMATCH     eval:helo_ip_mismatch()
header SORTED_RECIPS        eval:sorted_recipients()
header SUSPICIOUS_RECIPS    eval:similar_recipients('0.65','undef')
header FORGED_YAHOO_RCVD    eval:check_for_forged_yahoo_received_headers()
header GATED                eval:gated_through_received_hdr_remover()
`

func headerMsg(received, from, to string) *Message {
	raw := ""
	for _, r := range strings.Split(received, "\n") {
		if r != "" {
			raw += "Received: " + r + "\r\n"
		}
	}
	raw += "From: " + from + "\r\nTo: " + to + "\r\nSubject: hi\r\n\r\nbody\r\n"
	return FromRaw([]byte(raw))
}

func TestHeaderEvals(t *testing.T) {
	e := compile(t, headerEvalRules, Options{})
	const by = " by mx.example.net (Postfix) with ESMTP id A1; Mon, 2 Dec 2002 10:00:00 +0000"
	for _, c := range []struct {
		name, received, from, to string
		want, not                []string
	}{
		{"dotcom HELO, no rDNS", "from mail.hotmail.com (unknown [203.0.113.5])" + by, "a@example.com", "b@example.net",
			[]string{"NO_RDNS_DOTCOM_HELO"}, []string{"HELO_IP_MISMATCH", "GATED"}},
		{"an older relay without HELO overrides", "from lycos.com ([194.186.125.253])" + by + "\nfrom [4.169.44.219] by sparc.zubilam.net with esmtp; 25 Aug 2002 18:57:52 -0400", "a@example.com", "b@example.net",
			nil, []string{"NO_RDNS_DOTCOM_HELO"}},
		{"qmail does not show a lookup", "from unknown (HELO mx3.mail.yahoo.com) (61.125.120.21) by nsvmj2.zaq.ne.jp with SMTP; 1 Aug 2001 08:15:47 +0900", "a@example.com", "b@example.net",
			nil, []string{"NO_RDNS_DOTCOM_HELO"}},
		{"dotcom HELO with rDNS", "from mail.hotmail.com (bay4.hotmail.com [203.0.113.5])" + by, "a@example.com", "b@example.net",
			nil, []string{"NO_RDNS_DOTCOM_HELO"}},
		{"other HELO, no rDNS", "from mail.example.com (unknown [203.0.113.5])" + by, "a@example.com", "b@example.net",
			nil, []string{"NO_RDNS_DOTCOM_HELO"}},
		{"private relay is ignored", "from mail.aol.com (unknown [10.1.2.3])" + by, "a@example.com", "b@example.net",
			nil, []string{"NO_RDNS_DOTCOM_HELO"}},
		{"HELO another public address", "from 198.51.100.7 (unknown [203.0.113.5])" + by, "a@example.com", "b@example.net",
			[]string{"HELO_IP_MISMATCH"}, nil},
		{"HELO in the same /24", "from 203.0.113.9 (unknown [203.0.113.5])" + by, "a@example.com", "b@example.net",
			nil, []string{"HELO_IP_MISMATCH"}},
		{"HELO own address", "from [203.0.113.5] (unknown [203.0.113.5])" + by, "a@example.com", "b@example.net",
			nil, []string{"HELO_IP_MISMATCH"}},
		{"sorted harvested list", "from a.example (a.example [203.0.113.5])" + by, "a@example.com",
			"aa@x.example, ab@x.example, ba@y.example, bb@y.example, ca@z.example, cb@z.example, da@w.example",
			[]string{"SORTED_RECIPS"}, []string{"SUSPICIOUS_RECIPS"}},
		{"similar recipients", "from a.example (a.example [203.0.113.5])" + by, "a@example.com",
			"john@mail1.example, joan@mail2.example, jo@mail3.example, jim@mail4.example, jay@mail5.example",
			[]string{"SUSPICIOUS_RECIPS"}, []string{"SORTED_RECIPS"}},
		{"different recipients", "from a.example (a.example [203.0.113.5])" + by, "a@example.com",
			"zed@one.example, bob@two.example, kim@three.example, ann@four.example, lou@five.example",
			nil, []string{"SUSPICIOUS_RECIPS", "SORTED_RECIPS"}},
		{"yahoo From through a stranger", "from mail.example.com (mail.example.com [203.0.113.5])" + by, "Joe <joe@yahoo.com>", "b@example.net",
			[]string{"FORGED_YAHOO_RCVD"}, nil},
		{"yahoo From from Yahoo's web mail", "from mail.example.com (mail.example.com [203.0.113.5])" + by + "\nfrom [198.51.100.1] by web12.mail.yahoo.com via HTTP; Mon, 2 Dec 2002 09:00:00 +0000",
			"joe@yahoo.com", "b@example.net", nil, []string{"FORGED_YAHOO_RCVD"}},
		{"yahoo From, first relay is Yahoo", "from smtp1.yahoo.com (web1.mail.yahoo.com [203.0.113.5])" + by, "joe@yahoo.com", "b@example.net",
			nil, []string{"FORGED_YAHOO_RCVD"}},
		{"no Received: gated, no yahoo verdict", "", "joe@yahoo.com", "b@example.net",
			[]string{"GATED"}, []string{"FORGED_YAHOO_RCVD", "NO_RDNS_DOTCOM_HELO"}},
	} {
		wantHits(t, c.name, e.Check(headerMsg(c.received, c.from, c.to), Input{}), c.want, c.not)
	}
}

func TestSimilarRecipientsRange(t *testing.T) {
	e := compile(t, "header LOW eval:similar_recipients('0','0.3')\nheader HIGH eval:similar_recipients('0.3','undef')\n", Options{})
	// Ten pairs of five addresses; user prefixes "ab" shared by 2 (1 pair),
	// hosts all different with no shared prefix: 1/10 = 0.1.
	m := headerMsg("", "a@example.com", "ab1@p.example, ab2@q.example, cd@r.example, ef@s.example, gh@t.example")
	h := hits(e.Check(m, Input{}))
	if _, ok := h["LOW"]; !ok {
		t.Error("0.1 is in [0, 0.3)")
	}
	if _, ok := h["HIGH"]; ok {
		t.Error("0.1 is not in [0.3, inf)")
	}
}

const authRules = `
header SPF_PASS        eval:check_for_spf_pass()
header SPF_FAIL        eval:check_for_spf_fail()
tflags SPF_FAIL        net
score  SPF_FAIL        0 0.919 0 0.5
header SPF_SOFTFAIL    eval:check_for_spf_softfail()
header SPF_HELO_PASS   eval:check_for_spf_helo_pass()
full   DKIM_SIGNED     eval:check_dkim_signed()
full   DKIM_VALID      eval:check_dkim_valid()
full   DKIM_VALID_AU   eval:check_dkim_valid_author_sig()
full   DKIM_VALID_EF   eval:check_dkim_valid_envelopefrom()
full   DKIM_SIGNED_LIST eval:check_dkim_signed('lists.example')
meta   DKIM_INVALID    DKIM_SIGNED && !DKIM_VALID
header DMARC_PASS      eval:check_dmarc_pass()
header DMARC_REJECT    eval:check_dmarc_reject()
header DMARC_QUAR      eval:check_dmarc_quarantine()
header DMARC_NONE      eval:check_dmarc_none()
header DMARC_MISSING   eval:check_dmarc_missing()
`

func TestAuthEvals(t *testing.T) {
	e := compile(t, authRules, Options{Auth: true})
	raw := []byte("From: Alice <alice@news.example.com>\r\nTo: b@example.net\r\nSubject: s\r\n\r\nbody\r\n")
	for _, c := range []struct {
		name      string
		auth      *Auth
		env       string
		want, not []string
	}{
		{"no auth checks ran", nil, "",
			nil, []string{"SPF_PASS", "SPF_FAIL", "DKIM_SIGNED", "DKIM_VALID", "DKIM_INVALID", "DMARC_MISSING", "DMARC_PASS"}},
		{"author signature, SPF and DMARC pass", &Auth{SPF: "pass", DKIM: []DKIMSignature{{Domain: "example.com", Valid: true}}, DMARC: "pass", DMARCPolicy: "reject"}, "bounce@example.com",
			[]string{"SPF_PASS", "DKIM_SIGNED", "DKIM_VALID", "DKIM_VALID_AU", "DKIM_VALID_EF", "DMARC_PASS"},
			[]string{"SPF_FAIL", "DKIM_INVALID", "DMARC_REJECT", "DKIM_SIGNED_LIST"}},
		{"third-party signature, SPF fail, DMARC reject", &Auth{SPF: "fail", DKIM: []DKIMSignature{{Domain: "lists.example", Valid: true}}, DMARC: "fail", DMARCPolicy: "reject"}, "x@other.example",
			[]string{"SPF_FAIL", "DKIM_VALID", "DKIM_SIGNED_LIST", "DMARC_REJECT"},
			[]string{"SPF_PASS", "DKIM_VALID_AU", "DKIM_VALID_EF", "DMARC_PASS", "DMARC_QUAR"}},
		{"broken signature, no DMARC record, HELO checked", &Auth{SPFHELO: "pass", DKIM: []DKIMSignature{{Domain: "example.com"}}, DMARC: "none"}, "",
			[]string{"SPF_HELO_PASS", "DKIM_SIGNED", "DKIM_INVALID", "DMARC_MISSING"},
			[]string{"SPF_PASS", "DKIM_VALID", "DKIM_VALID_AU", "DMARC_NONE"}},
		{"DMARC quarantine policy", &Auth{SPF: "softfail", DMARC: "fail", DMARCPolicy: "quarantine"}, "",
			[]string{"SPF_SOFTFAIL", "DMARC_QUAR"}, []string{"DMARC_REJECT", "DKIM_SIGNED"}},
		{"DMARC p=none", &Auth{DMARC: "fail", DMARCPolicy: "none"}, "",
			[]string{"DMARC_NONE"}, []string{"DMARC_MISSING", "DMARC_QUAR"}},
	} {
		m := FromRaw(raw)
		m.Auth = c.auth
		m.EnvelopeFrom, m.HasEnvelopeFrom = c.env, true
		h := hits(e.Check(m, Input{}))
		for _, w := range c.want {
			if _, ok := h[w]; !ok {
				t.Errorf("%s: %s did not hit", c.name, w)
			}
		}
		for _, n := range c.not {
			if _, ok := h[n]; ok {
				t.Errorf("%s: %s hit", c.name, n)
			}
		}
	}
}

// The auth rules score from the network score set when the caller feeds
// its own results; without Options.Auth, as SpamAssassin without network
// tests (set 0: SPF_FAIL scores 0 and does not run).
func TestAuthScoreSet(t *testing.T) {
	m := FromRaw([]byte("From: a@example.com\r\n\r\nx\r\n"))
	m.Auth = &Auth{SPF: "fail"}
	if h := hits(compile(t, authRules, Options{Auth: true}).Check(m, Input{})); h["SPF_FAIL"].Score != 0.919 {
		t.Errorf("with Auth, set 1: SPF_FAIL %+v, want 0.919", h["SPF_FAIL"])
	}
	if h := hits(compile(t, authRules, Options{Auth: true, Bayes: true}).Check(m, Input{})); h["SPF_FAIL"].Score != 0.5 {
		t.Errorf("with Auth and Bayes, set 3: SPF_FAIL %+v, want 0.5", h["SPF_FAIL"])
	}
	if _, ok := hits(compile(t, authRules, Options{}).Check(m, Input{}))["SPF_FAIL"]; ok {
		t.Error("without Auth, set 0 scores SPF_FAIL 0")
	}
}

// SpamAssassin's own rule files: the SPF, DKIM and DMARC rules load (the
// plugins count as loaded) and are no longer skipped.
func TestAuthPluginsLoaded(t *testing.T) {
	for _, p := range []string{"SPF", "DKIM", "DMARC", "Dmarc"} {
		if !(Env{}).plugin("Mail::SpamAssassin::Plugin::" + p) {
			t.Errorf("plugin %s does not count as loaded", p)
		}
	}
}

// TestToInSubjectScreen: the literal screen before the regexps never
// changes the answer (the regexps alone are the reference).
func TestToInSubjectScreen(t *testing.T) {
	ref := func(s, to, mode string) int {
		if mode == "address" {
			re, err := regexp.Compile(`(?i)\b` + regexp.QuoteMeta(to) + `\b`)
			return b2i(err == nil && re.MatchString(s))
		}
		user, _, _ := strings.Cut(to, "@")
		q := regexp.QuoteMeta(user)
		re, err := regexp.Compile(`(?i)^(?:(?:re|fw):\s*(?:\w+\s+)?` + q + `$|(?-i:` + q + `)\s*[,:;!?-](?:$|\s)|` + q + `$|,\s*` + q + `[,:;!?-]$)`)
		return b2i(err == nil && re.MatchString(s))
	}
	tos := []string{"bob@example.org", "Bob@Example.org", "kirk@x.org", "s@x", "@x", "bob", "", "b.o-b@x", "jöe@x"}
	pieces := []string{"bob", "BOB", "Bob@EXAMPLE.org", "bob@example.org", "re:", "Fw: ", "hello ", ",", "!", " ", "-",
		"\u212airk", "KIRK", "ſ", "S", "s", "@x", "x", "b.o-b", "JÖE", "jöe", "\t", "\n"}
	rng := rand.New(rand.NewPCG(3, 4))
	hits := 0
	for range 4000 {
		var b strings.Builder
		for n := rng.IntN(5); n >= 0; n-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s, to := b.String(), tos[rng.IntN(len(tos))]
		for _, mode := range []string{"address", "user"} {
			got, want := toInSubject(s, to, mode), ref(s, to, mode)
			if got != want {
				t.Fatalf("%s %q in %q: %d, regexp %d", mode, to, s, got, want)
			}
			hits += got
		}
	}
	if hits < 20 {
		t.Errorf("only %d hits", hits)
	}
}

// TestEnvelopeFromAsSpamAssassin: without an envelope, EnvelopeFrom is
// what get_envelope_from infers: the envelope-from recorded by the last
// relay's Received field first, a Return-Path only above the Received
// fields; HEADER_FROM_DIFFERENT_DOMAINS compares the last two labels.
func TestEnvelopeFromAsSpamAssassin(t *testing.T) {
	e := compile(t, "header DIFF eval:check_equal_from_domains()\nheader ENV EnvelopeFrom =~ /^lists\\@waste\\.minder\\.net$/\n", Options{})
	for _, c := range []struct {
		name, raw string
		want, not []string
	}{
		{"relay's envelope-from", "Return-Path: <x@sinatown.com>\r\n" +
			"Received: from waste.minder.net (waste.minder.net [66.92.53.74]) by mx.example.net (8.11.6/8.11.6) with ESMTP id g1 (envelope-from lists@waste.minder.net); Mon, 2 Sep 2002 10:00:00 -0400\r\n" +
			"From: freebie@sinatown.com\r\nSubject: hi\r\n\r\nbody\r\n", []string{"DIFF", "ENV"}, nil},
		{"Return-Path below a Received", "Received: from a.example.org (a.example.org [203.0.113.5]) by mx.example.net (Postfix) with ESMTP id 1; Mon, 2 Sep 2002 10:00:00 -0400\r\n" +
			"Return-Path: <x@other.example>\r\nFrom: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n", nil, []string{"DIFF", "ENV"}},
		{"same last two labels", "Return-Path: <bounce@lists.example.co.uk>\r\nFrom: a@shop.co.uk\r\nSubject: hi\r\n\r\nbody\r\n", nil, []string{"DIFF"}},
		{"Return-Path on top", "Return-Path: <bounce@lists.other.example>\r\nFrom: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n", []string{"DIFF"}, nil},
	} {
		wantHits(t, c.name, e.Check(FromRaw([]byte(c.raw)), Input{}), c.want, c.not)
	}
}

// TestFreemailReplyAsSpamAssassin: check_freemail_replyto as FreeMail.pm:
// "reply" compares a freemail From (no Reply-To) with the freemail
// addresses of the body; bulk envelope senders and bodies with many
// addresses are skipped.
func TestFreemailReplyAsSpamAssassin(t *testing.T) {
	e := compile(t, `
freemail_domains yahoo.com hotmail.com gmail.com
header FM_REPLY   eval:check_freemail_replyto('reply')
header FM_REPLYTO eval:check_freemail_replyto('replyto')
`, Options{})
	msg := func(hdr, body string) []byte {
		return []byte(hdr + "Subject: hi\r\n\r\n" + body + "\r\n")
	}
	for _, c := range []struct {
		name      string
		raw       []byte
		want, not []string
	}{
		{"From and body freemail differ", msg("From: a@yahoo.com\r\n", "Write to bob@hotmail.com today"), []string{"FM_REPLY"}, []string{"FM_REPLYTO"}},
		{"body has the From", msg("From: a@yahoo.com\r\n", "Write to a@yahoo.com today"), nil, []string{"FM_REPLY"}},
		{"Reply-To not freemail", msg("From: a@yahoo.com\r\nReply-To: a@example.com\r\n", "Write to bob@hotmail.com"), nil, []string{"FM_REPLY", "FM_REPLYTO"}},
		{"Reply-To and From differ", msg("From: a@yahoo.com\r\nReply-To: b@gmail.com\r\n", "hello"), []string{"FM_REPLY", "FM_REPLYTO"}, nil},
		{"bulk envelope sender", msg("Return-Path: <owner-list@example.org>\r\nFrom: a@yahoo.com\r\nReply-To: b@gmail.com\r\n", "hello"), nil, []string{"FM_REPLY", "FM_REPLYTO"}},
		{"too many addresses", msg("From: a@yahoo.com\r\n", "bob@hotmail.com c@example.org d@example.org e@example.org f@example.org"), nil, []string{"FM_REPLY"}},
		{"address before a label", msg("From: a@yahoo.com\r\n", "bob@hotmail.com web: http://x.example/"), nil, []string{"FM_REPLY"}},
	} {
		wantHits(t, c.name, e.Check(FromRaw(c.raw), Input{}), c.want, c.not)
	}
}

// TestAllExternalHeaders: ALL-EXTERNAL/ALL-UNTRUSTED are the fields from
// the Received field of the first relay from outside on, ALL-TRUSTED and
// ALL-INTERNAL those down to and with it (PerMsgStatus.pm).
func TestAllExternalHeaders(t *testing.T) {
	e := compile(t, `
header EXT_2RCVD ALL-EXTERNAL =~ /(?:^|\n)Received:\s.+\nReceived:\s/s
header EXT_TOP   ALL-EXTERNAL =~ /X-Top/
header EXT_OUT   ALL-UNTRUSTED =~ /X-Outer/
header TRU_TOP   ALL-TRUSTED =~ /X-Top/
header TRU_OUT   ALL-INTERNAL =~ /X-Outer/
header TRU_RCVD  ALL-TRUSTED =~ /203\.0\.113\.5/
`, Options{})
	const by = " by mx.example.net (Postfix) with ESMTP id A1; Mon, 2 Dec 2002 10:00:00 +0000"
	one := "X-Top: 1\r\nReceived: from a (a [10.0.0.1])" + by + "\r\nReceived: from b.example (b.example [203.0.113.5])" + by + "\r\nX-Outer: 1\r\nSubject: hi\r\n\r\nbody\r\n"
	wantHits(t, "one external relay", e.Check(FromRaw([]byte(one)), Input{}),
		[]string{"EXT_OUT", "TRU_TOP", "TRU_RCVD"}, []string{"EXT_2RCVD", "EXT_TOP", "TRU_OUT"})
	two := "X-Top: 1\r\nReceived: from b.example (b.example [203.0.113.5])" + by + "\r\nReceived: from c.example (c.example [198.51.100.7])" + by + "\r\nSubject: hi\r\n\r\nbody\r\n"
	wantHits(t, "two external relays", e.Check(FromRaw([]byte(two)), Input{}),
		[]string{"EXT_2RCVD", "TRU_TOP", "TRU_RCVD"}, []string{"EXT_TOP"})
}

// TestToCcAddr: ToCc:addr is an address, not the fields' text with the
// display names (APOSTROPHE_TOCC on a quoted name).
func TestToCcAddr(t *testing.T) {
	e := compile(t, "header APOS ToCc:addr =~ /'/\nheader ADDR ToCc:addr =~ /^a\\@example\\.com$/\n", Options{})
	raw := "To: \"'Quoted'\" <a@example.com>\r\nCc: <b@example.org>\r\nSubject: hi\r\n\r\nbody\r\n"
	wantHits(t, "quoted name", e.Check(FromRaw([]byte(raw)), Input{}), []string{"ADDR"}, []string{"APOS"})
	raw = "To: o'brien@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
	wantHits(t, "apostrophe in the address", e.Check(FromRaw([]byte(raw)), Input{}), []string{"APOS"}, nil)
}
