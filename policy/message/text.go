package message

import (
	"bytes"
	"errors"
	"html"
	"io"
	"mime"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 text parts
)

// Limits of the MIME walk: hostile messages nest parts deeply or carry
// huge ones; the walk stops, it never fails.
const (
	MaxMIMEDepth  = 16
	MaxMIMEParts  = 256
	MaxTextBytes  = 1 << 20 // decoded text kept for rules and scoring
	maxPartDecode = 4 << 20 // bytes read from one part
)

// Part is one leaf of the MIME tree, decoded.
type Part struct {
	ContentType string // lower-case media type, e.g. "text/html"
	Filename    string
	Depth       int
	Size        int64  // decoded bytes seen (capped at maxPartDecode)
	Text        string // decoded text for text/* parts (HTML as is), capped
	Broken      bool   // the part could not be decoded (bad encoding, bad charset)
}

type textCache struct {
	once  sync.Once
	parts []Part
	text  string
}

// Parts walks the MIME tree once per message and returns its leaves.
func (m *Message) Parts() []Part {
	return m.cache().parts
}

// Text returns the decoded text of the message's text parts (HTML reduced
// to text), at most MaxTextBytes, for body rules and scoring.
func (m *Message) Text() string {
	return m.cache().text
}

func (m *Message) cache() *textCache {
	c := &m.text
	c.once.Do(func() {
		c.parts = walkParts(m.Raw())
		// The texts first, so that the builder is sized once.
		var texts []string
		n := 0
		for _, p := range c.parts {
			if p.Text == "" || n >= MaxTextBytes {
				continue
			}
			t := p.Text
			if p.ContentType == "text/html" {
				t = HTMLText(t)
			}
			if room := MaxTextBytes - n; len(t) > room {
				t = t[:room]
			}
			texts = append(texts, t)
			n += len(t) + 1
		}
		var b strings.Builder
		b.Grow(n)
		for _, t := range texts {
			b.WriteString(t)
			b.WriteByte('\n')
		}
		c.text = b.String()
	})
	return c
}

func walkParts(r io.Reader) []Part { return walkMessage(r, 0) }

// partBufs recycle the buffers a part is decoded into (io.ReadAll grew a
// new one through several sizes for every part); buffers grown past
// maxPooledPart by a big part are left to the collector.
var partBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledPart = 256 << 10

// walkMessage walks a message found at depth: the top one, or one attached
// as message/rfc822 (which counts as a level, so that attachments nested in
// attachments cannot recurse without bound).
func walkMessage(r io.Reader, depth int) []Part {
	e, err := message.Read(r)
	if e == nil {
		return nil
	}
	var parts []Part
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return []Part{{ContentType: "text/plain", Broken: true}}
	}
	walkEntity(e, depth, &parts)
	return parts
}

func walkEntity(e *message.Entity, depth int, parts *[]Part) {
	if len(*parts) >= MaxMIMEParts {
		return
	}
	ct, params, _ := e.Header.ContentType()
	ct = strings.ToLower(ct)
	if ct == "" {
		ct = "text/plain"
	}
	if mr := e.MultipartReader(); mr != nil {
		if depth >= MaxMIMEDepth {
			return
		}
		for len(*parts) < MaxMIMEParts {
			p, err := mr.NextPart()
			if p == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
				return
			}
			walkEntity(p, depth+1, parts)
		}
		return
	}
	part := Part{ContentType: ct, Depth: depth}
	if _, dp, err := e.Header.ContentDisposition(); err == nil {
		part.Filename = dp["filename"]
	}
	if part.Filename == "" {
		part.Filename = params["name"]
	}
	buf := partBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledPart {
			buf.Reset()
			partBufs.Put(buf)
		}
	}()
	_, err := buf.ReadFrom(io.LimitReader(e.Body, maxPartDecode))
	data := buf.Bytes()
	part.Size = int64(len(data))
	if err != nil {
		part.Broken = true
	}
	if strings.HasPrefix(ct, "text/") && part.Filename == "" {
		if len(data) > MaxTextBytes {
			data = data[:MaxTextBytes]
		}
		// One copy: strings.ToValidUTF8 returns valid text as it is.
		part.Text = strings.ToValidUTF8(string(data), "\uFFFD")
	}
	if ct == "message/rfc822" && depth < MaxMIMEDepth {
		inner := walkMessage(bytes.NewReader(data), depth+1)
		for _, p := range inner {
			if len(*parts) < MaxMIMEParts {
				*parts = append(*parts, p)
			}
		}
		return
	}
	*parts = append(*parts, part)
}

// HTMLText reduces HTML to its visible text: scripts, styles and the head
// dropped, tags removed, entities decoded, runs of blanks made one space.
// It does what three regular expressions did (kept in the tests, which
// compare them with it): hand-written scanners cost a fraction of the
// regexp engine on every HTML part of every message.
func HTMLText(s string) string {
	s = dropBlocks(s)
	if strings.IndexByte(s, '&') < 0 {
		// Nothing to unescape: tags and blanks go in one pass.
		return stripTags(s, true)
	}
	return squeezeBlanks(html.UnescapeString(stripTags(s, false)))
}

// dropBlocks replaces each script, style or head element by a space: from
// the start tag to the first end tag of any of the three, as
// (?is)<(script|style|head)\b.*?</(script|style|head)\s*> does.
func dropBlocks(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; ; i++ {
		j := strings.IndexByte(s[i:], '<')
		if j < 0 {
			break
		}
		i += j
		n := blockName(s[i+1:])
		if n == 0 || (i+1+n < len(s) && wordByte(s[i+1+n])) {
			continue
		}
		end := blockEnd(s, i+1+n)
		if end < 0 {
			// No end tag after this start tag, so none after a later one.
			break
		}
		if last == 0 {
			b.Grow(len(s) - (end - i) + 1)
		}
		b.WriteString(s[last:i])
		b.WriteByte(' ')
		last, i = end, end-1
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// blockEnd returns the end of the first end tag of a dropped element at or
// after from, or -1.
func blockEnd(s string, from int) int {
	for {
		j := strings.Index(s[from:], "</")
		if j < 0 {
			return -1
		}
		k := from + j + 2
		if n := blockName(s[k:]); n > 0 {
			k += n
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\f' || s[k] == '\r') {
				k++
			}
			if k < len(s) && s[k] == '>' {
				return k + 1
			}
		}
		from += j + 1
	}
}

// blockName returns the length of the element name script, style or head
// that s starts with, compared as (?i) does, or 0.
func blockName(s string) int {
	for _, name := range [...]string{"script", "style", "head"} {
		if n := foldPrefix(s, name); n > 0 {
			return n
		}
	}
	return 0
}

// foldPrefix returns the length of the prefix of s that equals word (ASCII
// lower-case letters) under Unicode simple case folding, the comparison of
// (?i) in regexp, so "ſcript" (U+017F LATIN SMALL LETTER LONG S) is a
// script tag; 0 if s does not start with word.
func foldPrefix(s, word string) int {
	n := 0
	for k := 0; k < len(word); k++ {
		if n >= len(s) {
			return 0
		}
		if c := s[n]; c < utf8.RuneSelf {
			if c|0x20 != word[k] {
				return 0
			}
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[n:])
		w := rune(word[k])
		f := unicode.SimpleFold(w)
		for f != w && f != r {
			f = unicode.SimpleFold(f)
		}
		if f != r {
			return 0
		}
		n += size
	}
	return n
}

// wordByte: an ASCII word character, the only ones \b knows.
func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// blank: the bytes of [ \t\r\f\v] (not the newline).
func blank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'
}

// stripTags replaces each tag, from '<' to the next '>', by a space, as
// (?s)<[^>]*> does; a '<' without a '>' after it stays. With squeeze it
// also makes each run of blanks one space (squeezeBlanks).
func stripTags(s string, squeeze bool) string {
	var b []byte
	inBlank := false
	put := func(t string) {
		if !squeeze {
			b = append(b, t...)
			return
		}
		b, inBlank = appendSqueezed(b, t, inBlank)
	}
	i := strings.IndexByte(s, '<')
	if i < 0 {
		if squeeze {
			return squeezeBlanks(s)
		}
		return s
	}
	b = make([]byte, 0, len(s))
	last := 0
	for i >= 0 {
		j := strings.IndexByte(s[i+1:], '>')
		if j < 0 {
			break
		}
		put(s[last:i])
		put(" ")
		last = i + 1 + j + 1
		if i = strings.IndexByte(s[last:], '<'); i >= 0 {
			i += last
		}
	}
	put(s[last:])
	return string(b)
}

// squeezeBlanks makes each run of blanks one space, as
// ReplaceAllString(`[ \t\r\f\v]+`, " ") does.
func squeezeBlanks(s string) string {
	i := 0
	for ; i < len(s); i++ {
		if c := s[i]; blank(c) && (c != ' ' || i+1 < len(s) && blank(s[i+1])) {
			break
		}
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, i, len(s))
	copy(b, s[:i])
	b, _ = appendSqueezed(b, s[i:], false)
	return string(b)
}

// appendSqueezed appends t to b with each run of blanks made one space;
// inBlank says b ends in such a run, and the result whether it now does.
func appendSqueezed(b []byte, t string, inBlank bool) ([]byte, bool) {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if blank(c) {
			if !inBlank {
				b = append(b, ' ')
			}
			inBlank = true
			continue
		}
		inBlank = false
		b = append(b, c)
	}
	return b, inBlank
}

// DecodeHeader decodes RFC 2047 encoded words; on error it returns the
// input unchanged.
func DecodeHeader(v string) string {
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
	if message.CharsetReader != nil {
		return message.CharsetReader(charset, input)
	}
	return nil, errors.New("message: unknown charset " + charset)
}}
