package autoreply

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func testSRS() *SRS {
	return &SRS{Secrets: [][]byte{[]byte("new-secret-0123456789")}, Domain: "example.org", MaxAge: 21 * day}
}

func TestSRSRoundTrip(t *testing.T) {
	s := testSRS()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, a := range []string{"bob@remote.test", "Bob.Smith+tag@Remote.Test", "a=b@remote.test", "\"odd local\"@remote.test"} {
		f, err := s.Forward(a, now)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(f, "SRS0=") || !strings.HasSuffix(f, "@example.org") || !s.IsSRS(f) {
			t.Fatalf("Forward(%q) = %q", a, f)
		}
		back, err := s.Reverse(f, now.Add(20*day))
		if err != nil || !strings.EqualFold(back, a) {
			t.Fatalf("Reverse(%q) = %q, %v; want %q", f, back, err, a)
		}
		// Some MTAs change the case of the local part.
		if back, err := s.Reverse(strings.ToUpper(f[:12])+f[12:], now); err != nil || !strings.EqualFold(back, a) {
			t.Fatalf("upper-cased hash: %q %v", back, err)
		}
	}
	if f, _ := s.Forward("", now); f != "" {
		t.Fatal("null sender rewritten")
	}
	if f, _ := s.Forward("alice@EXAMPLE.org", now); f != "alice@EXAMPLE.org" {
		t.Fatal("own address rewritten")
	}
}

func TestSRSRejects(t *testing.T) {
	s := testSRS()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f, _ := s.Forward("bob@remote.test", now)
	cases := map[string]string{
		"expired":      f,
		"tampered":     strings.Replace(f, "=bob@", "=eve@", 1),
		"other-domain": strings.Replace(f, "=remote.test=", "=evil.test=", 1),
		"malformed":    "SRS0=abcd=xx@example.org",
		"not-ours":     strings.Replace(f, "@example.org", "@other.test", 1),
	}
	for name, a := range cases {
		at := now
		if name == "expired" {
			at = now.Add(22 * day)
		}
		if _, err := s.Reverse(a, at); !errors.Is(err, ErrSRS) {
			t.Errorf("%s: Reverse(%q) = %v, want ErrSRS", name, a, err)
		}
	}
	// Key rollover: an address made with the old secret still verifies.
	old := &SRS{Secrets: [][]byte{[]byte("old-secret-0123456789")}, Domain: "example.org", MaxAge: 21 * day}
	f, _ = old.Forward("bob@remote.test", now)
	if _, err := s.Reverse(f, now); err == nil {
		t.Fatal("foreign secret verified")
	}
	s.Secrets = append(s.Secrets, []byte("old-secret-0123456789"))
	if _, err := s.Reverse(f, now); err != nil {
		t.Fatalf("old secret: %v", err)
	}
	// The day stamp wraps at 1024 days.
	f, _ = s.Forward("bob@remote.test", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(1023*day))
	if _, err := s.Reverse(f, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(1025*day)); err != nil {
		t.Fatalf("across the wrap: %v", err)
	}
}

func FuzzSRSReverse(f *testing.F) {
	s := testSRS()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	good, _ := s.Forward("bob@remote.test", now)
	for _, a := range []string{good, "SRS0=@example.org", "SRS0====@example.org", "srs0=aaaa=zz=d=l@example.org", "x@y"} {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, a string) {
		orig, err := s.Reverse(a, now)
		if err != nil {
			return
		}
		// Whatever verifies carries the hash we would have made for it.
		f := strings.SplitN(a[5:strings.LastIndexByte(a, '@')], "=", 4)
		if len(f) != 4 || !strings.EqualFold(s.hash(s.Secrets[0], strings.ToLower(f[1]), f[2], f[3]), f[0]) || orig != f[3]+"@"+f[2] {
			t.Fatalf("Reverse(%q) = %q", a, orig)
		}
	})
}
