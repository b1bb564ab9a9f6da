package policy

import (
	"net/netip"
	"testing"
	"time"
)

func TestParseAction(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Action
		err  bool
	}{
		{"accept", ActionAccept, false},
		{"quarantine", ActionQuarantine, false},
		{"tempfail", ActionTempfail, false},
		{"discard", ActionDiscard, false},
		{"reject", ActionReject, false},
		{" REJECT ", ActionReject, false},
		{"Quarantine", ActionQuarantine, false},
		{"hold", ActionQuarantine, false}, // the alias, in every section
		{" HOLD ", ActionQuarantine, false},
		{"", 0, true},
		{"deny", 0, true},
		{"rejected", 0, true},
	} {
		got, err := ParseAction(tc.in)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("ParseAction(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.err)
		}
		if !tc.err {
			// Round trip through the text form.
			b, _ := got.MarshalText()
			var back Action
			if err := back.UnmarshalText(b); err != nil || back != got {
				t.Errorf("round trip of %v: %v, %v", got, back, err)
			}
		}
	}
	if s := Action(9).String(); s != "action(9)" {
		t.Errorf("Action(9).String() = %q", s)
	}
}

func TestActionSeverity(t *testing.T) {
	order := []Action{ActionAccept, ActionQuarantine, ActionTempfail, ActionDiscard, ActionReject}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Errorf("%v must be more severe than %v", order[i], order[i-1])
		}
	}
}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Reply
		err  bool
	}{
		{"550 5.7.1 Message rejected by policy", Reply{550, "5.7.1", "Message rejected by policy"}, false},
		{"  451 4.7.1   Try later  ", Reply{451, "4.7.1", "Try later"}, false},
		{"554", Reply{554, "", ""}, false},
		{"550 5.7.1", Reply{550, "5.7.1", ""}, false},
		{"550 No enhanced code here", Reply{550, "", "No enhanced code here"}, false},
		{"550 5.7 not enhanced", Reply{550, "", "5.7 not enhanced"}, false},
		{"552 5.3.4 Message too big", Reply{552, "5.3.4", "Message too big"}, false},
		{"550 5.123.456 long subject", Reply{550, "5.123.456", "long subject"}, false},
		{"550 5.1234.1 too long", Reply{550, "", "5.1234.1 too long"}, false},
		{"250 ok", Reply{}, true},
		{"399 x", Reply{}, true},
		{"600 x", Reply{}, true},
		{"abc", Reply{}, true},
		{"", Reply{}, true},
		{"550-5.7.1 multiline", Reply{}, true},
		{"450 5.7.1 class mismatch", Reply{}, true},
		{"550 4.7.1 class mismatch", Reply{}, true},
		{"550 2.0.0 class mismatch", Reply{}, true},
		{"550 5.7.1 bad\x00nul", Reply{}, true},
		{"550 5.7.1 two\r\nlines", Reply{}, true},
	} {
		got, err := ParseReply(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseReply(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseReply(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if !tc.err {
			back, err := ParseReply(got.String())
			if err != nil || back != got {
				t.Errorf("ParseReply(%q.String()=%q) = %+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
	if !(Reply{}).IsZero() || (Reply{Code: 550}).IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		err  bool
	}{
		{"enforce", ModeEnforce, false},
		{"monitor", ModeMonitor, false},
		{"tempfail-all", ModeTempfailAll, false},
		{"accept-all", ModeAcceptAll, false},
		{" monitor ", ModeMonitor, false},
		{"", "", true},
		{"off", "", true},
		{"tempfail_all", "", true},
	} {
		got, err := ParseMode(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30s", 30 * time.Second, false},
		{"500ms", 500 * time.Millisecond, false},
		{"5m", 5 * time.Minute, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"1.5d", 36 * time.Hour, false},
		{" 2h ", 2 * time.Hour, false},
		{"0s", 0, false},
		{"-1s", 0, true},
		{"-1d", 0, true},
		{"d", 0, true},
		{"", 0, true},
		{"30", 0, true},
		{"soon", 0, true},
	} {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		d    Duration
		want string
	}{
		{Duration(7 * 24 * time.Hour), "7d"},
		{Duration(90 * time.Second), "1m30s"},
		{Duration(0), "0s"},
		{Duration(25 * time.Hour), "25h0m0s"},
	} {
		b, _ := tc.d.MarshalText()
		if string(b) != tc.want {
			t.Errorf("Duration(%v).MarshalText() = %q, want %q", time.Duration(tc.d), b, tc.want)
		}
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back != tc.d {
			t.Errorf("round trip %q: %v, %v", b, time.Duration(back), err)
		}
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		err  bool
	}{
		{"1000", 1000, false},
		{"0", 0, false},
		{"64MB", 64 << 20, false},
		{"64mb", 64 << 20, false},
		{"512KiB", 512 << 10, false},
		{"512KB", 512 << 10, false},
		{"1G", 1 << 30, false},
		{"2GiB", 2 << 30, false},
		{"10 MB", 10 << 20, false},
		{"7B", 7, false},
		{"1M", 1 << 20, false},
		{"", 0, true},
		{"MB", 0, true},
		{"-1", 0, true},
		{"1.5MB", 0, true},
		{"64 megabytes", 0, true},
		{"99999999999999G", 0, true},
		{"9223372036854775807", 0, true},
	} {
		var s Size
		err := s.UnmarshalText([]byte(tc.in))
		if (err != nil) != tc.err || (!tc.err && s != tc.want) {
			t.Errorf("Size(%q) = %d, %v; want %d, err=%v", tc.in, s, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		s    Size
		want string
	}{{64 << 20, "64MB"}, {512 << 10, "512KB"}, {3 << 30, "3GB"}, {1000, "1000"}, {0, "0"}, {1536 << 10, "1536KB"}} {
		b, _ := tc.s.MarshalText()
		if string(b) != tc.want {
			t.Errorf("Size(%d).MarshalText() = %q, want %q", tc.s, b, tc.want)
		}
		var back Size
		if err := back.UnmarshalText(b); err != nil || back != tc.s {
			t.Errorf("round trip %q: %d, %v", b, back, err)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"192.0.2.1", "192.0.2.1/32", false},
		{"192.0.2.77/24", "192.0.2.0/24", false},
		{"2001:db8::/32", "2001:db8::/32", false},
		{"2001:db8::1", "2001:db8::1/128", false},
		{"::ffff:192.0.2.1", "192.0.2.1/32", false},
		{" 10.0.0.0/8 ", "10.0.0.0/8", false},
		{"192.0.2", "", true},
		{"192.0.2.0/33", "", true},
		{"example.org", "", true},
		{"", "", true},
	} {
		got, err := ParsePrefix(tc.in)
		if (err != nil) != tc.err || (!tc.err && got.String() != tc.want) {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
	var n Networks
	for _, s := range []string{"192.0.2.0/24", "2001:db8::/32"} {
		var p Prefix
		if err := p.UnmarshalText([]byte(s)); err != nil {
			t.Fatal(err)
		}
		n = append(n, p)
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"192.0.2.200", true},
		{"::ffff:192.0.2.9", true}, // v4-mapped client addresses count as v4
		{"192.0.3.1", false},
		{"2001:db8:1::5", true},
		{"2001:db9::1", false},
	} {
		if got := n.Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if n.Contains(netip.Addr{}) {
		t.Error("the zero address (local submission) must not be in any network")
	}
}
