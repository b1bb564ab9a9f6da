package web

import (
	"bytes"
	"io"
	"net/url"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // RFC 2046 charsets beyond UTF-8
	"github.com/microcosm-cc/bluemonday"
)

// parsed is what the page shows of a message.
type parsed struct {
	header string // the header as received
	text   string // the first text/plain part, decoded
	html   string // the first text/html part, decoded, not yet sanitised
}

// maxPart bounds each decoded part.
const maxPart = 1 << 20

// parse walks the MIME structure (RFC 2045, RFC 2046) of a message; a
// broken message gives what could be read.
func parse(raw []byte) parsed {
	var p parsed
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if e2 := bytes.Index(raw, []byte("\n\n")); end < 0 || (e2 >= 0 && e2 < end) {
		end = e2
	}
	if end < 0 {
		p.header = string(raw)
	} else {
		p.header = string(raw[:end])
	}
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		if end >= 0 {
			p.text = string(raw[end:])
		}
		return p
	}
	_ = err // unknown charset or encoding: the part is shown as it is
	e.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil || part.MultipartReader() != nil {
			return nil
		}
		disp, _, _ := part.Header.ContentDisposition()
		if disp == "attachment" {
			return nil
		}
		mt, _, _ := part.Header.ContentType()
		if mt == "" {
			mt = "text/plain"
		}
		switch {
		case mt == "text/plain" && p.text == "":
			b, _ := io.ReadAll(io.LimitReader(part.Body, maxPart))
			p.text = string(b)
		case mt == "text/html" && p.html == "":
			b, _ := io.ReadAll(io.LimitReader(part.Body, maxPart))
			p.html = string(b)
		}
		return nil
	})
	if p.text == "" && p.html != "" {
		p.text = strings.TrimSpace(bluemonday.StrictPolicy().Sanitize(p.html))
	}
	return p
}

var htmlPolicy = func() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowDataURIImages()
	p.RequireNoReferrerOnLinks(true)
	// Remote images are web bugs: they tell the sender the message was
	// read. Only inline data: images stay.
	p.RewriteSrc(func(u *url.URL) {
		if u.Scheme != "data" {
			*u = url.URL{}
		}
	})
	return p
}()

// sanitize keeps formatting, links and inline images of a message's HTML
// and removes scripts, styles that load, forms, frames and remote images.
func sanitize(html string) string { return htmlPolicy.Sanitize(html) }
