// Package ratelimit holds exact rate limits on mail: the [[limit]] blocks
// that contain a compromised account (keyed by SASL user, sender address or
// domain, client IP or prefix, recipient or recipient domain), and the Rate
// type that the auto-reply guard uses for its per-destination limits.
//
// Semantics are exact: a limit of N per P never lets more than N events
// through in any interval of length P, however they are spread or bunched.
// The limiter is a sliding-window log (store.Store.Take), not a token
// bucket (which admits a full burst on top of a steady rate) nor a fixed
// window (which admits 2N across a window boundary). All limits that apply
// to one message are decided in one atomic step, so a message refused by
// one limit consumes nothing from the others, and several MTAs sharing a
// Redis store enforce one combined limit.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is "N per period", written "5/hour", "100/day", "10/5m", "1/7d".
type Rate struct {
	N   int
	Per time.Duration
}

// IsZero reports an unset rate (no limit).
func (r Rate) IsZero() bool { return r.N == 0 && r.Per == 0 }

func (r Rate) String() string {
	if r.IsZero() {
		return ""
	}
	for _, u := range units {
		if r.Per == u.d {
			return strconv.Itoa(r.N) + "/" + u.name
		}
	}
	if r.Per%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d/%dd", r.N, r.Per/(24*time.Hour))
	}
	return strconv.Itoa(r.N) + "/" + r.Per.String()
}

var units = []struct {
	name string
	d    time.Duration
}{
	{"second", time.Second}, {"minute", time.Minute}, {"hour", time.Hour}, {"day", 24 * time.Hour}, {"week", 7 * 24 * time.Hour},
	{"sec", time.Second}, {"min", time.Minute}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour},
}

// ParseRate reads "N/unit" or "N/duration": 5/hour, 100/day, 30/min,
// 10/15m, 1/7d. N may be 0 (nothing passes); the period must be positive
// and at most a year.
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("ratelimit: rate %q: want N/period, e.g. 5/hour or 100/day", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 0 || count > 1_000_000 {
		return Rate{}, fmt.Errorf("ratelimit: rate %q: count must be a number from 0 to 1000000", s)
	}
	per = strings.ToLower(strings.TrimSpace(per))
	var d time.Duration
	for _, u := range units {
		if per == u.name || per == u.name+"s" && len(u.name) > 1 {
			d = u.d
			break
		}
	}
	if d == 0 {
		num, unit := per, ""
		for i, c := range per {
			if (c < '0' || c > '9') && c != '.' {
				num, unit = per[:i], per[i:]
				break
			}
		}
		f, err := strconv.ParseFloat(num, 64)
		var ud time.Duration
		for _, u := range units {
			if unit == u.name || unit == u.name+"s" && len(u.name) > 1 {
				ud = u.d
			}
		}
		if pd, perr := time.ParseDuration(per); perr == nil && (err != nil || ud == 0) {
			f, ud, err = 1, pd, nil
		}
		if err != nil || ud == 0 || f <= 0 || f > 1e6 {
			return Rate{}, fmt.Errorf("ratelimit: rate %q: period must be a unit (second, minute, hour, day, week) or a duration like 15m or 7d", s)
		}
		d = time.Duration(f * float64(ud))
	}
	if d <= 0 || d > 366*24*time.Hour {
		return Rate{}, fmt.Errorf("ratelimit: rate %q: period must be positive and at most a year", s)
	}
	return Rate{N: count, Per: d}, nil
}

func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a rate; "" is no limit.
func (r *Rate) UnmarshalText(b []byte) error {
	if strings.TrimSpace(string(b)) == "" {
		*r = Rate{}
		return nil
	}
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
