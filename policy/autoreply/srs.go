package autoreply

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy/message"
)

// SRS rewrites envelope senders of forwarded mail into our namespace
// (the Sender Rewriting Scheme, Shevek 2004; the SRS0 form):
//
//	SRS0=HHHH=TT=orig-domain=orig-local@srs-domain
//
// TT is the day (mod 1024, two base32 letters) and HHHH a keyed hash
// (HMAC-SHA256 over TT, domain and local part, lower-cased, truncated to
// four base32 letters), so that only addresses we made are accepted back
// and only for MaxAge. The base32 alphabet is case-insensitive: some MTAs
// change the case of local parts. A bounce to such an address is turned
// back into the original sender.
type SRS struct {
	Secrets [][]byte // the first signs; all verify (key rollover)
	Domain  string
	MaxAge  time.Duration
}

// ErrSRS reports an SRS address that is ours but invalid: bad hash, too
// old, malformed. Permanent.
var ErrSRS = errors.New("autoreply: srs: invalid address")

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const day = 24 * time.Hour

func srsStamp(t time.Time) string {
	d := uint(t.Unix()/int64(day/time.Second)) % 1024
	return string([]byte{b32alpha[d>>5], b32alpha[d&31]})
}

const b32alpha = "abcdefghijklmnopqrstuvwxyz234567"

func (s *SRS) hash(secret []byte, stamp, domain, local string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strings.ToLower(stamp + "=" + domain + "=" + local)))
	return b32.EncodeToString(m.Sum(nil))[:4]
}

// Forward rewrites addr (user@domain) into an SRS0 address of s.Domain.
// Addresses already in s.Domain and the null sender are returned as is.
func (s *SRS) Forward(addr string, now time.Time) (string, error) {
	if addr == "" || strings.EqualFold(message.Domain(addr), s.Domain) {
		return addr, nil
	}
	local, domain := message.LocalPart(addr), message.Domain(addr)
	if local == "" || domain == "" {
		return "", fmt.Errorf("autoreply: srs: cannot rewrite %q", addr)
	}
	stamp := srsStamp(now)
	h := s.hash(s.Secrets[0], stamp, domain, local)
	return "SRS0=" + h + "=" + stamp + "=" + domain + "=" + local + "@" + s.Domain, nil
}

// IsSRS reports whether addr looks like one of our SRS0 addresses.
func (s *SRS) IsSRS(addr string) bool {
	lp := message.LocalPart(addr)
	return len(lp) > 5 && strings.EqualFold(lp[:5], "SRS0=") && strings.EqualFold(message.Domain(addr), s.Domain)
}

// Reverse verifies an SRS0 address of ours and returns the original
// address. It fails with ErrSRS for a forged, malformed or expired one.
func (s *SRS) Reverse(addr string, now time.Time) (string, error) {
	if !s.IsSRS(addr) {
		return "", fmt.Errorf("%w: %q is not an SRS0 address of %s", ErrSRS, addr, s.Domain)
	}
	// SRS0=HHHH=TT=domain=local: the local part may itself contain "=".
	f := strings.SplitN(message.LocalPart(addr)[5:], "=", 4)
	if len(f) != 4 || len(f[0]) != 4 || len(f[1]) != 2 || f[2] == "" || f[3] == "" {
		return "", fmt.Errorf("%w: malformed %q", ErrSRS, addr)
	}
	hash, stamp, domain, local := strings.ToLower(f[0]), strings.ToLower(f[1]), f[2], f[3]
	ok := false
	for _, sec := range s.Secrets {
		if subtle.ConstantTimeCompare([]byte(s.hash(sec, stamp, domain, local)), []byte(hash)) == 1 {
			ok = true
		}
	}
	if !ok {
		return "", fmt.Errorf("%w: bad hash in %q", ErrSRS, addr)
	}
	// Age in days, modulo the 1024-day cycle of the stamp.
	hi, lo := strings.IndexByte(b32alpha, stamp[0]), strings.IndexByte(b32alpha, stamp[1])
	if hi < 0 || lo < 0 {
		return "", fmt.Errorf("%w: bad timestamp in %q", ErrSRS, addr)
	}
	then := hi<<5 | lo
	today := int(now.Unix()/int64(day/time.Second)) % 1024
	age := (today - then + 1024) % 1024
	if time.Duration(age)*day > s.MaxAge {
		return "", fmt.Errorf("%w: %q is %d days old", ErrSRS, addr, age)
	}
	return local + "@" + domain, nil
}
