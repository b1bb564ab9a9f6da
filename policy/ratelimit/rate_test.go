package ratelimit

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Rate
		ok   bool
	}{
		{"5/hour", Rate{5, time.Hour}, true},
		{"100/day", Rate{100, 24 * time.Hour}, true},
		{" 30 / min ", Rate{30, time.Minute}, true},
		{"10/15m", Rate{10, 15 * time.Minute}, true},
		{"1/7d", Rate{1, 7 * 24 * time.Hour}, true},
		{"2/1.5h", Rate{2, 90 * time.Minute}, true},
		{"3/hours", Rate{3, time.Hour}, true},
		{"0/hour", Rate{0, time.Hour}, true},
		{"1/w", Rate{1, 7 * 24 * time.Hour}, true},
		{"5", Rate{}, false},
		{"-1/hour", Rate{}, false},
		{"5/fortnight", Rate{}, false},
		{"5/0m", Rate{}, false},
		{"x/hour", Rate{}, false},
		{"5/400d", Rate{}, false},
		{"5/", Rate{}, false},
		{"/hour", Rate{}, false},
	} {
		got, err := ParseRate(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
	if s := (Rate{100, 24 * time.Hour}).String(); s != "100/day" {
		t.Errorf("String = %q", s)
	}
	if s := (Rate{1, 7 * 24 * time.Hour}).String(); s != "1/week" {
		t.Errorf("String = %q", s)
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"5/hour", "100/day", "10/15m", "1/7d", "2/1.5h", "", "/", "9999999/1e9d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r.N < 0 || r.Per <= 0 || r.Per > 366*24*time.Hour {
			t.Fatalf("ParseRate(%q) = %v", s, r)
		}
		r2, err := ParseRate(r.String())
		if err != nil || r2 != r {
			t.Fatalf("round trip %q → %q → %v %v", s, r.String(), r2, err)
		}
	})
}
