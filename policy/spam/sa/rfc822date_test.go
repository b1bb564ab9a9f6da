package sa

import (
	"testing"
	"time"
)

func TestParseRFC822Date(t *testing.T) {
	unix := func(y int, m time.Month, d, hh, mm, ss int) int64 {
		return time.Date(y, m, d, hh, mm, ss, 0, time.UTC).Unix()
	}
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"Sun, 29 Sep 2002 07:03:02 PDT", unix(2002, 9, 29, 14, 3, 2), true},
		{"Mon, 23 Sep 2002 22:28:43 -0400", unix(2002, 9, 24, 2, 28, 43), true},
		{"Mon, 23 Sep 2002 22:28:43 +0100 (IST)", unix(2002, 9, 23, 21, 28, 43), true},
		// An unknown zone name is UTC; a known one may stand anywhere.
		{"23 Sep 2002 22:28:43 XYZ", unix(2002, 9, 23, 22, 28, 43), true},
		{"EST 23 Sep 2002 22:28", unix(2002, 9, 24, 3, 28, 0), true},
		// ctime order: the time is taken with the date, so it is midnight.
		{"Mon Sep 23 22:28:43 2002", unix(2002, 9, 23, 0, 0, 0), true},
		{"23 Sep 02 22:28:43 +0000", unix(2002, 9, 23, 22, 28, 43), true},
		{"23 Sep 98 22:28:43 +0000", unix(1998, 9, 23, 22, 28, 43), true},
		// Out of range fields are forced into range.
		{"31 Sep 2002 25:61:61 +0000", unix(2002, 10, 1, 23, 59, 59), true},
		{"1 Jan 2099 00:00:00 +0000", unix(2037, 1, 1, 0, 0, 0), true},
		{"1 Jan 1970 00:00:00 +0100", 0, true},
		{"0 Jan 2002 00:00:00 +0000", 0, false},
		{"2002-09-23 22:28:43", 0, false},
	} {
		got, ok := parseRFC822Date(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRFC822Date(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestDateDiff: the date rules' Date minus Received time as
// HeaderEval.pm's _check_date_diff computes it.
func TestDateDiff(t *testing.T) {
	const fetchmail = "Received: from localhost (jalapeno [127.0.0.1])\r\n\tby example.org (Postfix) with ESMTP id 1\r\n\tfor <a@localhost>; Mon, 23 Sep 2002 22:50:17 +0100 (IST)\r\n" +
		"Received: from jalapeno [127.0.0.1]\r\n\tby localhost with IMAP (fetchmail-5.9.0)\r\n\tfor a@localhost (single-drop); Mon, 23 Sep 2002 22:50:17 +0100 (IST)\r\n"
	for _, tc := range []struct {
		name, header string
		want         float64
	}{
		// The fetchmail fields are left out: the closest time is the
		// delivery's, 8 hours before the Date.
		{"fetchmail", fetchmail +
			"Received: from a (a [192.0.2.1]) by b; Mon, 23 Sep 2002 19:26:33 +0100\r\n" +
			"Date: Mon, 23 Sep 2002 22:28:43 -0400\r\n", 8*3600 + 2*60 + 10},
		// A zone name is read with Util.pm's table.
		{"zone name", "Received: from a (a [192.0.2.1]) by b; Sun, 29 Sep 2002 07:03:01 -0700 (PDT)\r\n" +
			"Date: Sun, 29 Sep 2002 07:03:02 PDT\r\n", 1},
		// Resent-Date comes before Date.
		{"resent", "Received: from a (a [192.0.2.1]) by b; Sun, 29 Sep 2002 07:00:00 +0000\r\n" +
			"Date: Sun, 29 Sep 2002 07:00:00 +0000\r\nResent-Date: Sun, 29 Sep 2002 09:00:00 +0000\r\n", 7200},
		// A line break in the date is one space.
		{"folded", "Received: from a (a [192.0.2.1]) by b; Thu, 18 Apr 2002\r\n    20:24:18 +0200\r\n" +
			"Received: from c (c [192.0.2.2]) by a; Thu, 18 Apr 2002 14:00:00\r\n    +0000\r\n" +
			"Date: Thu, 18 Apr 2002 20:19:49 +0200\r\n", -269},
		// A localhost field not followed by a fetchmail one stays.
		{"localhost only", "Received: from localhost (localhost [127.0.0.1]) by b; Sun, 29 Sep 2002 07:00:00 +0000\r\n" +
			"Received: from a (a [192.0.2.1]) by b; Sun, 29 Sep 2002 01:00:00 +0000\r\n" +
			"Date: Sun, 29 Sep 2002 07:00:10 +0000\r\n", 10},
	} {
		c := &msgCtx{m: FromRaw([]byte(tc.header + "\r\nbody\r\n")), fields: map[string][]string{}}
		for _, f := range c.m.Header {
			c.fields[lowerName(f.Name)] = append(c.fields[lowerName(f.Name)], f.Value)
		}
		got, ok := c.computeDateDiff()
		if !ok || got != tc.want {
			t.Errorf("%s: date diff %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
}
