package sa

import (
	"bytes"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
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
	m := &Message{Raw: raw}
	hdr, _ := splitHeader(raw)
	m.Header = parseFields(hdr)
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		_ = err
		return m
	}
	walk(m, e, 0)
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

func walk(m *Message, e *message.Entity, depth int) {
	if depth > maxDepth || len(m.Parts) >= maxParts {
		return
	}
	t, params, _ := e.Header.ContentType()
	if t == "" {
		t = "text/plain"
	}
	t = strings.ToLower(t)
	if mr := e.MultipartReader(); mr != nil {
		for len(m.Parts) < maxParts {
			p, err := mr.NextPart()
			if p == nil || err != nil {
				break
			}
			walk(m, p, depth+1)
		}
		return
	}
	var fields []Field
	fl := e.Header.Fields()
	for fl.Next() {
		fields = append(fields, Field{Name: fl.Key(), Value: fl.Value()})
	}
	if t == "message/rfc822" {
		if sub, err := message.Read(io.LimitReader(e.Body, maxPartBytes)); sub != nil {
			_ = err
			walk(m, sub, depth+1)
		}
		return
	}
	body, err := io.ReadAll(io.LimitReader(e.Body, maxPartBytes))
	p := Part{Type: t, Header: fields, Size: len(body), Broken: err != nil,
		Charset:  strings.ToLower(params["charset"]),
		Encoding: strings.ToLower(strings.TrimSpace(e.Header.Get("Content-Transfer-Encoding")))}
	if strings.HasPrefix(t, "text/") {
		p.Text = string(body)
	}
	if p.Encoding == "base64" {
		p.RawSize = len(body) * 4 / 3
	} else {
		p.RawSize = len(body)
	}
	m.Parts = append(m.Parts, p)
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
