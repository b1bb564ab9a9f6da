package sa

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// latin1 returns s with each byte as one rune: Perl matches rule regexes
// against octets, so \xc3 in a rule is the byte 0xc3 (often the first byte
// of a UTF-8 sequence), and so it is here.
func latin1(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	b := make([]byte, 0, len(s)+len(s)/4)
	for i := 0; i < len(s); i++ {
		b = utf8.AppendRune(b, rune(s[i]))
	}
	return string(b)
}

// maxChunk is the length at which texts are cut into chunks for body and
// rawbody rules, at a line break when there is one (SpamAssassin cuts at
// about the same size).
const maxChunk = 2048

// chunks splits text into pieces of at most maxChunk bytes, cutting after
// a newline when possible.
func chunks(text string, out []string) []string {
	for len(text) > maxChunk {
		cut := strings.LastIndexByte(text[:maxChunk], '\n')
		if cut < maxChunk/4 {
			cut = maxChunk - 1
		}
		out = append(out, text[:cut+1])
		text = text[cut+1:]
	}
	if text != "" {
		out = append(out, text)
	}
	return out
}

// paragraphs turns rendered text into body-rule lines: one per paragraph
// (text between blank lines), white space runs collapsed to one space.
func paragraphs(text string, out []string) []string {
	var b strings.Builder
	flush := func() {
		if p := strings.TrimSpace(b.String()); p != "" {
			out = chunks(p, out)
		}
		b.Reset()
	}
	blank := false
	space := false
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			if !blank {
				flush()
			}
			blank = true
			continue
		}
		blank = false
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' {
				if !space {
					b.WriteByte(' ')
				}
				space = true
				continue
			}
			space = false
			b.WriteByte(c)
		}
	}
	flush()
	return out
}

// htmlInfo is what the HTML evals read of the HTML parts.
type htmlInfo struct {
	tags      map[string]int // start tags seen
	text      string         // rendered text
	textLen   int            // rendered text bytes (non-space)
	rawLen    int            // bytes of HTML source
	images    int
	imageArea int
	title     string
	links     []string
	// balance counts open minus close per tag.
	balance    map[string]int
	comments   []string
	anchors    []string
	formMailto bool
	// invisible text (font colour equal to background, tiny fonts) is not
	// measured.
}

var blockTags = map[string]bool{"p": true, "br": true, "div": true, "tr": true, "li": true,
	"table": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
	"blockquote": true, "pre": true, "hr": true, "ul": true, "ol": true, "title": true, "td": false}

// renderHTML reduces HTML to text (as SpamAssassin's HTML renderer does:
// no script, style or comments; block elements break lines) and collects
// tag facts.
func renderHTML(src string, info *htmlInfo) string {
	if info.tags == nil {
		info.tags = map[string]int{}
		info.balance = map[string]int{}
	}
	info.rawLen += len(src)
	z := html.NewTokenizer(strings.NewReader(src))
	var b strings.Builder
	skip := 0
	inTitle := false
	inAnchor := false
	var anchor strings.Builder
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			out := b.String()
			info.text += out
			return out
		case html.CommentToken:
			info.comments = append(info.comments, string(z.Raw()))
		case html.TextToken:
			if skip > 0 {
				continue
			}
			t := z.Text()
			if inAnchor {
				anchor.Write(t)
			}
			if inTitle {
				info.title += string(t)
				continue
			}
			b.Write(t)
			info.textLen += len(bytes.TrimSpace(t))
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if tt == html.EndTagToken {
				info.balance[tag]--
				if tag == "script" || tag == "style" {
					if skip > 0 {
						skip--
					}
				}
				if tag == "title" {
					inTitle = false
				}
				if tag == "a" && inAnchor {
					info.anchors = append(info.anchors, anchor.String())
					anchor.Reset()
					inAnchor = false
				}
				if blockTags[tag] {
					b.WriteByte('\n')
				}
				continue
			}
			info.tags[tag]++
			if tt == html.StartTagToken {
				info.balance[tag]++
			}
			switch tag {
			case "script", "style":
				if tt == html.StartTagToken {
					skip++
				}
			case "title":
				inTitle = tt == html.StartTagToken
			case "img":
				info.images++
				if inAnchor {
					anchor.WriteString("<img>")
				}
			case "a":
				if tt == html.StartTagToken {
					if inAnchor {
						info.anchors = append(info.anchors, anchor.String())
						anchor.Reset()
					}
					inAnchor = true
				}
			}
			if blockTags[tag] {
				b.WriteByte('\n')
				if tag == "p" || tag == "div" || tag == "table" {
					b.WriteByte('\n')
				}
			}
			var w, h int
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				switch string(k) {
				case "href", "src", "action", "background":
					if tag == "form" && string(k) == "action" && strings.HasPrefix(strings.ToLower(string(v)), "mailto:") {
						info.formMailto = true
					}
					if len(v) > 0 {
						info.links = append(info.links, string(v))
					}
				case "width":
					if tag == "form" {
						break
					}
					w = atoiPrefix(string(v))
				case "height":
					h = atoiPrefix(string(v))
				}
				if tag == "img" && string(k) == "alt" && len(v) > 0 {
					// SpamAssassin renders alt text.
					b.WriteString(" ")
					b.Write(v)
					b.WriteString(" ")
				}
			}
			if tag == "img" {
				info.imageArea += w * h
			}
		}
	}
}

func atoiPrefix(s string) int {
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9' && n < 1e6; i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// extractURIs returns the links of the text parts: URLs in plain text and
// the link attributes of HTML, each as written and, for bare www. names,
// with http:// in front (SpamAssassin lists both).
func extractURIs(plain []string, htmlLinks []string) []string {
	seen := map[string]bool{}
	var out, found []string
	var add func(string)
	add = func(u string) {
		u = strings.TrimRight(strings.TrimSpace(u), ".,;:!?)]}>'\"")
		if u == "" || seen[u] || len(out) > 1000 {
			return
		}
		seen[u] = true
		out = append(out, u)
		if l := strings.ToLower(u); strings.HasPrefix(l, "www") {
			add("http://" + u)
		}
	}
	for _, t := range plain {
		found = scanURIs(t, 500, found[:0])
		for _, u := range found {
			add(u)
		}
	}
	for _, l := range htmlLinks {
		l = html.UnescapeString(strings.TrimSpace(l))
		ll := strings.ToLower(l)
		if strings.HasPrefix(ll, "http") || strings.HasPrefix(ll, "ftp") || strings.HasPrefix(ll, "mailto:") || strings.HasPrefix(ll, "www") {
			add(l)
		}
	}
	return out
}
