package corpus

import (
	"strings"
	"testing"
	"time"
)

func TestSplit(t *testing.T) {
	mbox := "From a@example.com Mon Nov 23 10:00:00 2026\nSubject: one\n\nbody one\n>From the start\n\n" +
		"From b@example.com Mon Nov 23 10:01:00 2026\nSubject: two\n\nFrom here on, not a separator\n\n" +
		"From c@example.com Mon Nov 23 10:02:00 2026\nSubject: three\n\nthree\n"
	msgs := Split([]byte(mbox))
	if len(msgs) != 3 {
		t.Fatalf("%d messages: %q", len(msgs), msgs)
	}
	if !strings.Contains(string(msgs[0]), "\nFrom the start") || strings.HasPrefix(string(msgs[0]), "From ") {
		t.Errorf("first message %q", msgs[0])
	}
	if !strings.Contains(string(msgs[1]), "From here on") {
		t.Errorf("a body line starting with From split the message: %q", msgs[1])
	}
	eml := "Subject: plain\n\nFrom the body\n"
	if m := Split([]byte(eml)); len(m) != 1 || string(m[0]) != eml {
		t.Errorf(".eml split: %q", m)
	}
	// One corpus-style file: "From " line, then one message.
	one := "From x@y Thu Aug 22 12:36:23 2002\nSubject: s\n\nb\n"
	if m := Split([]byte(one)); len(m) != 1 || !strings.HasPrefix(string(m[0]), "Subject: s") {
		t.Errorf("single mbox entry: %q", m)
	}
}

func TestReceived(t *testing.T) {
	cases := []struct {
		raw  string
		want string
		ok   bool
	}{
		{"Received: from a by b; Mon, 2 Sep 2002 10:00:00 +0000\nReceived: from c by a; Sun, 1 Sep 2002 10:00:00 +0000\nDate: Sat, 1 Jan 2000 00:00:00 +0000\n\nbody\n", "2002-09-02T10:00:00Z", true},
		{"Received: garbage without a date\nDate: Sat, 1 Jan 2000 00:00:00 +0000\n\nbody\n", "2000-01-01T00:00:00Z", true},
		{"Subject: none\r\n\r\nbody\r\n", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, ok := Received([]byte(c.raw))
		if ok != c.ok || (ok && got.UTC().Format(time.RFC3339) != c.want) {
			t.Errorf("%q: %v %v, want %s %v", c.raw, got, ok, c.want, c.ok)
		}
	}
}
