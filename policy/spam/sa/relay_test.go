package sa

import (
	"slices"
	"testing"
)

// TestParseRelaysAsSpamAssassin: Received shapes that SpamAssassin's
// Received.pm reads and that counted as unparseable here, and the mail
// fetcher's handover, which it skips and where it restarts the path.
func TestParseRelaysAsSpamAssassin(t *testing.T) {
	for _, tc := range []struct {
		name        string
		received    []string // newest first
		ips         []string
		unparseable int
	}{
		{"fetchmail restarts the path", []string{
			"from localhost [127.0.0.1] by mail.example.org with ESMTP; Mon, 2 Sep 2002 12:43:03 +0100",
			"from phobos [127.0.0.1] by localhost with IMAP (fetchmail-5.9.0)\n\tfor zzzz@localhost (single-drop); Fri, 23 Aug 2002 11:06:34 +0100 (IST)",
			"from mx.example.com (mx.example.com [192.0.2.1]) by phobos.example.org (Postfix) with ESMTP id 1; Fri, 23 Aug 2002 11:00:00 +0100",
		}, []string{"192.0.2.1"}, 0},
		{"fetchmail after an untrusted relay is only skipped", []string{
			"from mx.example.com (mx.example.com [192.0.2.1]) by a.example.org (Postfix) with ESMTP id 1; Fri, 23 Aug 2002 11:00:00 +0100",
			"from mail.webnote.net [193.120.211.219] by localhost with POP3 (fetchmail-5.9.0) for zzzz@localhost (single-drop); Mon, 26 Aug 2002 15:13:38 +0100 (IST)",
		}, []string{"192.0.2.1"}, 0},
		{"qmail, bracketed address", []string{
			"from unknown (HELO avalon) ([64.125.200.18]) (envelope-sender <jamesr@best.com>)\n  by 192.220.76.165 (qmail-ldap-1.03) with SMTP for <fork@xent.com>; 31 Jul 2002 22:49:27 -0000",
		}, []string{"64.125.200.18"}, 0},
		{"SMTPD32", []string{
			"from mx06.hotmail.com [172.194.79.110] by mail.centaurhosting.com with ESMTP (SMTPD32-5.05) id AEFD1A4024E; Wed, 24 Jul 2002 22:39:09 -0700",
		}, []string{"172.194.79.110"}, 0},
		{"Sendmail without a lookup", []string{
			"from lycos.com ([194.186.125.253]) by webnote.net (8.9.3/8.9.3) with SMTP id QAA21873; Sun, 25 Aug 2002 16:03:30 +0100",
		}, []string{"194.186.125.253"}, 0},
	} {
		rs, u := ParseRelays(tc.received)
		if tc.name == "Sendmail without a lookup" && (len(rs) != 1 || rs[0].RDNS != "" || rs[0].HELO != "lycos.com") {
			t.Errorf("%s: %+v, want no reverse DNS and HELO lycos.com", tc.name, rs)
		}
		if ex, _ := ParseRelays([]string{"from mail.example.com ([192.0.2.7] helo=mx.example.com) by a.example.net with esmtp (Exim 4.50) id 1; Fri, 30 Jun 2006 08:11:35 -0400"}); len(ex) != 1 || ex[0].RDNS != "mail.example.com" || ex[0].HELO != "mx.example.com" {
			t.Errorf("Exim: %+v, want rDNS mail.example.com, HELO mx.example.com", ex)
		}
		var ips []string
		for _, r := range rs {
			ips = append(ips, r.IP)
		}
		if !slices.Equal(ips, tc.ips) || u != tc.unparseable {
			t.Errorf("%s: relays %v, unparseable %d; want %v, %d", tc.name, ips, u, tc.ips, tc.unparseable)
		}
	}
}

// TestParseRelaysIdent: Sendmail records the client's IDENT answer before
// its name ("IDENT:root@host [ip]", "root@host [ip]", "user@[ip]");
// Received.pm takes it out of the reverse DNS name, so a relay with only
// an ident has none (RDNS_NONE).
func TestParseRelaysIdent(t *testing.T) {
	for _, tc := range []struct{ received, rdns string }{
		{"from lugh.tuatha.org (root@lugh.tuatha.org [194.125.145.45]) by dogma.slashnull.org (8.11.6/8.11.6) with ESMTP id g7LBPBZ21729; Wed, 21 Aug 2002 12:25:11 +0100", "lugh.tuatha.org"},
		{"from moonbase.zanshin.com (IDENT:root@moonbase.zanshin.com [167.160.213.139]) by dogma.slashnull.org (8.11.6/8.11.6) with ESMTP id g7I; Sun, 18 Aug 2002 19:46:30 +0100", "moonbase.zanshin.com"},
		{"from einstein.ssz.com (cpunks@[207.200.56.4]) by hq.pro-ns.net (8.12.5/8.12.5) with ESMTP id g6M683hX051928; Mon, 22 Jul 2002 01:08:04 -0500 (CDT)", ""},
	} {
		rs, _ := ParseRelays([]string{tc.received})
		if len(rs) != 1 || rs[0].RDNS != tc.rdns {
			t.Errorf("%q: %+v, want rDNS %q", tc.received, rs, tc.rdns)
		}
	}
}

// TestParseRelaysRest: shapes only the later branches of Received.pm's
// parse_received_line read (qmail without a HELO, the Smail and webmail
// ones, its last resort of a bracketed address and a "by"), the
// handovers it ignores, and the fields it cannot read, which count as
// unparseable even without an address.
func TestParseRelaysRest(t *testing.T) {
	for _, tc := range []struct {
		received          string
		ip, rdns, helo    string
		unparseable       int
		noLookup, ignored bool
	}{
		{received: "from bocelli.siteprotect.com (64.41.120.21)\n  by h0090272a42db.ne.client2.attbi.com with SMTP; 7 May 2002 14:36:59 -0000",
			ip: "64.41.120.21", rdns: "bocelli.siteprotect.com", helo: "bocelli.siteprotect.com"},
		{received: "from unknown (HELO mfrenchw2k) (mfrench42@62.254.163.42 with login) by smtp.mail.vip.sc5.yahoo.com with SMTP; 8 Aug 2002 11:17:51 -0000",
			ip: "62.254.163.42", helo: "mfrenchw2k"},
		{received: "from mx6.airmail.net from [209.196.77.103] by mail5.airmail.net \n\t(/\\##/\\ Smail3.1.30.16 #30.56) with esmtp for <ler@209.196.123.6> sender:\n\t<vip@99-81.com> id <mP/17oq90-002OfmP@mail5.airmail.net>; Tue, 10 Sep 2002\n\t13:53:50 -0500 (CDT)",
			ip: "209.196.77.103", helo: "mx6.airmail.net", noLookup: true},
		{received: "from 208.236.42.2 (SquirrelMail authenticated user savkar@inthespace.com) by sunserver.sunilactive.com with HTTP; Fri, 20 Sep 2002 17:05:16 -0400 (EDT)",
			ip: "208.236.42.2", noLookup: true},
		{received: "from (127.0.0.1 [127.0.0.1]) by MailEnable Inbound Mail Agent with ESMTP; Wed, 24 Jul 2002 00:47:35 -08:00",
			ip: "127.0.0.1", helo: "127.0.0.1", noLookup: true},
		{received: "from rly-xl04.mx.aol.com ([161.143.46.72]) by m10.grp.snv.yahoo.com with QMQP; Aug, 01 2002 5:26:42 PM +0400",
			ip: "161.143.46.72", rdns: "rly-xl04.mx.aol.com", helo: "rly-xl04.mx.aol.com"},
		{received: "from mx07.hotmail.com (202.74.39.227 [202.74.39.227]) by law_ref_mail.lawreform.ie with SMTP (Microsoft Exchange Internet Mail Service Version 5.5.2653.13) id 3Q50BXBF; Mon, 22 Jul 2002 12:04:44 +0100",
			ip: "202.74.39.227", rdns: "202.74.39.227", helo: "mx07.hotmail.com"},
		{received: "from mx2.mail.yahoo.com ([200.61.163.49] RDNS failed) by pasadena.caliteracy.net with Microsoft SMTPSVC(5.0.2195.4453); Fri, 19 Jul 2002 20:44:07 -0700",
			ip: "200.61.163.49", helo: "mx2.mail.yahoo.com", noLookup: true},
		{received: "from 63.21.73.143 ([63.21.73.143]) by dvismail.dvisionfinland.fi with Microsoft SMTPSVC(5.0.2195.1600); Tue, 3 Jul 2001 18:05:27 +0300",
			ip: "63.21.73.143", helo: "63.21.73.143", noLookup: true},
		{received: "from mail pickup service by mail1.insuranceiq.com with Microsoft SMTPSVC; Thu, 5 Sep 2002 19:35:13 -0400", ignored: true},
		{received: "from andira.wanadoo.fr (193.252.19.152) by caroubier.wanadoo.fr; 28 Jul 2001 15:59:31 +0200", unparseable: 1},
		{received: "from by PPPa165-nas1rack6059.dialinx.net with ESMTP; Sat, 04 Aug 2001 19:13:01 -0700", unparseable: 1},
	} {
		rs, u := ParseRelays([]string{tc.received})
		switch {
		case tc.ignored || tc.unparseable > 0:
			if len(rs) != 0 || u != tc.unparseable {
				t.Errorf("%q: %+v, unparseable %d; want no relay, unparseable %d", tc.received, rs, u, tc.unparseable)
			}
		case len(rs) != 1 || u != 0:
			t.Errorf("%q: %+v, unparseable %d; want one relay", tc.received, rs, u)
		case rs[0].IP != tc.ip || rs[0].RDNS != tc.rdns || rs[0].HELO != tc.helo || rs[0].NoLookup != tc.noLookup:
			t.Errorf("%q: %+v; want ip %s rdns %q helo %q noLookup %v", tc.received, rs[0], tc.ip, tc.rdns, tc.helo, tc.noLookup)
		}
	}
}
