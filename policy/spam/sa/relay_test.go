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
