package auth

import (
	"net/mail"
	"strings"

	"github.com/mailwarden/mailwarden/policy/message"
)

// FromDomains extracts the RFC5322.From domains (RFC 7489 §3.1, §6.6.1):
// every address of every From field, normalised, duplicates removed. ok is
// false when there is no From field or an address cannot be parsed at all.
func FromDomains(h message.Header) (domains []string, fields int, ok bool) {
	seen := map[string]bool{}
	ok = true
	for _, v := range h.Values("From") {
		fields++
		addrs := parseAddrs(v)
		if len(addrs) == 0 {
			ok = false
			continue
		}
		for _, a := range addrs {
			d := NormalizeDomain(message.Domain(a))
			if d == "" {
				ok = false
				continue
			}
			if !seen[d] {
				seen[d] = true
				domains = append(domains, d)
			}
		}
	}
	if fields == 0 {
		ok = false
	}
	return domains, fields, ok
}

// parseAddrs returns the addr-specs of a From value. RFC 5322 parsing
// first; if that fails, a lenient scan for <...> or the last word with an
// "@", because mail in the wild is often malformed and the domain is what
// matters here.
func parseAddrs(v string) []string {
	if len(v) > 8192 {
		v = v[:8192]
	}
	if list, err := (&mail.AddressParser{}).ParseList(v); err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, a.Address)
		}
		return out
	}
	var out []string
	rest := v
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			break
		}
		if a := strings.TrimSpace(rest[i+1 : i+j]); strings.Contains(a, "@") {
			out = append(out, a)
		}
		rest = rest[i+j+1:]
	}
	if len(out) == 0 {
		for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == ';' }) {
			w = strings.Trim(w, "<>()\"'")
			if strings.Count(w, "@") == 1 && !strings.HasSuffix(w, "@") {
				out = append(out, w)
			}
		}
	}
	return out
}
