package sa

import (
	"bytes"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// latin1 returns s with each byte as one rune: Perl matches rule regexes
// against octets, so \xc3 in a rule is the byte 0xc3 (often the first byte
// of a UTF-8 sequence), and so it is here.
func latin1(s string) string {
	high := 0 // bytes 0x80-0xff: two bytes each in UTF-8
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			high++
		}
	}
	if high == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + high)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x80 {
			b.WriteByte(c)
		} else {
			b.WriteByte(0xc0 | c>>6)
			b.WriteByte(0x80 | c&0x3f)
		}
	}
	return b.String()
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
			// No line break: cut at the size, but between two runes. A
			// text here is byte-runes (see latin1), each octet of the
			// message one rune, as SpamAssassin sees octets: cutting
			// inside one would turn it into two halves, which read as
			// U+FFFD, that SpamAssassin never sees.
			cut = maxChunk - 1
			for cut > 0 && !utf8.RuneStart(text[cut+1]) {
				cut--
			}
		}
		out = append(out, text[:cut+1])
		text = text[cut+1:]
	}
	if text != "" {
		out = append(out, text)
	}
	return out
}

// unicodeSpaces replaces each white space character beyond ASCII (a
// no-break space, U+3000 ...) with a space: Message.pm's white space
// handling runs on the decoded characters, where Perl's \s matches them.
func unicodeSpaces(t string) string {
	i := 0
	for i < len(t) && t[i] < utf8.RuneSelf {
		i++
	}
	if i == len(t) {
		return t
	}
	// Bytes that are not UTF-8 are copied as they are (strings.Map would
	// make them U+FFFD).
	var b strings.Builder
	b.Grow(len(t))
	b.WriteString(t[:i])
	for i < len(t) {
		if t[i] < utf8.RuneSelf {
			b.WriteByte(t[i])
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(t[i:])
		if r != utf8.RuneError && unicode.IsSpace(r) {
			b.WriteByte(' ')
		} else {
			b.WriteString(t[i : i+n])
		}
		i += n
	}
	return b.String()
}

// bodyLines builds the body rules' lines as Message.pm's
// get_body_text_array_common does: the rendered text of each leaf part
// (empty for parts that are not text/plain or text/html), a line break
// between parts, blank lines turned into paragraph breaks and every
// other run of white space into one space; then the Subject line and the
// paragraphs, each line with its line break and the space SpamAssassin
// keeps at a paragraph's ends, cut at a space when longer than maxChunk
// (split_into_array_of_short_lines). A text part that does not end with
// a line break runs on into the next part's first paragraph, as there.
func bodyLines(subject string, parts []string, out []string) []string {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	var t strings.Builder
	t.Grow(n)
	for _, p := range parts {
		if t.Len() > 0 {
			t.WriteByte('\n')
		}
		t.WriteString(p)
	}
	all := subject + collapseBody(t.String())
	for all != "" {
		line := all
		if i := strings.IndexByte(all, '\n'); i >= 0 {
			line = all[:i+1]
		}
		all = all[len(line):]
		out = appendBodyLine(out, line)
	}
	return out
}

// appendBodyLine adds one line of the body text, cut after a space past
// maxChunk bytes (Message.pm splits a long line at white space), each
// piece as the rules read it (latin1).
func appendBodyLine(out []string, line string) []string {
	for len(line) > maxChunk {
		cut := strings.LastIndexByte(line[:maxChunk+1], ' ') + 1
		if cut == 0 {
			cut = maxChunk
		}
		out = append(out, latin1(line[:cut]))
		line = line[cut:]
	}
	return append(out, latin1(line))
}

// perlSpace is Perl's \s on an octet.
func perlSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// collapseBody is Message.pm's white space handling of the body text:
// s/\n+\s*\n+/\x00/g (a run of white space with two line breaks or
// more is a paragraph break, the blanks before its first and after its
// last line break kept), s/\s+/ /g, tr/\x00/\n/ (which makes a NUL of
// the text a line break too).
func collapseBody(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if !perlSpace(c) {
			if c == 0 {
				c = '\n'
			}
			b.WriteByte(c)
			i++
			continue
		}
		j := i
		for j < len(s) && perlSpace(s[j]) {
			j++
		}
		run := s[i:j]
		first, last := strings.IndexByte(run, '\n'), strings.LastIndexByte(run, '\n')
		if first >= 0 && last > first {
			if first > 0 {
				b.WriteByte(' ')
			}
			b.WriteByte('\n')
			if last < len(run)-1 {
				b.WriteByte(' ')
			}
		} else {
			b.WriteByte(' ')
		}
		i = j
	}
	return b.String()
}

// htmlInfo is what the HTML evals read of the HTML parts.
type htmlInfo struct {
	tags       map[string]int // start tags seen
	text       string         // rendered text
	title      string
	links      []string
	comments   []string
	anchors    []string
	formMailto bool
	// parts are the per-part figures of the html_range and html_test
	// evals, one per HTML part (SpamAssassin parses each apart).
	parts []htmlPart
	// invisible text (font colour equal to background, tiny fonts) is not
	// measured.
}

// htmlPart is what SpamAssassin's HTML.pm counts of one HTML part.
type htmlPart struct {
	tags int // start and end tags, and <!doctype
	// tagsSeen and elementsSeen count distinct tag names, and those of
	// them that HTML 4 defines (or Office's o: and st1: namespaces).
	tagsSeen, elementsSeen int
	// closedExtra counts end tags with none of their kind open.
	closedExtra int
	// obfuscation counts words split by markup: a text run that starts
	// with a letter or digit right after one that ended with one, with
	// only tags or comments between (V<b></b>iagra).
	obfuscation int
	maxSize     int  // largest <font size>, 3 when none
	fontFaceBad bool // a <font face> that names no font family
	img         bool // an <img> tag
	// lowContrast: text in the colour of its background, or too close
	// to it to read; invalidColor: text in a colour no browser parses.
	lowContrast, invalidColor bool
	// length is the part's HTML source in characters: what HTML.pm's
	// parse adds to its "length" (html_range/html_eval 'length',
	// html_image_only). nonSpace counts the characters of its rendered
	// text that are not white space (Node.pm's non_space_len), imageArea
	// the area of its <img> width x height (image_area).
	length, nonSpace, imageArea int
	// inside is, per tag name seen, how many are open at the end (an
	// end tag with none open counts nothing): HTML.pm's inside, which
	// html_tag_balance reads.
	inside map[string]int
}

// ratio returns the html_range test's value for the part, and whether
// SpamAssassin defines it for the part.
func (p *htmlPart) ratio(test string) (float64, bool) {
	switch test {
	case "obfuscation_ratio":
		return float64(p.obfuscation) / float64(max(p.tags, 1)), p.obfuscation > 0 && p.tags > 0
	case "non_element_ratio":
		return float64(p.tagsSeen-p.elementsSeen) / float64(max(p.tagsSeen, 1)), p.elementsSeen > 0 && p.tagsSeen > 0
	case "closed_extra_ratio":
		return float64(p.closedExtra) / float64(max(p.tags, 1)), p.tags > 0
	case "max_size":
		return float64(p.maxSize), true
	}
	return 0, false
}

// htmlElements are the elements of the HTML 4.01 and XHTML 1.0 DTDs and
// a few common non-standard ones (HTML.pm's %elements).
var htmlElements = wordSet(`a abbr acronym address area b base bdo big blockquote body br button
	caption cite code col colgroup dd del dfn div dl dt em fieldset form h1 h2 h3 h4 h5 h6 head hr
	html i img input ins kbd label legend li link map meta noscript object ol optgroup option p
	param pre q samp script select small span strong style sub sup table tbody td textarea tfoot
	th thead title tr tt ul var applet basefont center dir font frame frameset iframe isindex menu
	noframes s strike u nobr x-sigsep x-tab`)

// htmlTricks are rendered but not valid (HTML.pm's %tricks).
var htmlTricks = wordSet(`bgsound embed listing plaintext xmp`)

// htmlSpacing are the tags after which HTML.pm's rendered text has white
// space (html_whitespace), start or end tag alike.
var htmlSpacing = wordSet(`br div li th td dt dd embed h1 h2 h3 h4 h5 h6 p hr blockquote pre
	listing plaintext xmp title`)

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// officeTag is HTML.pm's namespace test: o:p, st1:place and the like
// count as elements.
func officeTag(tag string) bool {
	rest, ok := strings.CutPrefix(tag, "o:")
	if !ok {
		i := 0
		if strings.HasPrefix(tag, "st") {
			for i = 2; i < len(tag) && tag[i] >= '0' && tag[i] <= '9'; i++ {
			}
		}
		if i <= 2 || i >= len(tag) || tag[i] != ':' {
			return false
		}
		rest = tag[i+1:]
	}
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !isWordByte(c) && c != '-' {
			return false
		}
	}
	return true
}

// wordStart and wordEnd: HTML.pm's obfuscation test treats as part of a
// word anything but white space and ASCII punctuation.
func wordByteHTML(c byte) bool {
	switch {
	case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
		return false
	case c >= 0x21 && c <= 0x2f, c >= 0x3a && c <= 0x40, c >= 0x5b && c <= 0x60, c >= 0x7b && c <= 0x7e:
		return false
	}
	return true
}

// nbsp is U+00A0 in UTF-8: HTML.pm turns &nbsp; into a space first.
const nbsp = "\u00a0"

func wordStart(t []byte) bool {
	return len(t) > 0 && !bytes.HasPrefix(t, []byte(nbsp)) && wordByteHTML(t[0])
}

func wordEnd(t []byte) bool {
	return len(t) > 0 && !bytes.HasSuffix(t, []byte(nbsp)) && wordByteHTML(t[len(t)-1])
}

// styleAttrTags are the elements whose style attribute HTML.pm reads
// for colours.
var styleAttrTags = wordSet(`table td th tr span p div a`)

// visibleText says t has more than white space (and no-break spaces).
func visibleText(t []byte) bool {
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
		case c == 0xc2 && i+1 < len(t) && t[i+1] == 0xa0:
			i++
		default:
			return true
		}
	}
	return false
}

// fontFace is HTML.pm's test of a good <font face>: font family names,
// quoted or not, separated by commas.
var fontFace = regexp.MustCompile(`(?i)^\s*["'.]?[a-z ][a-z -]*[a-z]\d?["']?(?:,\s*["']?[a-z][a-z -]*[a-z]\d?["']?)*;?$`)

// fontSize is the size a <font size> sets (HTML.pm's text_style): an
// absolute number, or one relative to the base font.
func fontSize(v string, base int) (int, bool) {
	v = strings.TrimLeft(v, " \t\n\r\f\v")
	sign := 0
	if v != "" && (v[0] == '+' || v[0] == '-') {
		sign = 1
		if v[0] == '-' {
			sign = -1
		}
		v = v[1:]
	}
	if v == "" || v[0] < '0' || v[0] > '9' {
		return 0, false
	}
	n := atoiPrefix(v)
	if sign != 0 {
		return base + sign*n, true
	}
	return n, true
}

// htmlText is the rendered text of an HTML part as HTML.pm's
// display_text builds it from text runs and the white space of tags
// (html_whitespace). Only a tag's white space breaks a line: the line
// breaks of the text are spaces like any other.
type htmlText struct {
	buf    []byte
	last   int  // where the last element starts in buf
	lastWS bool // the last element is a tag's white space
	// lastInvisible: the last element is text HTML.pm renders invisible
	// (html_font_invisible), whose blanks display_text keeps.
	lastInvisible bool
	n             int // elements so far
}

// whitespace adds a tag's white space, first trimming one trailing space
// from the visible text before it.
func (h *htmlText) whitespace(ws string) {
	if h.n > 0 && !h.lastWS && !h.lastInvisible && len(h.buf) > h.last && h.buf[len(h.buf)-1] == ' ' {
		h.buf = h.buf[:len(h.buf)-1]
	}
	h.last, h.lastWS, h.lastInvisible = len(h.buf), true, false
	h.n++
	h.buf = append(h.buf, ws...)
}

// text adds a text run: each run of ASCII white space and each no-break
// space becomes one space, and a leading space after a tag's white space
// is dropped unless the run is invisible.
func (h *htmlText) text(t []byte, invisible bool) {
	start := len(h.buf)
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			for i+1 < len(t) && (t[i+1] == ' ' || t[i+1] == '\t' || t[i+1] == '\n' || t[i+1] == '\r' || t[i+1] == '\f' || t[i+1] == '\v') {
				i++
			}
			h.buf = append(h.buf, ' ')
		case c == 0xc2 && i+1 < len(t) && t[i+1] == 0xa0:
			i++
			h.buf = append(h.buf, ' ')
		default:
			h.buf = append(h.buf, c)
		}
	}
	if h.n > 0 && h.lastWS && !invisible && len(h.buf) > start && h.buf[start] == ' ' {
		h.buf = append(h.buf[:start], h.buf[start+1:]...)
	}
	h.last, h.lastWS, h.lastInvisible = start, false, invisible
	h.n++
}

// tagSpace is the white space HTML.pm's html_whitespace renders for a
// tag of htmlSpacing, opening or closing.
func tagSpace(tag string) string {
	switch tag {
	case "br", "div":
		return "\n"
	case "p", "hr", "blockquote", "pre", "listing", "plaintext", "xmp", "title":
		return "\n\n"
	}
	return " "
}

// renderHTML reduces HTML to text (as SpamAssassin's HTML renderer does:
// no script, style or comments; block elements break lines) and collects
// tag facts.
func renderHTML(src string, info *htmlInfo) string {
	if info.tags == nil {
		info.tags = map[string]int{}
	}
	z := html.NewTokenizer(strings.NewReader(src))
	var b htmlText
	skip := 0
	inTitle := false
	inAnchor := false
	var anchor strings.Builder
	// What HTML.pm counts (see htmlPart): inside holds, per tag name
	// seen, how many are open; chunks and wordEnded describe its
	// rendered text so far (text runs and the white space of tags).
	ps := htmlPart{maxSize: 3}
	inside := map[string]int{}
	chunks, wordEnded := 0, false
	baseFont := 3
	styles := newStyleStack()
	count := func(tag string, open int) {
		n, seen := inside[tag]
		if !seen {
			ps.tagsSeen++
			if htmlElements[tag] || officeTag(tag) {
				ps.elementsSeen++
			}
		}
		ps.tags++
		if n += open; n < 0 {
			n = 0
			ps.closedExtra++
		}
		inside[tag] = n
		if htmlSpacing[tag] {
			chunks++
			wordEnded = false
		}
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			out := string(b.buf)
			ps.length = utf8.RuneCountInString(src)
			ps.nonSpace = utf8.RuneCountInString(out) - countSpace(out)
			ps.inside = inside
			info.parts = append(info.parts, ps)
			info.text += out
			return out
		case html.DoctypeToken:
			ps.tags++
		case html.CommentToken:
			info.comments = append(info.comments, string(z.Raw()))
		case html.TextToken:
			if skip > 0 {
				continue
			}
			t := z.Text()
			if chunks > 0 && wordEnded && wordStart(t) {
				ps.obfuscation++
			}
			chunks++
			wordEnded = wordEnd(t)
			// QUIRK(spamassassin): html_font_invisible's colours and
			// font size are followed here, not its CSS display and
			// visibility.
			invisible := false
			if visibleText(t) {
				low, invalid := styles.invisible()
				ps.lowContrast = ps.lowContrast || low
				ps.invalidColor = ps.invalidColor || invalid
				invisible = low || invalid || styles.tiny()
			}
			if inAnchor {
				anchor.Write(t)
			}
			if inTitle {
				// The title is rendered too (HTML.pm's html_text).
				info.title += string(t)
			}
			b.text(t, invisible)
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if tt == html.EndTagToken {
				count(tag, -1)
				if styleTags[tag] {
					styles.close(tag)
				}
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
				// Bug 5009: closing tags have their white space too.
				if htmlSpacing[tag] {
					b.whitespace(tagSpace(tag))
				}
				continue
			}
			count(tag, 1)
			info.tags[tag]++
			switch tag {
			case "script", "style":
				if tt == html.StartTagToken {
					skip++
				}
			case "title":
				inTitle = tt == html.StartTagToken
			case "img":
				ps.img = true
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
			if htmlSpacing[tag] {
				b.whitespace(tagSpace(tag))
			}
			var w, h int
			var color, style string
			hasColor, hasStyle, baseSized := false, false, false
			size, sized := 0, false
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
				case "color", "text":
					// Text colour: font and basefont say color, body text.
					if string(k) == "color" && (tag == "font" || tag == "basefont") || string(k) == "text" && tag == "body" {
						color, hasColor = string(v), true
					}
				case "style":
					if styleAttrTags[tag] {
						style, hasStyle = string(v), true
					}
				case "size":
					if tag == "basefont" {
						if v := strings.TrimLeft(string(v), " \t\n\r\f\v"); v != "" && v[0] >= '0' && v[0] <= '9' {
							baseFont = atoiPrefix(v)
							baseSized = true
						}
					} else if tag == "font" {
						if n, ok := fontSize(string(v), baseFont); ok {
							ps.maxSize = max(ps.maxSize, n)
							size, sized = n, true
						}
					}
				case "face":
					if tag == "font" && !fontFace.MatchString(string(v)) {
						ps.fontFaceBad = true
					}
				}
			}
			if tag == "img" {
				ps.imageArea += w * h
			}
			// A basefont with a size sets only the size (HTML.pm).
			if styleTags[tag] && !(tag == "basefont" && baseSized) {
				styles.open(tag, color, style, hasColor, hasStyle)
				top := &styles[len(styles)-1]
				switch {
				case sized:
					top.size = size
				case tag == "big":
					top.size++
				case tag == "small":
					top.size--
				}
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
	var emails [][2]int
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
		// SpamAssassin's text URI parser also takes bare addresses, as
		// mailto: links (uri rules such as __UNSUB_LINK see them).
		if strings.IndexByte(t, '@') >= 0 {
			emails = scanTextEmails(t, 200, emails[:0])
			for _, m := range emails {
				if !strings.HasSuffix(strings.ToLower(t[max(0, m[0]-7):m[0]]), "mailto:") {
					add("mailto:" + t[m[0]:m[1]])
				}
			}
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

// countSpace counts the white space characters of s as Perl's \s does
// on text (Unicode white space).
func countSpace(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsSpace(r) {
			n++
		}
	}
	return n
}
