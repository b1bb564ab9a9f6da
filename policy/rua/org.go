package rua

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

// OrgDomain is the organizational domain of d (RFC 7489 §3.2): its public
// suffix per the Public Suffix List plus one label, or d itself when d is
// a public suffix. It is the rule policy/auth.OrgDomain applies; the
// daemon passes that function to Verifier so that both always agree.
func OrgDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	if d == "" {
		return ""
	}
	if e, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return e
	}
	return d
}
