package sa

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"sync"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// Message is what the rules read of a message. The daemon fills it from
// its own message model; FromRaw builds one from raw bytes (tests,
// benchmarks, `mailwarden rules --test`).
type Message struct {
	// Header is the top-level header block, fields in order.
	Header []Field
	// Parts are the leaves of the MIME tree in order.
	Parts []Part
	// Raw is the whole message as received (header and body), as FromRaw
	// was given it; nil from FromText.
	Raw []byte
	// text is the whole message the rules read (full rules, the body
	// length), a string made once.
	text string
	// URIs are the links of the text parts. Nil means: extract them from
	// the text parts.
	URIs []string
	// Relays is the path, newest first. Nil means: parse the Received
	// fields. The daemon puts the SMTP client it saw first.
	Relays []Relay
	// EnvelopeFrom is the SMTP MAIL FROM address (RFC 5321 §4.1.1.2),
	// when known; else the Return-Path field stands for it.
	EnvelopeFrom string
	// HasEnvelopeFrom says EnvelopeFrom is known (it may be "", the null
	// sender).
	HasEnvelopeFrom bool
	// Type is the top-level media type, lower case ("text/plain" when
	// the header names none).
	Type string
	// Auth is the site's own SPF, DKIM and DMARC outcome; nil when those
	// checks did not run (their rules then never fire).
	Auth *Auth
	// mimeEpilogue says a multipart has text after its closing boundary
	// (Message.pm's mime_epilogue_exists); only FromRaw's walk sets it.
	mimeEpilogue bool
}

// Field is one header field.
type Field struct {
	Name  string
	Value string // raw value after the colon, folding kept, no final line break
}

// Part is one leaf of the MIME tree.
type Part struct {
	Type   string  // lower-case media type, e.g. "text/html"
	Header []Field // the part's own header fields (mimeheader rules)
	// Text is the decoded content (transfer encoding and charset) of
	// text/* parts in UTF-8; empty for others.
	Text string
	// Size is the decoded size in bytes.
	Size int
	// RawSize is the encoded size of the body in bytes (base64 etc).
	RawSize int
	// Charset is the declared charset, lower case.
	Charset string
	// Encoding is the Content-Transfer-Encoding, lower case.
	Encoding string
	// Broken says the part could not be decoded.
	Broken bool
	// Alt numbers the multipart/alternative the part is in (the nearest
	// one, from 1 in message order), 0 when it is in none.
	Alt int
	// MaxLine is the length of the longest line of the body as encoded
	// (base64, quoted-printable), line break not counted.
	MaxLine int
	// NotASCII says the body as encoded has a byte that US-ASCII text
	// may not have (MIMEEval.pm's _check_attachments): NUL, 0x80 to
	// 0xFF, or a CR that is not part of the message's CRLF line breaks.
	NotASCII bool
}

// Limits of FromRaw's MIME walk: hostile messages nest deeply or carry
// huge parts; the walk stops, it never fails.
const (
	maxDepth     = 16
	maxParts     = 256
	maxPartBytes = 2 << 20
)

// FromRaw parses a raw message. A leading mbox "From " line is skipped.
// It never fails: what cannot be parsed is left out. The rules read a
// copy of raw made here: raw must not change once the message is built.
func FromRaw(raw []byte) *Message {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	m := parseText(string(raw))
	m.Raw = raw
	return m
}

// FromText is FromRaw for a message held as a string: the rules read it
// without a copy (the daemon builds its messages so). Raw is left nil.
func FromText(raw string) *Message {
	if strings.HasPrefix(raw, "From ") {
		if i := strings.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	return parseText(raw)
}

func parseText(raw string) *Message {
	m := &Message{text: raw, Type: "text/plain"}
	hdr, body, split := splitText(raw)
	m.Header = parseFields(hdr)
	e, err := message.Read(strings.NewReader(raw))
	if e == nil {
		_ = err
		return m
	}
	if t, _, _ := e.Header.ContentType(); t != "" {
		m.Type = strings.ToLower(t)
	}
	w := walker{m: m, crlf: crlfMessage(raw)}
	var enc encoded
	if split {
		enc = encoded{true, len(body), maxLine(body), notASCII(body, w.crlf)}
	}
	w.walk(e, enc, 0, 0)
	return m
}

// rawText is the whole message as the rules read it.
func (m *Message) rawText() string {
	if m.text == "" && len(m.Raw) > 0 {
		return string(m.Raw) // built by hand, not by FromRaw
	}
	return m.text
}

// splitHeader returns the header block (with its final line break) and the body.
func splitHeader(raw []byte) ([]byte, []byte) {
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return raw, nil
		}
		line := raw[i : i+j]
		if len(bytes.TrimRight(line, "\r")) == 0 {
			return raw[:i], raw[i+j+1:]
		}
		i += j + 1
	}
	return raw, nil
}

// splitText is splitHeader on a string; found says the empty line that
// ends the header was found (splitHeader's body is not nil).
func splitText(raw string) (hdr, body string, found bool) {
	for i := 0; i < len(raw); {
		j := strings.IndexByte(raw[i:], '\n')
		if j < 0 {
			return raw, "", false
		}
		line := raw[i : i+j]
		if len(strings.TrimRight(line, "\r")) == 0 {
			return raw[:i], raw[i+j+1:], true
		}
		i += j + 1
	}
	return raw, "", false
}

func parseFields(text string) []Field {
	// A field's value, its continuation lines included, is one run of the
	// header's text: a substring of it, no copy per line. Only when a line
	// that is no field comes between (it is skipped) are the lines joined.
	var fs []Field
	start := -1    // where the value of the last field starts in text
	joined := true // the last field's value is no longer a run of text
	for i := 0; i < len(text); {
		end := len(text)
		if j := strings.IndexByte(text[i:], '\n'); j >= 0 {
			end = i + j + 1
		}
		line := text[i:end]
		switch name, _, ok := strings.Cut(line, ":"); {
		case (line[0] == ' ' || line[0] == '\t') && len(fs) > 0:
			if joined {
				fs[len(fs)-1].Value += line
			} else {
				fs[len(fs)-1].Value = text[start:end]
			}
		case ok && !strings.ContainsAny(name, " \t"):
			start, joined = i+len(name)+1, false
			fs = append(fs, Field{Name: name, Value: text[start:end]})
		default:
			joined = true
		}
		i = end
	}
	for i := range fs {
		fs[i].Value = strings.TrimRight(strings.TrimLeft(fs[i].Value, " \t"), "\r\n")
	}
	return fs
}

// walker walks the MIME tree of one message into its Parts.
type walker struct {
	m    *Message
	alts int  // multipart/alternative entities seen
	crlf bool // see crlfMessage
}

// maxEncodedBytes bounds the encoded body of a part read for decoding:
// room for maxPartBytes decoded even from quoted-printable at its worst.
const maxEncodedBytes = 3*maxPartBytes + 4096

// encoded describes a body before its transfer encoding is decoded (the
// evals that measure encoded lines read it); ok is false when it is not
// known.
type encoded struct {
	ok       bool
	size     int
	maxLine  int
	notASCII bool
}

func (w *walker) encoded(b []byte) encoded {
	if b == nil {
		return encoded{}
	}
	return encoded{true, len(b), maxLine(b), notASCII(b, w.crlf)}
}

// walk adds the leaves of e, whose body is enc before it is decoded.
func (w *walker) walk(e *message.Entity, enc encoded, depth, alt int) {
	m := w.m
	if depth > maxDepth || len(m.Parts) >= maxParts {
		return
	}
	t, params, ctErr := e.Header.ContentType()
	if ctErr != nil {
		t = lenientType(e.Header.Get("Content-Type"))
	}
	if t == "" {
		t = "text/plain"
	}
	t = strings.ToLower(t)
	if strings.HasPrefix(t, "multipart/") {
		if t == "multipart/alternative" {
			w.alts++
			alt = w.alts
		}
		// go-message's own multipart reader decodes each part; reading
		// the parts here keeps their encoded bodies too. The body is
		// read whole first, for its epilogue.
		whole := readPart(e.Body, maxEncodedBytes)
		defer putPart(whole)
		if epilogue(whole.Bytes(), params["boundary"]) {
			m.mimeEpilogue = true
		}
		mr := textproto.NewMultipartReader(bytes.NewReader(whole.Bytes()), params["boundary"])
		for len(m.Parts) < maxParts {
			p, err := mr.NextPart()
			if p == nil || err != nil {
				break
			}
			buf := readPart(p, maxEncodedBytes)
			raw := buf.Bytes()
			sub, err := message.New(message.Header{Header: p.Header}, bytes.NewReader(raw))
			if err != nil {
				// As go-message's reader: a part of an unknown charset or
				// transfer encoding ends the walk of its multipart.
				putPart(buf)
				break
			}
			// A part read is known even when empty (Bytes of a buffer that
			// never held anything is nil).
			w.walk(sub, encoded{true, len(raw), maxLine(raw), notASCII(raw, w.crlf)}, depth+1, alt)
			putPart(buf)
		}
		return
	}
	var fields []Field
	fl := e.Header.Fields()
	for fl.Next() {
		fields = append(fields, Field{Name: fl.Key(), Value: fl.Value()})
	}
	if t == "message/rfc822" {
		buf := readPart(e.Body, maxPartBytes)
		defer putPart(buf)
		inner := buf.Bytes()
		if sub, err := message.Read(bytes.NewReader(inner)); sub != nil {
			_ = err
			_, body := splitHeader(inner)
			w.walk(sub, w.encoded(body), depth+1, alt)
		}
		return
	}
	buf := partBufs.Get().(*bytes.Buffer)
	defer putPart(buf)
	_, err := buf.ReadFrom(io.LimitReader(e.Body, maxPartBytes))
	body := buf.Bytes()
	p := Part{Type: t, Header: fields, Size: len(body), Broken: err != nil,
		Charset:  strings.ToLower(params["charset"]),
		Encoding: strings.ToLower(strings.TrimSpace(e.Header.Get("Content-Transfer-Encoding"))),
		Alt:      alt, MaxLine: enc.maxLine, NotASCII: enc.notASCII}
	if strings.HasPrefix(t, "text/") {
		p.Text = string(body)
		// Node.pm's decode: a quoted-printable or base64 text has its
		// CRLF line breaks turned into LF; Message.pm turns those of
		// every line of a message whose lines end in CRLF.
		if w.crlf || p.Encoding == "quoted-printable" || p.Encoding == "base64" {
			p.Text = strings.ReplaceAll(p.Text, "\r\n", "\n")
		}
	}
	switch {
	case enc.ok:
		p.RawSize = enc.size
	case p.Encoding == "base64":
		p.RawSize = len(body) * 4 / 3
	default:
		p.RawSize = len(body)
	}
	m.Parts = append(m.Parts, p)
}

// partBufs recycle the buffers the walk reads parts into (io.ReadAll grew
// a new one through several sizes for every part). Nothing a walk keeps
// points into them: the parts' texts are copies.
var partBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledPart: buffers grown past it by a big part are left to the
// collector.
const maxPooledPart = 256 << 10

// readPart reads at most n bytes of r into a buffer of partBufs (what
// could not be read is left out, as io.ReadAll's error was ignored).
func readPart(r io.Reader, n int64) *bytes.Buffer {
	buf := partBufs.Get().(*bytes.Buffer)
	buf.ReadFrom(io.LimitReader(r, n))
	return buf
}

func putPart(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledPart {
		buf.Reset()
		partBufs.Put(buf)
	}
}

// crlfMessage says the message's lines end in CRLF, as Message.pm tells
// it (its first or last line does), so that its parser turns each
// line-ending CRLF into LF.
func crlfMessage(raw string) bool {
	first, last := raw, raw
	if i := strings.IndexByte(raw, '\n'); i >= 0 {
		first = raw[:i+1]
	}
	if i := strings.LastIndexByte(strings.TrimSuffix(raw, "\n"), '\n'); i >= 0 {
		last = raw[i+1:]
	}
	return strings.Contains(first, "\r\n") || strings.Contains(last, "\r\n")
}

// notASCII says b has a NUL, a byte from 0x80 to 0xFF, or a CR that is
// not a line break's (any CR when the message's line breaks are LF).
func notASCII[T string | []byte](b T, crlf bool) bool {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == 0 || c >= 0x80:
			return true
		case c == '\r' && !(crlf && i+1 < len(b) && b[i+1] == '\n'):
			return true
		}
	}
	return false
}

// maxLine is the length of b's longest line, its line break (LF or
// CRLF) not counted.
func maxLine[T string | []byte](b T) int {
	n, start := 0, 0
	for i := 0; i <= len(b); i++ {
		if i < len(b) && b[i] != '\n' {
			continue
		}
		l := i - start
		if l > 0 && b[i-1] == '\r' {
			l--
		}
		n, start = max(n, l), i+1
	}
	return n
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeHeader decodes RFC 2047 encoded words and unfolds a field value,
// without the white space at its ends (Node.pm's header:
// s/\s+$//s; s/^\s+//s).
func decodeHeader(v string) string {
	v = strings.Trim(unfold(v), " \t\r\n\f\v")
	if strings.Contains(v, "=?") {
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			return d
		}
	}
	return v
}

// unfold joins a folded field value as Node.pm's header does: a line
// break and the blanks that follow it are one space
// (s/\n[ \t]+/ /g); any other line break goes, with the CR before it.
func unfold(v string) string {
	i := strings.IndexAny(v, "\r\n")
	if i < 0 {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	b.WriteString(v[:i])
	for ; i < len(v); i++ {
		c := v[i]
		if c == '\r' && i+1 < len(v) && v[i+1] == '\n' {
			continue
		}
		if c != '\n' {
			b.WriteByte(c)
			continue
		}
		if j := i + 1; j < len(v) && (v[j] == ' ' || v[j] == '\t') {
			for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
				j++
			}
			b.WriteByte(' ')
			i = j - 1
		}
	}
	return b.String()
}

// lenientType reads the media type of a Content-Type that does not parse
// ("text/html ; ; ;") as Util.pm's parse_content_type does: what comes
// before the first ";", up to the white space after the subtype.
func lenientType(v string) string {
	v = strings.TrimLeft(v, " \t\r\n")
	v, _, _ = strings.Cut(v, ";")
	if i := strings.IndexByte(v, '/'); i >= 0 {
		if j := strings.IndexAny(v[i+1:], "/ \t\r\n"); j >= 0 {
			v = v[:i+1+j]
		}
	}
	return strings.ToLower(v)
}

// epilogue says a multipart body has, after its first closing delimiter
// line ("--boundary--", blanks after it allowed), a line with anything
// but white space and dots, as Message.pm's _parse_multipart looks for
// mime_epilogue_exists.
func epilogue(body []byte, boundary string) bool {
	if boundary == "" {
		return false
	}
	closing := "--" + boundary + "--"
	for rest := body; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if !bytes.HasPrefix(line, []byte(closing)) || len(bytes.Trim(line[len(closing):], " \t\r\f\v")) != 0 {
			continue
		}
		for _, c := range rest {
			if !perlSpace(c) && c != '.' {
				return true
			}
		}
		return false
	}
	return false
}
