package spam

import (
	"html"
	"net/netip"
	"regexp"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/mailwarden/mailwarden/policy"
)

var (
	// urlRE finds http(s) URLs and bare www. hosts in text (RFC 3986
	// §3: scheme "://" authority; we only need the authority).
	urlRE = regexp.MustCompile(`(?i)\b(?:https?://[^\s<>"'()\[\]{}]+|www\.[a-z0-9-]+(?:\.[a-z0-9-]+)+[^\s<>"'()\[\]{}]*)`)
	// anchorRE finds <a href="...">text</a> in HTML.
	anchorRE = regexp.MustCompile(`(?is)<a\s[^>]*?href\s*=\s*["']?([^"'\s>]+)["']?[^>]*>(.*?)</a\s*>`)
	// hrefRE finds every href/src attribute value.
	hrefRE = regexp.MustCompile(`(?i)\b(?:href|src)\s*=\s*["']?([^"'\s>]+)`)
	// domainInText finds something that looks like a host name in link text.
	domainInText = regexp.MustCompile(`(?i)(?:https?://)?((?:[a-z0-9-]+\.)+[a-z]{2,})`)
)

// findURLs returns up to n URLs found in text.
func findURLs(text string, n int) []string {
	return urlRE.FindAllString(text, n)
}

// messageURLs returns the distinct URLs of a message: those in the decoded
// text and the href/src attributes of its HTML parts, at most n.
func messageURLs(m *policy.Message, n int) []string {
	seen := map[string]bool{}
	var out []string
	add := func(u string) {
		if len(out) < n && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for _, p := range m.Parts() {
		if p.ContentType != "text/html" {
			continue
		}
		for _, mm := range hrefRE.FindAllStringSubmatch(p.Text, n) {
			u := html.UnescapeString(mm[1])
			if strings.HasPrefix(strings.ToLower(u), "http") {
				add(u)
			}
		}
	}
	for _, u := range findURLs(m.Text(), n) {
		add(u)
	}
	return out
}

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
// <a href="http://evil.example">https://www.bank.example</a>.
func linkMismatch(htmlText string) (string, bool) {
	for _, m := range anchorRE.FindAllStringSubmatch(htmlText, 200) {
		href := html.UnescapeString(m[1])
		if !strings.HasPrefix(strings.ToLower(href), "http") {
			continue
		}
		hd := registrable(urlHost(href))
		text := strings.TrimSpace(html.UnescapeString(htmlTag.ReplaceAllString(m[2], "")))
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
		td := registrable(strings.ToLower(dm[1]))
		if _, err := publicsuffix.EffectiveTLDPlusOne(strings.ToLower(dm[1])); err != nil {
			continue
		}
		if td != hd {
			return td + "→" + hd, true
		}
	}
	return "", false
}

var htmlTag = regexp.MustCompile(`(?s)<[^>]*>`)
