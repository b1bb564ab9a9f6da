package sign

import (
	"fmt"
	"strings"
	"time"
)

type ruleKind int

const (
	ruleExact     ruleKind = iota // user@example.com
	ruleDomain                    // *@example.com
	ruleSubdomain                 // *@.example.com: any subdomain, not the domain itself
)

type rule struct {
	kind   ruleKind
	addr   string // exact address, lower case
	domain string // lower case, without the leading dot
	keys   []*Key
}

func parseRule(from string) (rule, error) {
	p := strings.ToLower(strings.TrimSpace(from))
	local, domain, ok := strings.Cut(p, "@")
	if !ok || domain == "" || strings.Contains(domain, "@") || strings.ContainsAny(p, " \t") {
		return rule{}, fmt.Errorf("%w: %q (want user@domain, *@domain or *@.domain)", ErrRuleSyntax, from)
	}
	switch {
	case local == "*" && strings.HasPrefix(domain, "."):
		d := strings.TrimPrefix(domain, ".")
		if d == "" || strings.HasPrefix(d, ".") {
			return rule{}, fmt.Errorf("%w: %q", ErrRuleSyntax, from)
		}
		return rule{kind: ruleSubdomain, domain: d}, nil
	case local == "*":
		return rule{kind: ruleDomain, domain: domain}, nil
	case local == "" || strings.Contains(local, "*") || strings.HasPrefix(domain, "."):
		return rule{}, fmt.Errorf("%w: %q", ErrRuleSyntax, from)
	}
	return rule{kind: ruleExact, addr: p, domain: domain}, nil
}

// rank orders matches: an exact address beats *@domain, which beats
// *@.parent; among subdomain rules the longest parent wins.
func (r rule) rank() int {
	switch r.kind {
	case ruleExact:
		return 1 << 20
	case ruleDomain:
		return 1 << 19
	}
	return len(r.domain)
}

func (r rule) match(addr, domain string) bool {
	switch r.kind {
	case ruleExact:
		return addr == r.addr
	case ruleDomain:
		return domain == r.domain
	}
	return strings.HasSuffix(domain, "."+r.domain)
}

// Match returns the keys of the most specific rule for a From address
// (nil when no rule matches). Comparison ignores case.
func (t *Table) Match(from string) []*Key {
	addr := strings.ToLower(strings.TrimSpace(from))
	_, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return nil
	}
	domain = strings.TrimSuffix(domain, ".")
	best, bestRank := -1, -1
	for i, r := range t.rules {
		if r.match(addr, domain) && r.rank() > bestRank {
			best, bestRank = i, r.rank()
		}
	}
	if best < 0 {
		return nil
	}
	return t.rules[best].keys
}

// Select returns the keys that sign a message from the From address at
// time now: those of the best rule that are inside their validity window
// and usable (their DNS record matches; nil usable means all are);
// Ed25519 keys only when enabled and an RSA key signs too.
func (t *Table) Select(from string, now time.Time, usable func(*Key) bool) []*Key {
	var rsaKeys, edKeys []*Key
	for _, k := range t.Match(from) {
		if !k.ActiveAt(now) || (usable != nil && !usable(k)) {
			continue
		}
		if k.Ed25519() {
			if t.ed25519 {
				edKeys = append(edKeys, k)
			}
			continue
		}
		rsaKeys = append(rsaKeys, k)
	}
	if len(rsaKeys) == 0 {
		return nil
	}
	return append(rsaKeys, edKeys...)
}

// Senders says which domains an authenticated user may get signatures
// for: the domains listed for the user, or else the domain of the user
// name itself when it is an address.
type Senders map[string][]string

// MaySendAs reports whether user may send mail From domain (or one of
// its subdomains when the entry is written ".example.com").
func (s Senders) MaySendAs(user, domain string) bool {
	user = strings.ToLower(user)
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if ds, ok := s[user]; ok {
		for _, d := range ds {
			d = strings.ToLower(d)
			if d == domain || strings.HasPrefix(d, ".") && strings.HasSuffix(domain, d) {
				return true
			}
		}
		return false
	}
	_, own, ok := strings.Cut(user, "@")
	return ok && own == domain
}
