package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as "30s", "5m", "7d" in the config.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalText() ([]byte, error) {
	t := time.Duration(d)
	if t != 0 && t%(24*time.Hour) == 0 {
		return []byte(strconv.FormatInt(int64(t/(24*time.Hour)), 10) + "d"), nil
	}
	return []byte(t.String()), nil
}

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration accepts Go durations plus a "d" (day) suffix.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("policy: bad duration %q", s)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("policy: bad duration %q (examples: 500ms, 30s, 5m, 7d)", s)
	}
	return v, nil
}

// Size is a byte count written as "64MB", "512KiB", "1000" in the config.
// K/M/G are powers of 1024 whether or not the "i" is written: mail size
// limits are traditionally binary (Postfix's message_size_limit is bytes).
type Size int64

func (s Size) MarshalText() ([]byte, error) {
	for _, u := range []struct {
		n string
		v int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}} {
		if s != 0 && int64(s)%u.v == 0 {
			return []byte(strconv.FormatInt(int64(s)/u.v, 10) + u.n), nil
		}
	}
	return []byte(strconv.FormatInt(int64(s), 10)), nil
}

func (s *Size) UnmarshalText(b []byte) error {
	t := strings.ToUpper(strings.TrimSpace(string(b)))
	mult := int64(1)
	for _, u := range []struct {
		n string
		v int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.n) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.n)), u.v
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("policy: bad size %q (examples: 1048576, 512KB, 64MB)", b)
	}
	*s = Size(n * mult)
	return nil
}

// Prefix is an IP network written as "192.0.2.0/24", "2001:db8::/32" or a
// single address.
type Prefix netip.Prefix

func (p Prefix) P() netip.Prefix { return netip.Prefix(p) }

func (p Prefix) MarshalText() ([]byte, error) { return []byte(netip.Prefix(p).String()), nil }

func (p *Prefix) UnmarshalText(b []byte) error {
	v, err := ParsePrefix(string(b))
	if err != nil {
		return err
	}
	*p = Prefix(v)
	return nil
}

// ParsePrefix reads a CIDR prefix or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("policy: bad network %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("policy: bad address %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Networks is a list of prefixes.
type Networks []Prefix

// Contains reports whether addr is in one of the networks.
func (n Networks) Contains(addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	for _, p := range n {
		if netip.Prefix(p).Contains(addr) {
			return true
		}
	}
	return false
}
