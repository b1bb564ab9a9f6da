package icap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
)

// Limits on what a server may send; a reply beyond them is malformed.
const (
	maxLineLength  = 8 << 10  // one status, header or chunk-size line
	maxHeaderBytes = 64 << 10 // one ICAP or encapsulated HTTP header section
	maxHeaderLines = 200
)

// Errors wrapped by the parsers.
var (
	// ErrBadReply: the server's reply does not follow RFC 3507.
	ErrBadReply = errors.New("icap: malformed reply")
	// ErrTruncated: the connection ended in the middle of a reply.
	ErrTruncated = errors.New("icap: truncated reply")
)

// Header is an ICAP or HTTP header section: canonical names, values in
// order. RFC 3507 §4.3 takes its header syntax from RFC 2616 §4.2, so a
// folded value (continuation lines starting with space or tab) is kept with
// its lines joined by "\n" (X-Violations-Found is written that way).
type Header map[string][]string

// Get returns the first value of the field, or "".
func (h Header) Get(name string) string {
	if v := h[textproto.CanonicalMIMEHeaderKey(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Response is an ICAP response's status line and header section (RFC 3507
// §4.3.3); the encapsulated parts follow on the connection.
type Response struct {
	Proto  string // "ICAP/1.0"
	Status int
	Reason string
	Header Header
	// Encapsulated is the parsed Encapsulated field (RFC 3507 §4.4.1);
	// empty for 100 Continue, which has none.
	Encapsulated []Section
}

// Section is one entry of the Encapsulated field: "res-hdr=0".
type Section struct {
	Name   string // req-hdr, res-hdr, req-body, res-body, opt-body, null-body
	Offset int64
}

// IsBody reports whether the section is the (last) body entry.
func (s Section) IsBody() bool { return strings.HasSuffix(s.Name, "-body") }

// readLine reads one CRLF (or bare LF) terminated line, without the line
// end, refusing lines longer than maxLineLength.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		frag, err := br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxLineLength {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrBadReply, maxLineLength)
		}
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(b) == 0 {
				return "", io.EOF
			}
			return "", fmt.Errorf("%w: connection closed in the middle of a line", ErrTruncated)
		}
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	return s, nil
}

// readHeader reads header fields up to the empty line.
func readHeader(br *bufio.Reader) (Header, error) {
	h := Header{}
	var last string
	total, lines := 0, 0
	for {
		line, err := readLine(br)
		if err == io.EOF {
			return nil, fmt.Errorf("%w: connection closed in the header section", ErrTruncated)
		}
		if err != nil {
			return nil, err
		}
		if line == "" {
			return h, nil
		}
		total += len(line) + 2
		lines++
		if total > maxHeaderBytes || lines > maxHeaderLines {
			return nil, fmt.Errorf("%w: header section too large", ErrBadReply)
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 2616 §2.2: a continuation line.
			if last == "" {
				return nil, fmt.Errorf("%w: continuation line before any field", ErrBadReply)
			}
			v := h[last]
			v[len(v)-1] += "\n" + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || !validToken(name) {
			return nil, fmt.Errorf("%w: bad header line %q", ErrBadReply, trunc(line))
		}
		last = textproto.CanonicalMIMEHeaderKey(name)
		h[last] = append(h[last], strings.TrimSpace(value))
	}
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// ReadResponse reads an ICAP status line and header section (RFC 3507
// §4.3.3), and parses the Encapsulated field of a final response. A
// connection that closes before the first byte returns io.EOF.
func ReadResponse(br *bufio.Reader) (*Response, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	r := &Response{}
	proto, rest, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "ICAP/1.") {
		return nil, fmt.Errorf("%w: status line %q", ErrBadReply, trunc(line))
	}
	code, reason, _ := strings.Cut(rest, " ")
	r.Proto, r.Reason = proto, strings.TrimSpace(reason)
	if len(code) != 3 {
		return nil, fmt.Errorf("%w: status line %q", ErrBadReply, trunc(line))
	}
	r.Status, err = strconv.Atoi(code)
	if err != nil || r.Status < 100 {
		return nil, fmt.Errorf("%w: status line %q", ErrBadReply, trunc(line))
	}
	if r.Header, err = readHeader(br); err != nil {
		return nil, err
	}
	if r.Status == 100 {
		return r, nil
	}
	enc := r.Header.Get("Encapsulated")
	if enc == "" {
		// RFC 3507 §4.4.1: every message carries Encapsulated; a
		// 204 or an error without it is read as having no body
		// (squid does the same), anything else cannot be framed.
		if r.Status == 200 {
			return nil, fmt.Errorf("%w: 200 without an Encapsulated field", ErrBadReply)
		}
		return r, nil
	}
	if r.Encapsulated, err = ParseEncapsulated(enc); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseEncapsulated reads an Encapsulated field value (RFC 3507 §4.4.1):
// "req-hdr=0, res-hdr=45, res-body=100". Offsets must increase, and only
// the last entry may (and must) be a body.
func ParseEncapsulated(v string) ([]Section, error) {
	var out []Section
	for part := range strings.SplitSeq(v, ",") {
		name, off, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("%w: Encapsulated %q", ErrBadReply, trunc(v))
		}
		name = strings.ToLower(strings.TrimSpace(name))
		switch name {
		case "req-hdr", "res-hdr", "req-body", "res-body", "opt-body", "null-body":
		default:
			return nil, fmt.Errorf("%w: Encapsulated %q: unknown entity %q", ErrBadReply, trunc(v), trunc(name))
		}
		n, err := strconv.ParseInt(strings.TrimSpace(off), 10, 64)
		if err != nil || n < 0 || n > maxHeaderBytes*2 {
			return nil, fmt.Errorf("%w: Encapsulated %q: bad offset", ErrBadReply, trunc(v))
		}
		if len(out) > 0 {
			prev := out[len(out)-1]
			if prev.IsBody() {
				return nil, fmt.Errorf("%w: Encapsulated %q: body entry not last", ErrBadReply, trunc(v))
			}
			if n < prev.Offset {
				return nil, fmt.Errorf("%w: Encapsulated %q: offsets decrease", ErrBadReply, trunc(v))
			}
		}
		out = append(out, Section{Name: name, Offset: n})
	}
	if len(out) == 0 || !out[len(out)-1].IsBody() {
		return nil, fmt.Errorf("%w: Encapsulated %q: no body entry", ErrBadReply, trunc(v))
	}
	return out, nil
}

// HTTPStatus parses the status line of an encapsulated HTTP response
// header ("HTTP/1.1 403 Forbidden") and its fields.
func HTTPStatus(b []byte) (int, Header, error) {
	br := bufio.NewReader(strings.NewReader(string(b)))
	line, err := readLine(br)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: encapsulated HTTP header: %v", ErrBadReply, err)
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	st, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/") || len(code) != 3 || err != nil || st < 100 {
		return 0, nil, fmt.Errorf("%w: encapsulated HTTP status line %q", ErrBadReply, trunc(line))
	}
	h, err := readHeader(br)
	if err != nil {
		return 0, nil, err
	}
	return st, h, nil
}

// ChunkedReader decodes an ICAP body (RFC 3507 §4.4.1: HTTP/1.1 chunked
// transfer-coding, RFC 9112 §7.1), with the "ieof" chunk extension of a
// preview (RFC 3507 §4.5). A connection that closes before the last chunk
// yields ErrTruncated.
type ChunkedReader struct {
	br   *bufio.Reader
	left int64 // in the current chunk
	done bool
	// IEOF is set when the last chunk carried "ieof".
	IEOF bool
	err  error
}

// NewChunkedReader reads a chunked body from br.
func NewChunkedReader(br *bufio.Reader) *ChunkedReader { return &ChunkedReader{br: br} }

func (c *ChunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		if err := c.next(); err != nil {
			c.err = err
			return 0, err
		}
		if c.done {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		err = fmt.Errorf("%w: connection closed inside a chunk", ErrTruncated)
	}
	if err != nil {
		c.err = err
		return n, err
	}
	if c.left == 0 {
		if err := c.crlf(); err != nil {
			c.err = err
			return n, err
		}
	}
	return n, nil
}

func (c *ChunkedReader) crlf() error {
	line, err := readLine(c.br)
	if err == io.EOF {
		return fmt.Errorf("%w: connection closed after a chunk", ErrTruncated)
	}
	if err != nil {
		return err
	}
	if line != "" {
		return fmt.Errorf("%w: chunk data longer than its size", ErrBadReply)
	}
	return nil
}

func (c *ChunkedReader) next() error {
	line, err := readLine(c.br)
	if err == io.EOF {
		return fmt.Errorf("%w: connection closed before the last chunk", ErrTruncated)
	}
	if err != nil {
		return err
	}
	size, ext, _ := strings.Cut(line, ";")
	size = strings.TrimSpace(size)
	if size == "" || len(size) > 15 {
		return fmt.Errorf("%w: chunk size %q", ErrBadReply, trunc(line))
	}
	n, err := strconv.ParseInt(size, 16, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%w: chunk size %q", ErrBadReply, trunc(line))
	}
	if n > 0 {
		c.left = n
		return nil
	}
	c.IEOF = strings.TrimSpace(ext) == "ieof"
	// The last chunk, then an (empty) trailer section.
	for {
		line, err := readLine(c.br)
		if err == io.EOF {
			return fmt.Errorf("%w: connection closed in the chunked trailer", ErrTruncated)
		}
		if err != nil {
			return err
		}
		if line == "" {
			break
		}
	}
	c.done = true
	return nil
}

// ThreatHeaders are the ICAP response fields by which engines name what
// they found: X-Infection-Found (draft-stecher-icap-subid-00 §3.4: "Type=0;
// Resolution=2; Threat=Name;"), X-Violations-Found (§3.5: a count, then per
// violation four continuation lines: file name, threat, id, resolution),
// and the X-Virus-ID (Kaspersky, Sophos, Trend Micro, c-icap) and
// X-Virus-Name (McAfee) fields.
var ThreatHeaders = []string{"X-Infection-Found", "X-Violations-Found", "X-Virus-ID", "X-Virus-Name"}

// Threat returns the threat a header section names in any of the fields
// in names (ThreatHeaders plus a site's vendor variants). A field present
// with an unreadable value still counts, named after the field.
func Threat(h Header, names []string) (string, bool) {
	for _, n := range names {
		vals := h[textproto.CanonicalMIMEHeaderKey(n)]
		for _, v := range vals {
			if name, ok := threatValue(n, v); ok {
				return name, true
			}
		}
	}
	return "", false
}

func threatValue(field, v string) (string, bool) {
	v = strings.TrimSpace(v)
	switch textproto.CanonicalMIMEHeaderKey(field) {
	case "X-Infection-Found":
		for p := range strings.SplitSeq(v, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "Threat") && strings.TrimSpace(val) != "" {
				return clean(val), true
			}
		}
	case "X-Violations-Found":
		lines := strings.Split(v, "\n")
		if n, err := strconv.Atoi(strings.TrimSpace(lines[0])); err == nil && n == 0 {
			return "", false // an explicit "no violations"
		}
		if len(lines) >= 3 && strings.TrimSpace(lines[2]) != "" {
			return clean(lines[2]), true
		}
	default:
		if v != "" {
			return clean(v), true
		}
	}
	return textproto.CanonicalMIMEHeaderKey(field), true
}

// clean makes a threat name safe for a log line and a header field.
func clean(s string) string {
	s = strings.TrimSpace(s)
	b := []byte(s)
	for i, c := range b {
		switch {
		case c < 0x20:
			b[i] = ' '
		case c >= 0x7f:
			b[i] = '?'
		}
	}
	s = strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200]
	}
	if s == "" {
		s = "unnamed"
	}
	return s
}

func trunc(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
