package spam

import (
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam/sa"
)

// Heuristic is one built-in test of the header or body. Its weight is the
// default; [spam.heuristics] overrides it by name (0 turns it off).
type Heuristic struct {
	Name   string
	Weight float64
	Doc    string
	Test   func(v *view) bool
}

// view is what the heuristics look at: the header without ignored fields,
// the MIME leaves, the decoded text and the URLs, each computed once.
type view struct {
	m      *message.Message
	header message.Header
	parts  []message.Part
	text   string
	urls   []string
	hosts  []string

	// lower holds the text of each text/html part in lower case (""
	// for the other parts): three scanners read it.
	lower    []string
	html     string // the raw HTML of the HTML parts (htmlOf), once asked
	htmlDone bool
}

func newView(m *message.Message, ignore *HeaderSet) *view {
	v := &view{m: m, parts: m.Parts(), text: m.Text(), header: make(message.Header, 0, len(m.Header))}
	for _, f := range m.Header {
		if !ignore.Match(strings.ToLower(f.Name)) {
			v.header = append(v.header, f)
		}
	}
	v.lower = make([]string, len(v.parts))
	for i, p := range v.parts {
		if p.ContentType == "text/html" {
			v.lower[i] = strings.ToLower(p.Text)
		}
	}
	v.urls = partURLs(v.parts, v.text, func(i int) string { return v.lower[i] }, maxURLs)
	for _, u := range v.urls {
		if h := urlHost(u); h != "" {
			v.hosts = append(v.hosts, h)
		}
	}
	return v
}

func (v *view) htmlParts() []message.Part {
	var out []message.Part
	for _, p := range v.parts {
		if p.ContentType == "text/html" && p.Filename == "" {
			out = append(out, p)
		}
	}
	return out
}

// Heuristics are the built-in tests, in the order they are reported. Their
// names are stable: each becomes the signal name and, as "spam-NAME", a
// reason code.
var Heuristics = []Heuristic{
	{"missing-date", 1.5, "no Date field (RFC 5322 §3.6 requires one)", func(v *view) bool {
		return !v.header.Has("Date")
	}},
	{"bad-date", 2.0, "a Date field that does not parse as RFC 5322 §3.3 date-time", func(v *view) bool {
		d := v.header.Get("Date")
		if d == "" {
			return false
		}
		_, err := sa.ParseDate(d)
		return err != nil
	}},
	{"missing-message-id", 1.0, "no Message-ID field (RFC 5322 §3.6.4: SHOULD be present)", func(v *view) bool {
		return !v.header.Has("Message-ID")
	}},
	{"bad-message-id", 1.5, "a Message-ID that is not <left@right> (RFC 5322 §3.6.4)", func(v *view) bool {
		id := v.header.Get("Message-ID")
		return id != "" && !msgIDRE.MatchString(id)
	}},
	{"missing-to", 0, "no To or Cc field", func(v *view) bool {
		return !v.header.Has("To") && !v.header.Has("Cc") && !v.header.Has("Bcc")
	}},
	{"from-name-address", 2.0, "the From display name shows another address than the real one", func(v *view) bool {
		a, err := mail.ParseAddress(message.DecodeHeader(v.header.Get("From")))
		if err != nil || a.Name == "" {
			return false
		}
		shown := emailRE.FindString(a.Name)
		return shown != "" && !strings.EqualFold(message.Domain(shown), message.Domain(a.Address))
	}},
	{"subject-shouting", 1.5, "a subject mostly in capitals", func(v *view) bool {
		return shouting(message.DecodeHeader(v.header.Get("Subject")))
	}},
	{"subject-exclaim", 1.0, "several exclamation marks in the subject", func(v *view) bool {
		return strings.Count(v.header.Get("Subject"), "!") >= 2
	}},
	{"subject-encoded-ascii", 0.5, "an RFC 2047 encoded subject that is plain ASCII anyway (filter evasion)", func(v *view) bool {
		s := v.header.Get("Subject")
		if !strings.Contains(s, "=?") {
			return false
		}
		d := message.DecodeHeader(s)
		if d == s {
			return false
		}
		for _, r := range d {
			if r > 127 {
				return false
			}
		}
		return true
	}},
	{"html-only", 1.0, "HTML without a text/plain alternative", func(v *view) bool {
		html, plain := false, false
		for _, p := range v.parts {
			switch {
			case p.Filename != "":
			case p.ContentType == "text/html":
				html = true
			case p.ContentType == "text/plain" && strings.TrimSpace(p.Text) != "":
				plain = true
			}
		}
		return html && !plain
	}},
	{"image-only", 2.0, "images with almost no text", func(v *view) bool {
		img := false
		for _, p := range v.parts {
			if strings.HasPrefix(p.ContentType, "image/") {
				img = true
			}
		}
		if !img {
			if !hasImgTag(htmlOf(v)) {
				return false
			}
		}
		return fieldsLen(v.text) < 200
	}},
	{"hidden-text", 1.0, "HTML that hides text (display:none, zero-size or invisible fonts)", func(v *view) bool {
		var html []string
		for i, p := range v.parts {
			if p.ContentType == "text/html" && p.Filename == "" {
				html = append(html, v.lower[i])
			}
		}
		return hidden(join(html))
	}},
	{"link-mismatch", 2.5, "a link whose text names another domain than its target", func(v *view) bool {
		for i, p := range v.parts {
			if p.ContentType != "text/html" || p.Filename != "" {
				continue
			}
			if _, ok := linkMismatch(p.Text, v.lower[i]); ok {
				return true
			}
		}
		return false
	}},
	{"url-shortener", 1.0, "a URL on a link shortener, which hides the real target", func(v *view) bool {
		for _, h := range v.hosts {
			if shorteners[registrable(h)] {
				return true
			}
		}
		return false
	}},
	{"url-ip", 2.0, "a URL with a numeric host", func(v *view) bool {
		for _, h := range v.hosts {
			if isIPHost(h) {
				return true
			}
		}
		return false
	}},
	{"url-userinfo", 2.0, "a URL with user@ before the host, hiding the real host", func(v *view) bool {
		for _, u := range v.urls {
			if i := strings.Index(u, "://"); i >= 0 {
				auth := u[i+3:]
				if j := strings.IndexAny(auth, "/?#"); j >= 0 {
					auth = auth[:j]
				}
				if strings.Contains(auth, "@") {
					return true
				}
			}
		}
		return false
	}},
	{"forged-mailer", 2.0, "X-Mailer claims Outlook, but the message lacks what Outlook always adds", func(v *view) bool {
		x := strings.ToLower(v.header.Get("X-Mailer"))
		if !strings.Contains(x, "outlook") {
			return false
		}
		return !v.header.Has("X-MimeOLE") && !v.header.Has("Thread-Index")
	}},
	{"base64-text", 1.5, "a text part in base64 although it is plain ASCII (filter evasion)", func(v *view) bool {
		return base64Text(v)
	}},
	{"mime-broken", 1.5, "a MIME part that does not decode (bad base64/quoted-printable or charset)", func(v *view) bool {
		for _, p := range v.parts {
			if p.Broken {
				return true
			}
		}
		return false
	}},
	{"mostly-caps", 1.0, "a body mostly in capitals", func(v *view) bool {
		return len(v.text) > 200 && shouting(v.text)
	}},
}

var (
	msgIDRE = regexp.MustCompile(`^<[^<>@\s]+@[^<>@\s]+>`)
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
)

// The HTML scanners below stand for regular expressions (kept in the
// tests, which compare them): the regexp engine was a visible share of
// the check's CPU on HTML mail.

// hasImgTag reports an <img tag, as (?i)<img\b matches. The case folding
// of i, m and g is ASCII only (TestImgFoldASCII).
func hasImgTag(h string) bool {
	for i := 0; ; i++ {
		j := strings.IndexByte(h[i:], '<')
		if j < 0 || i+j+4 > len(h) {
			return false
		}
		i += j
		if h[i+1]|0x20 == 'i' && h[i+2]|0x20 == 'm' && h[i+3]|0x20 == 'g' && (i+4 == len(h) || !wordByte(h[i+4])) {
			return true
		}
	}
}

// hidden reports lower-case HTML that hides text from the reader. Cheap
// substring tests pick the scanner to run.
func hidden(l string) bool {
	if (strings.Contains(l, "display") || strings.Contains(l, "visibility") || strings.Contains(l, "font-size")) && cssHides(l) {
		return true
	}
	return strings.Contains(l, "<font") && strings.Contains(l, "size") && fontHides(l)
}

// cssHides reports a hiding declaration in lower-case HTML, as
// display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*[01](?:px|pt)?\s*[;"']
// matches.
func cssHides(l string) bool {
	for _, prop := range [...]string{"display", "visibility", "font-size"} {
		for i := 0; ; i++ {
			j := strings.Index(l[i:], prop)
			if j < 0 {
				break
			}
			i += j
			v := trimBlank(l[i+len(prop):])
			if v == "" || v[0] != ':' {
				continue
			}
			v = trimBlank(v[1:])
			switch prop {
			case "display":
				if strings.HasPrefix(v, "none") {
					return true
				}
			case "visibility":
				if strings.HasPrefix(v, "hidden") {
					return true
				}
			default:
				if v == "" || (v[0] != '0' && v[0] != '1') {
					continue
				}
				v = v[1:]
				if strings.HasPrefix(v, "px") || strings.HasPrefix(v, "pt") {
					v = v[2:]
				}
				if v = trimBlank(v); v != "" && (v[0] == ';' || v[0] == '"' || v[0] == '\'') {
					return true
				}
			}
		}
	}
	return false
}

// fontHides reports a font tag of size 0 or negative in lower-case HTML,
// as <font[^>]*\bsize\s*=\s*["']?(?:0|-[1-9]) matches.
func fontHides(l string) bool {
	for i := 0; ; {
		j := strings.Index(l[i:], "<font")
		if j < 0 {
			return false
		}
		start := i + j + len("<font")
		end := len(l)
		if k := strings.IndexByte(l[start:], '>'); k >= 0 {
			end = start + k
		}
		// A later <font before this tag's '>' sees a part of the same
		// stretch, so the next one worth looking at is after it.
		for p := start; ; p++ {
			k := strings.Index(l[p:end], "size")
			if k < 0 {
				break
			}
			p += k
			if wordByte(l[p-1]) {
				continue
			}
			v := trimBlank(l[p+len("size"):])
			if v == "" || v[0] != '=' {
				continue
			}
			v = trimBlank(v[1:])
			if v != "" && (v[0] == '"' || v[0] == '\'') {
				v = v[1:]
			}
			if strings.HasPrefix(v, "0") || len(v) >= 2 && v[0] == '-' && v[1] >= '1' && v[1] <= '9' {
				return true
			}
		}
		i = end
	}
}

// trimBlank drops the white space of regexp's \s ([\t\n\f\r ]) from the
// start of s.
func trimBlank(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t' || s[0] == '\n' || s[0] == '\f' || s[0] == '\r') {
		s = s[1:]
	}
	return s
}

// wordByte: an ASCII word character, the only ones regexp's \b knows.
func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// htmlOf is the raw HTML of the message's HTML parts, joined once per
// message.
func htmlOf(v *view) string {
	if v.htmlDone {
		return v.html
	}
	var html []string
	for _, p := range v.htmlParts() {
		html = append(html, p.Text)
	}
	v.html, v.htmlDone = join(html), true
	return v.html
}

// join concatenates ss; one string (the usual single HTML part) is
// returned as it is, not copied.
func join(ss []string) string {
	if len(ss) == 1 {
		return ss[0]
	}
	return strings.Join(ss, "")
}

// fieldsLen is len(strings.Join(strings.Fields(s), " ")) without building
// either: the length of s's words with one space between each two.
func fieldsLen(s string) int {
	n, words, in := 0, 0, false
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		if unicode.IsSpace(r) {
			in = false
			continue
		}
		if !in {
			words++
			in = true
		}
		n += size // an invalid byte stays one byte
	}
	return n + max(words-1, 0)
}

// shouting reports whether at least 70 % of at least 10 letters are
// upper case.
func shouting(s string) bool {
	up, all := 0, 0
	for _, r := range s {
		if unicode.IsLetter(r) {
			all++
			if unicode.IsUpper(r) {
				up++
			}
		}
	}
	return all >= 10 && up*10 >= all*7
}

// base64Text: the top-level header or a body part declares a text type in
// base64, and the decoded text is ASCII.
func base64Text(v *view) bool {
	b64 := false
	ct := strings.ToLower(v.header.Get("Content-Type"))
	if (ct == "" || strings.HasPrefix(ct, "text/")) && strings.EqualFold(v.header.Get("Content-Transfer-Encoding"), "base64") {
		b64 = true
	}
	if !b64 && strings.HasPrefix(ct, "multipart/") && v.m.Body != nil {
		n := min(v.m.Body.Size(), 64<<10)
		buf := make([]byte, n)
		k, _ := v.m.Body.ReadAt(buf, 0)
		b64 = partB64Text(string(buf[:k]))
	}
	if !b64 {
		return false
	}
	for _, r := range v.text {
		if r > 127 {
			return false
		}
	}
	return strings.TrimSpace(v.text) != ""
}

// partB64Text scans a raw multipart body for a part header block that
// declares a text/plain or text/html type and base64 encoding.
func partB64Text(raw string) bool {
	text, b64, inHeader := false, false, false
	for len(raw) > 0 {
		line := raw
		if i := strings.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = ""
		}
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "--"):
			inHeader, text, b64 = true, false, false
		case !inHeader:
		case line == "":
			if text && b64 {
				return true
			}
			inHeader = false
		case len(line) > 13 && strings.EqualFold(line[:13], "content-type:"):
			t := strings.ToLower(strings.TrimSpace(line[13:]))
			text = strings.HasPrefix(t, "text/plain") || strings.HasPrefix(t, "text/html")
		case len(line) > 26 && strings.EqualFold(line[:26], "content-transfer-encoding:"):
			b64 = strings.EqualFold(strings.TrimSpace(line[26:]), "base64")
		}
	}
	return false
}

// shorteners are registrable domains of URL shorteners.
var shorteners = map[string]bool{}

func init() {
	for _, d := range strings.Fields(`bit.ly bitly.com tinyurl.com t.co goo.gl ow.ly is.gd buff.ly
		rebrand.ly cutt.ly shorturl.at tiny.cc rb.gy t.ly v.gd bl.ink lnkd.in s.id qrco.de
		shorte.st adf.ly x.co snipurl.com snurl.com cli.gs budurl.com tr.im su.pr
		go2.me short.ie kutt.it`) {
		shorteners[d] = true
	}
}
