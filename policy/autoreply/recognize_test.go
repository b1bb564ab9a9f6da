package autoreply

import (
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy/message"
)

// parseHeader reads a header block written one field per line, with
// continuation lines starting with white space.
func parseHeader(s string) message.Header {
	var h message.Header
	for _, l := range strings.Split(strings.TrimLeft(s, "\n"), "\n") {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(h) > 0 {
			h[len(h)-1].Value += "\r\n" + l
			continue
		}
		n, v, _ := strings.Cut(l, ":")
		h = append(h, message.Field{Name: n, Value: v})
	}
	return h
}

func isLocal(a string) bool { return message.Domain(a) == "example.org" }

// The header sets below are what the named software writes (taken from
// real messages; addresses and identifiers replaced).
var recognizeCases = []struct {
	name     string
	mailFrom string
	header   string
	want     Kind
	marker   string
}{
	{"dovecot-sieve-vacation", "", `
Return-Path: <>
Received: from mail.example.org by mail.example.org (Dovecot) with LMTP id 9X; Mon, 23 Nov 2026 10:00:01 +0000
X-Sieve: Pigeonhole Sieve 0.5.19 (4eae2f79)
Message-ID: <dovecot-sieve-1795424401-421377-0@mail.example.org>
Date: Mon, 23 Nov 2026 10:00:01 +0000
From: Alice Example <alice@example.org>
To: <bob@remote.test>
Subject: Auto: Quarterly figures
Auto-Submitted: auto-replied (vacation)
Precedence: bulk
In-Reply-To: <CAKx1=orig1@mail.remote.test>
References: <CAKx1=orig1@mail.remote.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit
`, KindReply, "auto-submitted:auto-replied"},
	{"exchange-outlook-automatic-reply", "", `
From: Alice Example <alice@example.org>
To: Bob Remote <bob@remote.test>
Subject: Automatic reply: Quarterly figures
Thread-Topic: Quarterly figures
Thread-Index: AQHY4mLJ0Zq0uSQ1EkW1zvGTvAA0nw==
Date: Mon, 23 Nov 2026 10:00:02 +0000
Message-ID: <6c2b1e2f0a4d4f7e9a1b2c3d4e5f6a7b@EXCH01.example.org>
References: <CAKx1=orig1@mail.remote.test>
In-Reply-To: <CAKx1=orig1@mail.remote.test>
X-MS-Has-Attach:
X-Auto-Response-Suppress: All
X-MS-Exchange-Inbox-Rules-Loop: alice@example.org
X-MS-TNEF-Correlator:
Auto-Submitted: auto-generated
X-MS-Exchange-Organization-SCL: -1
X-MS-Exchange-Organization-RecordReviewCfmType: 0
Content-Type: text/plain; charset="us-ascii"
MIME-Version: 1.0
`, KindReply, "x-ms-exchange-inbox-rules-loop"},
	{"gmail-vacation", "alice@example.org", `
MIME-Version: 1.0
From: Alice Example <alice@example.org>
Date: Mon, 23 Nov 2026 10:00:03 +0000
Message-ID: <CAGp8bVh3Hq=vacation7@mail.gmail.com>
Subject: Re: Quarterly figures
In-Reply-To: <CAKx1=orig1@mail.remote.test>
References: <CAKx1=orig1@mail.remote.test>
Auto-Submitted: auto-replied
To: bob@remote.test
Content-Type: multipart/alternative; boundary="000000000000b0a1c205f0e0d0c0"
`, KindReply, "auto-submitted:auto-replied"},
	{"vacation(1)", "alice@example.org", `
From: alice@example.org
To: bob@remote.test
Subject: away from my mail
Precedence: bulk
Auto-Submitted: auto-replied
`, KindReply, "precedence:bulk"},
	{"vacation(1)-old-without-auto-submitted", "alice@example.org", `
From: alice@example.org
To: bob@remote.test
Subject: away from my mail
Precedence: junk
`, KindReply, "subject"},
	{"sieve-redirect", "bob@remote.test", `
Return-Path: <bob@remote.test>
Delivered-To: alice@example.org
Received: from mx.remote.test (mx.remote.test [198.51.100.7]) by mail.example.org (Postfix) with ESMTPS id 4Zk9; Mon, 23 Nov 2026 09:59:58 +0000
X-Sieve-Redirected-From: alice@example.org
Message-ID: <CAKx1=orig1@mail.remote.test>
Date: Mon, 23 Nov 2026 09:59:50 +0000
From: Bob Remote <bob@remote.test>
To: alice@example.org
Subject: Quarterly figures
`, KindForward, "x-sieve-redirected-from"},
	{".forward-via-sendmail", "bob@remote.test", `
Return-Path: <bob@remote.test>
X-Original-To: alice@example.org
Delivered-To: alice@example.org
Received: from mx.remote.test (mx.remote.test [198.51.100.7]) by mail.example.org (Postfix) with ESMTPS id 4Zk9
Message-ID: <CAKx1=orig1@mail.remote.test>
From: Bob Remote <bob@remote.test>
To: alice@example.org
Subject: Quarterly figures
`, KindForward, "delivered-to"},
	{"mutt-bounce-resent", "alice@example.org", `
Resent-From: Alice Example <alice@example.org>
Resent-Date: Mon, 23 Nov 2026 10:05:00 +0000
Resent-Message-ID: <20261123100500.GA1234@laptop.example.org>
Resent-To: alice@elsewhere.test
Message-ID: <CAKx1=orig1@mail.remote.test>
From: Bob Remote <bob@remote.test>
To: alice@example.org
Subject: Quarterly figures
`, KindForward, "resent-message-id"},
	{"exchange-forwarding-smtp-address", "bob@remote.test", `
Received: from EXCH01.example.org (10.0.0.5) by EXCH02.example.org (10.0.0.6) with Microsoft SMTP Server
From: Bob Remote <bob@remote.test>
To: Alice Example <alice@example.org>
Subject: Quarterly figures
Message-ID: <CAKx1=orig1@mail.remote.test>
X-MS-Exchange-ForwardingLoop: alice@example.org;5f8e3b2a-1c4d-4e6f-8a9b-0c1d2e3f4a5b
X-MS-Exchange-Organization-AutoForwarded: true
X-MS-Exchange-Organization-SCL: 1
`, KindForward, "x-ms-exchange-organization-autoforwarded"},
	{"exchange-inbox-rule-redirect", "bob@remote.test", `
From: Bob Remote <bob@remote.test>
To: Alice Example <alice@example.org>
Subject: Quarterly figures
Message-ID: <CAKx1=orig1@mail.remote.test>
X-MS-Exchange-Inbox-Rules-Loop: alice@example.org
`, KindForward, "x-ms-exchange-inbox-rules-loop"},
	{"x-autoreply", "alice@example.org", `
From: alice@example.org
To: bob@remote.test
Subject: Re: hello
X-Autoreply: yes
In-Reply-To: <x@remote.test>
`, KindReply, "x-autoreply"},
	{"mdn-null-sender", "", `
From: alice@example.org
To: bob@remote.test
Subject: Read: hello
Content-Type: multipart/report; report-type=disposition-notification; boundary="b"
`, KindGenerated, "null-sender+report"},
	{"cron-notification", "root@example.org", `
From: Cron Daemon <root@example.org>
To: admin@remote.test
Subject: Cron <root@host> backup
Auto-Submitted: auto-generated
Precedence: bulk
`, KindGenerated, "auto-submitted:auto-generated"},
	// Mail written by people.
	{"person-reply", "alice@example.org", `
From: Alice Example <alice@example.org>
To: bob@remote.test
Subject: Re: Quarterly figures
In-Reply-To: <CAKx1=orig1@mail.remote.test>
References: <CAKx1=orig1@mail.remote.test>
Message-ID: <reply1@example.org>
`, KindNone, ""},
	{"person-subject-auto", "alice@example.org", `
From: alice@example.org
To: bob@remote.test
Subject: Auto: the car you wanted
`, KindNone, ""},
	{"mailing-list-post", "list-bounces@example.org", `
From: alice@example.org
To: list@example.org
List-Id: <list.example.org>
Precedence: list
Subject: [list] hello
`, KindNone, ""},
	{"auto-submitted-no", "alice@example.org", `
From: alice@example.org
Auto-Submitted: no
Subject: hi
`, KindNone, ""},
}

func TestRecognize(t *testing.T) {
	for _, c := range recognizeCases {
		t.Run(c.name, func(t *testing.T) {
			r := Recognize(parseHeader(c.header), c.mailFrom, isLocal)
			if r.Kind != c.want {
				t.Fatalf("kind %s (markers %v), want %s", r.Kind, r.Markers, c.want)
			}
			if c.marker != "" && !contains(r.Markers, c.marker) {
				t.Fatalf("markers %v lack %q", r.Markers, c.marker)
			}
		})
	}
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func TestMsgIDs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"<a@b>", "a@b"},
		{" <a@b> (comment) <c@d>\r\n\t<e@f>", "a@b c@d e@f"},
		{"a@b", "a@b"},
		{"<>", ""},
		{"<unterminated@x", ""},
		{"phrase without id", ""},
	} {
		if got := strings.Join(msgIDs(c.in), " "); got != c.want {
			t.Errorf("msgIDs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if a := addrOf("Alice <A@Example.org>"); a != "A@Example.org" {
		t.Errorf("addrOf = %q", a)
	}
}

func FuzzRecognize(f *testing.F) {
	for _, c := range recognizeCases {
		f.Add(c.header, c.mailFrom)
	}
	f.Fuzz(func(t *testing.T, hdr, from string) {
		h := parseHeader(hdr)
		r := Recognize(h, from, isLocal)
		if r.Kind > KindGenerated || (r.Kind == KindNone) != (len(r.Markers) == 0) {
			t.Fatalf("Recognize = %+v", r)
		}
		for _, f := range h {
			for _, id := range msgIDs(f.Value) {
				if id == "" || strings.ContainsAny(id, " \t<>") && !strings.Contains(f.Value, id) {
					t.Fatalf("msgIDs(%q) gave %q", f.Value, id)
				}
			}
		}
	})
}
