package spam

import (
	"html"
	"net/netip"
	"regexp"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/mailwarden/mailwarden/policy/message"
)

var (
	// domainInText finds something that looks like a host name in link text.
	domainInText = regexp.MustCompile(`(?i)(?:https?://)?((?:[a-z0-9-]+\.)+[a-z]{2,})`)
)

// findURLs returns up to n URLs found in text: http(s):// URLs and bare
// www. hosts (RFC 3986 §3: scheme "://" authority path). A hand-written
// scanner, because a regular expression over every body was the single
// largest cost of the check.
func findURLs(text string, n int) []string {
	var out []string
	i := 0
	for len(out) < n {
		j := indexFold(text[i:])
		if j < 0 {
			break
		}
		start := i + j
		end := start
		for end < len(text) && !urlStop(text[end]) {
			end++
		}
		u := strings.TrimRight(text[start:end], ".,;:!?")
		if k := strings.Index(u, "://"); k >= 0 && len(u) > k+3 || strings.Count(u, ".") >= 2 {
			out = append(out, u)
		}
		i = max(end, start+1)
		if i >= len(text) {
			break
		}
	}
	return out
}

// indexFold finds the next "http://", "https://" or "www." (any case) at a
// word start.
func indexFold(s string) int {
	for i := 0; i+4 <= len(s); i++ {
		c := s[i] | 0x20
		if c != 'h' && c != 'w' {
			continue
		}
		if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '/' || s[i-1] == '.') {
			continue
		}
		rest := s[i:]
		switch {
		case c == 'w' && len(rest) > 4 && strings.EqualFold(rest[:4], "www.") && isAlnum(rest[4]):
			return i
		case c == 'h' && len(rest) >= 8 && strings.EqualFold(rest[:7], "http://"):
			return i
		case c == 'h' && len(rest) >= 9 && strings.EqualFold(rest[:8], "https://"):
			return i
		}
	}
	return -1
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func urlStop(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '<', '>', '"', '\'', '(', ')', '[', ']', '{', '}':
		return true
	}
	return c < ' ' || c == 0x7f
}

// messageURLs returns the distinct URLs of a message: those in the decoded
// text and the href/src attributes of its HTML parts, at most n.
func messageURLs(m *message.Message, n int) []string {
	parts := m.Parts()
	return partURLs(parts, m.Text(), func(i int) string { return strings.ToLower(parts[i].Text) }, n)
}

// partURLs is messageURLs of a message's parts and text; lower(i) is
// strings.ToLower(parts[i].Text), which the caller may have at hand.
func partURLs(parts []message.Part, text string, lower func(i int) string, n int) []string {
	seen := map[string]bool{}
	var out []string
	add := func(u string) {
		if len(out) < n && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for i, p := range parts {
		if p.ContentType != "text/html" {
			continue
		}
		for _, v := range attrValuesLower(p.Text, lower(i), n) {
			if len(v) > 4 && strings.EqualFold(v[:4], "http") {
				add(html.UnescapeString(v))
			}
		}
	}
	for _, u := range findURLs(text, n) {
		add(u)
	}
	return out
}

// alignedLower returns lower (strings.ToLower(h)) when its bytes line up
// with h's, else h with only A-Z lowered. The scanners below find their
// (ASCII) keywords in the lower-case text and cut h at the same offsets;
// lowering a non-ASCII rune can change its length (the Kelvin sign
// K, 3 bytes, becomes k), which would shift the offsets, or run them past
// h's end. None of their keywords has a non-ASCII capital, so A-Z alone
// finds the same ones.
func alignedLower(h, lower string) string {
	if len(lower) == len(h) && isASCII(h) {
		return lower
	}
	b := []byte(h)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// attrValues returns the values of the href and src attributes in HTML,
// at most n, scanning by hand (the equivalent regular expression was the
// largest cost of the check on HTML mail).
func attrValues(h string, n int) []string { return attrValuesLower(h, strings.ToLower(h), n) }

// attrValuesLower is attrValues with strings.ToLower(h) at hand.
func attrValuesLower(h, lower string, n int) []string {
	lower = alignedLower(h, lower)
	var out []string
	for i := 0; len(out) < n; {
		j := strings.IndexAny(lower[i:], "hs")
		if j < 0 {
			break
		}
		k := i + j
		i = k + 1
		var name int
		switch {
		case strings.HasPrefix(lower[k:], "href"):
			name = 4
		case strings.HasPrefix(lower[k:], "src"):
			name = 3
		default:
			continue
		}
		if k > 0 && (isAlnum(lower[k-1]) || lower[k-1] == '-' || lower[k-1] == '_') {
			continue
		}
		p := k + name
		for p < len(h) && isSpace(h[p]) {
			p++
		}
		if p >= len(h) || h[p] != '=' {
			continue
		}
		p++
		for p < len(h) && isSpace(h[p]) {
			p++
		}
		if p < len(h) && (h[p] == '"' || h[p] == '\'') {
			p++
		}
		e := p
		for e < len(h) && !isSpace(h[e]) && h[e] != '"' && h[e] != '\'' && h[e] != '>' {
			e++
		}
		if e > p {
			out = append(out, h[p:e])
		}
		i = max(i, e)
	}
	return out
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' }

// urlHost returns the lower-case host of a URL ("" if none): userinfo,
// port, path and a trailing dot removed. Hostile URLs hide the real host
// behind "user@" (RFC 3986 §3.2.1), so everything before the last '@' of
// the authority is dropped.
func urlHost(u string) string {
	s := u
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#\\"); i >= 0 {
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 {
			return strings.ToLower(s[1:i])
		}
		return ""
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[:i]
	}
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if s == "" || len(s) > 253 || strings.ContainsAny(s, " \t%") {
		return ""
	}
	return s
}

// registrable returns the registrable domain (eTLD+1) of a host, or the
// host itself for IP addresses and names without a public suffix.
func registrable(host string) string {
	if _, err := netip.ParseAddr(host); err == nil {
		return host
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return host
	}
	return d
}

// isIPHost reports whether a URL host is a literal address (or a number
// that browsers read as one).
func isIPHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && c != '.' && c != 'x' {
			return false
		}
	}
	return true
}

// linkMismatch reports whether an HTML part has a link whose visible text
// names a host in another registrable domain than its href: the phisher's
// <a href="http://evil.example">https://www.bank.example</a>. It scans by
// hand (a regular expression with a lazy .*? between <a> and </a> is
// quadratic on hostile HTML), looking at most 200 links. lower is
// strings.ToLower(h).
func linkMismatch(h, lower string) (string, bool) {
	lower = alignedLower(h, lower)
	pos := 0
	for n := 0; n < 200; n++ {
		i := strings.Index(lower[pos:], "<a")
		if i < 0 {
			return "", false
		}
		i += pos
		pos = i + 2
		if pos >= len(h) || !(h[pos] == ' ' || h[pos] == '\t' || h[pos] == '\n' || h[pos] == '\r') {
			continue
		}
		gt := strings.IndexByte(h[pos:], '>')
		if gt < 0 {
			return "", false
		}
		tag := h[pos : pos+gt]
		pos += gt + 1
		end := strings.Index(lower[pos:min(len(lower), pos+2000)], "</a")
		if end < 0 {
			continue
		}
		inner := h[pos : pos+end]
		pos += end
		vals := attrValues(tag, 1)
		if len(vals) == 0 {
			continue
		}
		href := html.UnescapeString(vals[0])
		if !strings.HasPrefix(strings.ToLower(href), "http") {
			continue
		}
		hd := registrable(urlHost(href))
		text := strings.TrimSpace(html.UnescapeString(htmlTag.ReplaceAllString(inner, "")))
		if hd == "" || text == "" || strings.ContainsAny(text, " \t\r\n") && !strings.Contains(strings.ToLower(text), "http") {
			continue
		}
		dm := domainInText.FindStringSubmatch(text)
		if dm == nil {
			continue
		}
		if !strings.Contains(text, "/") && !strings.HasPrefix(strings.ToLower(dm[1]), "www.") {
			// "example.com" alone in text is often a name, not a link; only
			// URL-looking text counts.
			continue
		}
		if _, err := publicsuffix.EffectiveTLDPlusOne(strings.ToLower(dm[1])); err != nil {
			continue
		}
		if td := registrable(strings.ToLower(dm[1])); td != hd {
			return td + "→" + hd, true
		}
	}
	return "", false
}

var htmlTag = regexp.MustCompile(`(?s)<[^>]*>`)
