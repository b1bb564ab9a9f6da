package message

import (
	"bytes"
	"errors"
	"html"
	"io"
	"mime"
	"regexp"
	"strings"
	"sync"

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
		var b strings.Builder
		for _, p := range c.parts {
			if p.Text == "" || b.Len() >= MaxTextBytes {
				continue
			}
			t := p.Text
			if p.ContentType == "text/html" {
				t = HTMLText(t)
			}
			if room := MaxTextBytes - b.Len(); len(t) > room {
				t = t[:room]
			}
			b.WriteString(t)
			b.WriteByte('\n')
		}
		c.text = b.String()
	})
	return c
}

func walkParts(r io.Reader) []Part { return walkMessage(r, 0) }

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
	data, err := io.ReadAll(io.LimitReader(e.Body, maxPartDecode))
	part.Size = int64(len(data))
	if err != nil {
		part.Broken = true
	}
	if strings.HasPrefix(ct, "text/") && part.Filename == "" {
		if len(data) > MaxTextBytes {
			data = data[:MaxTextBytes]
		}
		part.Text = string(bytes.ToValidUTF8(data, []byte("\uFFFD")))
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

var (
	htmlDrop = regexp.MustCompile(`(?is)<(script|style|head)\b.*?</(script|style|head)\s*>`)
	htmlTag  = regexp.MustCompile(`(?s)<[^>]*>`)
	htmlWS   = regexp.MustCompile(`[ \t\r\f\v]+`)
)

// HTMLText reduces HTML to its visible text: scripts, styles and the head
// dropped, tags removed, entities decoded.
func HTMLText(s string) string {
	s = htmlDrop.ReplaceAllString(s, " ")
	s = htmlTag.ReplaceAllString(s, " ")
	s = html.UnescapeString(s)
	return htmlWS.ReplaceAllString(s, " ")
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
