package arc

import (
	"fmt"
	"io"
	"strings"
)

// Canon is a canonicalization algorithm (RFC 6376 §3.4).
type Canon string

// Canonicalization algorithms.
const (
	CanonSimple  Canon = "simple"
	CanonRelaxed Canon = "relaxed"
)

// parseCanon parses a c= value: "header[/body]", each "simple" or
// "relaxed"; a lone algorithm applies to the header with simple for the
// body (RFC 6376 §3.5 c=). An absent tag means def/def.
func parseCanon(v string, present bool, def Canon) (head, body Canon, err error) {
	if !present {
		return def, def, nil
	}
	h, b, slash := strings.Cut(v, "/")
	head, body = Canon(h), CanonSimple
	if slash {
		body = Canon(b)
	}
	if !validCanon(head) || !validCanon(body) {
		return "", "", fmt.Errorf("%w: c=%q", ErrSignatureSyntax, v)
	}
	return head, body, nil
}

func validCanon(c Canon) bool { return c == CanonSimple || c == CanonRelaxed }

// canonHeader returns one header field in canonical form, with its
// final CRLF. value is everything after the colon.
func canonHeader(c Canon, name, value string) string {
	value = toCRLF(value)
	if c == CanonSimple {
		// RFC 6376 §3.4.1: no change at all.
		return name + ":" + value + "\r\n"
	}
	// RFC 6376 §3.4.2: lower-case the name, unfold, reduce every run of
	// WSP to one SP, delete WSP at the end of the value and around the
	// colon.
	value = strings.ReplaceAll(value, "\r\n", "")
	var b strings.Builder
	b.Grow(len(name) + len(value) + 3)
	b.WriteString(strings.ToLower(strings.TrimRight(name, " \t")))
	b.WriteByte(':')
	b.Write(relaxLine([]byte(strings.TrimLeft(value, " \t"))))
	b.WriteString("\r\n")
	return b.String()
}

// toCRLF turns bare LF line breaks into CRLF: messages read from files
// and some milter values fold with LF only.
func toCRLF(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// bodyCanon is a writer that canonicalizes a message body (RFC 6376
// §3.4.3, §3.4.4) into w, streaming: empty lines are held back until a
// non-empty line shows they are not at the end of the body. Bare LF line
// ends are taken as CRLF.
type bodyCanon struct {
	c       Canon
	w       io.Writer
	line    []byte // the current, unterminated line
	pending int    // empty lines held back
	any     bool   // a non-empty line was written
	limit   int64  // l= (-1: none)
	written int64
	err     error
}

func newBodyCanon(c Canon, w io.Writer, limit int64) *bodyCanon {
	return &bodyCanon{c: c, w: w, limit: limit}
}

func (b *bodyCanon) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	for _, c := range p {
		if c == '\n' {
			b.endLine()
			continue
		}
		b.line = append(b.line, c)
	}
	return len(p), b.err
}

// endLine canonicalizes and emits (or holds back) the current line.
func (b *bodyCanon) endLine() {
	line := b.line
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if b.c == CanonRelaxed {
		line = relaxLine(line)
	}
	if len(line) == 0 {
		b.pending++
	} else {
		for ; b.pending > 0; b.pending-- {
			b.emit([]byte("\r\n"))
		}
		b.emit(line)
		b.emit([]byte("\r\n"))
		b.any = true
	}
	b.line = b.line[:0]
}

// relaxLine reduces WSP runs to one SP and drops WSP at the end of the
// line (RFC 6376 §3.4.4). It works in place.
func relaxLine(line []byte) []byte {
	out := line[:0]
	space := false
	for _, c := range line {
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space {
			out = append(out, ' ')
			space = false
		}
		out = append(out, c)
	}
	return out
}

func (b *bodyCanon) emit(p []byte) {
	if b.err != nil {
		return
	}
	if b.limit >= 0 {
		if b.written >= b.limit {
			return
		}
		if rest := b.limit - b.written; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	n, err := b.w.Write(p)
	b.written += int64(n)
	b.err = err
}

// Close ends the body: a last line without CRLF gets one; trailing empty
// lines are dropped; an empty body is one CRLF in simple and nothing in
// relaxed (RFC 6376 §3.4.3, §3.4.4).
func (b *bodyCanon) Close() error {
	if len(b.line) > 0 {
		b.endLine()
	}
	if !b.any && b.c == CanonSimple {
		b.emit([]byte("\r\n"))
	}
	return b.err
}
