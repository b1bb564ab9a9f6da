package sa

import (
	"bytes"
	"io"
	"mime"
	"strings"

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
	// Raw is the whole message as received (header and body), for full rules.
	Raw []byte
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
}

// Limits of FromRaw's MIME walk: hostile messages nest deeply or carry
// huge parts; the walk stops, it never fails.
const (
	maxDepth     = 16
	maxParts     = 256
	maxPartBytes = 2 << 20
)

// FromRaw parses a raw message. A leading mbox "From " line is skipped.
// It never fails: what cannot be parsed is left out.
func FromRaw(raw []byte) *Message {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	m := &Message{Raw: raw, Type: "text/plain"}
	hdr, body := splitHeader(raw)
	m.Header = parseFields(hdr)
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		_ = err
		return m
	}
	if t, _, _ := e.Header.ContentType(); t != "" {
		m.Type = strings.ToLower(t)
	}
	w := walker{m: m}
	w.walk(e, body, 0, 0)
	return m
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

func parseFields(hdr []byte) []Field {
	var fs []Field
	for _, line := range strings.SplitAfter(string(hdr), "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fs) > 0 {
			fs[len(fs)-1].Value += line
			continue
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(name, " \t") {
			continue
		}
		fs = append(fs, Field{Name: name, Value: val})
	}
	for i := range fs {
		fs[i].Value = strings.TrimRight(strings.TrimLeft(fs[i].Value, " \t"), "\r\n")
	}
	return fs
}

// walker walks the MIME tree of one message into its Parts.
type walker struct {
	m    *Message
	alts int // multipart/alternative entities seen
}

// maxEncodedBytes bounds the encoded body of a part read for decoding:
// room for maxPartBytes decoded even from quoted-printable at its worst.
const maxEncodedBytes = 3*maxPartBytes + 4096

// walk adds the leaves of e. encoded is e's body before its transfer
// encoding is decoded (the evals that measure encoded lines read it).
func (w *walker) walk(e *message.Entity, encoded []byte, depth, alt int) {
	m := w.m
	if depth > maxDepth || len(m.Parts) >= maxParts {
		return
	}
	t, params, _ := e.Header.ContentType()
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
		// the parts here keeps their encoded bodies too.
		mr := textproto.NewMultipartReader(e.Body, params["boundary"])
		for len(m.Parts) < maxParts {
			p, err := mr.NextPart()
			if p == nil || err != nil {
				break
			}
			enc, _ := io.ReadAll(io.LimitReader(p, maxEncodedBytes))
			sub, err := message.New(message.Header{Header: p.Header}, bytes.NewReader(enc))
			if err != nil {
				// As go-message's reader: a part of an unknown charset or
				// transfer encoding ends the walk of its multipart.
				break
			}
			w.walk(sub, enc, depth+1, alt)
		}
		return
	}
	var fields []Field
	fl := e.Header.Fields()
	for fl.Next() {
		fields = append(fields, Field{Name: fl.Key(), Value: fl.Value()})
	}
	if t == "message/rfc822" {
		inner, _ := io.ReadAll(io.LimitReader(e.Body, maxPartBytes))
		if sub, err := message.Read(bytes.NewReader(inner)); sub != nil {
			_ = err
			_, body := splitHeader(inner)
			w.walk(sub, body, depth+1, alt)
		}
		return
	}
	body, err := io.ReadAll(io.LimitReader(e.Body, maxPartBytes))
	p := Part{Type: t, Header: fields, Size: len(body), Broken: err != nil,
		Charset:  strings.ToLower(params["charset"]),
		Encoding: strings.ToLower(strings.TrimSpace(e.Header.Get("Content-Transfer-Encoding"))),
		Alt:      alt, MaxLine: maxLine(encoded)}
	if strings.HasPrefix(t, "text/") {
		p.Text = string(body)
	}
	switch {
	case encoded != nil:
		p.RawSize = len(encoded)
	case p.Encoding == "base64":
		p.RawSize = len(body) * 4 / 3
	default:
		p.RawSize = len(body)
	}
	m.Parts = append(m.Parts, p)
}

// maxLine is the length of b's longest line, its line break (LF or
// CRLF) not counted.
func maxLine(b []byte) int {
	n := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		line := b
		if i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		l := len(line)
		if l > 0 && line[l-1] == '\r' {
			l--
		}
		n = max(n, l)
	}
	return n
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeHeader decodes RFC 2047 encoded words and unfolds a field value.
func decodeHeader(v string) string {
	v = unfold(v)
	if strings.Contains(v, "=?") {
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			return d
		}
	}
	return v
}

func unfold(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	v = strings.ReplaceAll(v, "\r\n", "\n")
	return strings.ReplaceAll(v, "\n", "")
}
