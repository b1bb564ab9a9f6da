package message

import (
	"bytes"
	"io"
	"net/netip"
	"strings"
	"time"
)

// Field is one header field as the MTA passed it. Value is raw: everything
// after the colon, including a leading space if the MTA kept it, with folded
// lines still folded.
type Field struct {
	Name  string
	Value string
}

// Header is the ordered list of a message's header fields.
type Header []Field

// Get returns the unfolded, trimmed value of the first field named name.
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return Unfold(f.Value)
		}
	}
	return ""
}

// Values returns the unfolded, trimmed values of every field named name.
func (h Header) Values(name string) []string {
	var v []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			v = append(v, Unfold(f.Value))
		}
	}
	return v
}

// Has reports whether a field named name is present.
func (h Header) Has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Unfold removes RFC 5322 §2.2.3 folding and surrounding white space.
func Unfold(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(v)
	}
	return strings.TrimSpace(v)
}

// WriteTo writes the header section in wire form (CRLF line ends, the empty
// line that ends the header included). Folded values that the MTA joined with
// bare LF get CRLF back, so that DKIM simple canonicalisation sees the
// original bytes.
func (h Header) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(h.AppendWire(make([]byte, 0, h.WireSize())))
	return int64(n), err
}

// WireSize is the number of bytes of the header section in wire form (what
// WriteTo writes), counted without building it.
func (h Header) WireSize() int {
	n := len("\r\n")
	for _, f := range h {
		n += len(f.Name) + len(":") + len(f.Value) + len("\r\n")
		if needsSpace(f.Value) {
			n++
		}
		// Each bare LF of a folded value becomes CRLF.
		n += strings.Count(f.Value, "\n") - strings.Count(f.Value, "\r\n")
	}
	return n
}

// AppendWire appends the header section in wire form (see WriteTo) to b.
func (h Header) AppendWire(b []byte) []byte {
	for _, f := range h {
		b = append(b, f.Name...)
		b = append(b, ':')
		if needsSpace(f.Value) {
			// QUIRK(postfix): without SMFIP_HDR_LEADSPC the MTA strips the
			// space after the colon; put the conventional one back.
			b = append(b, ' ')
		}
		b = appendCRLF(b, f.Value)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// WriteWire writes the header section in wire form (see WriteTo) to b,
// for a message built as one string.
func (h Header) WriteWire(b *strings.Builder) {
	for _, f := range h {
		b.WriteString(f.Name)
		b.WriteByte(':')
		if needsSpace(f.Value) {
			b.WriteByte(' ') // QUIRK(postfix): as in AppendWire
		}
		for v := f.Value; ; {
			i := strings.IndexByte(v, '\n')
			if i < 0 {
				b.WriteString(v)
				break
			}
			b.WriteString(v[:i])
			if i == 0 || v[i-1] != '\r' {
				b.WriteByte('\r')
			}
			b.WriteByte('\n')
			v = v[i+1:]
		}
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
}

func needsSpace(v string) bool {
	return v != "" && v[0] != ' ' && v[0] != '\t'
}

// appendCRLF appends s with every bare LF made CRLF (CRLF kept as is).
func appendCRLF(b []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return append(b, s...)
		}
		b = append(b, s[:i]...)
		if i == 0 || s[i-1] != '\r' {
			b = append(b, '\r')
		}
		b = append(b, '\n')
		s = s[i+1:]
	}
}

// Body is a message body that many checks may read at once. It is backed by
// memory or by a spool file; Close releases it (and removes the file).
type Body interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// BytesBody is an in-memory Body.
type BytesBody []byte

func (b BytesBody) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(b).ReadAt(p, off)
}
func (b BytesBody) Size() int64  { return int64(len(b)) }
func (b BytesBody) Close() error { return nil }

// Client describes the SMTP client the MTA is talking to.
type Client struct {
	Addr netip.Addr // zero when unknown or local (sendmail(1) submission)
	Port uint16
	Name string // reverse DNS name as the MTA verified it, or "unknown"
	HELO string
}

// Envelope is what is known at RCPT time.
type Envelope struct {
	Client   Client
	Auth     string
	Macros   map[string]string
	MailFrom string
	Rcpts    []string // recipients accepted so far
}

// Message is one mail transaction as the policy sees it: transport-neutral,
// filled by the filter package or by `mailwarden check`.
type Message struct {
	QueueID  string
	Client   Client
	Auth     string            // SASL login name; empty when not authenticated
	Macros   map[string]string // every macro the MTA sent, by name without braces
	MailFrom string            // envelope sender without angle brackets; "" is the null sender
	Rcpts    []string          // envelope recipients without angle brackets
	Header   Header
	Body     Body // never nil once the message is complete
	// Oversize: the message went past max_message_size (or a header
	// bound); no check judges it.
	Oversize bool
	// Incomplete: the message was not kept whole (past every size bound
	// the filter keeps to, or a header not kept), so it cannot be stored;
	// only the MTA has it.
	Incomplete bool
	Size       int64 // header plus body bytes as received
	Received   time.Time

	text textCache // the MIME walk, done at most once (see Parts)
}

// BodyReader returns a fresh reader over the whole body.
func (m *Message) BodyReader() io.Reader {
	if m.Body == nil {
		return bytes.NewReader(nil)
	}
	return io.NewSectionReader(m.Body, 0, m.Body.Size())
}

// Raw returns a fresh reader over the whole message in wire form: header
// section, empty line, body. Safe to call from several goroutines.
func (m *Message) Raw() io.Reader {
	h := m.Header.AppendWire(make([]byte, 0, m.Header.WireSize()))
	return io.MultiReader(bytes.NewReader(h), m.BodyReader())
}

// RawSize is the number of bytes Raw yields.
func (m *Message) RawSize() int64 {
	n := int64(m.Header.WireSize())
	if m.Body != nil {
		n += m.Body.Size()
	}
	return n
}

// SenderDomain is the lower-cased domain of the envelope sender ("" for the null sender).
func (m *Message) SenderDomain() string { return Domain(m.MailFrom) }

// Domain returns the lower-cased domain part of an address.
func Domain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
	}
	return ""
}

// LocalPart returns the local part of an address.
func LocalPart(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i]
	}
	return addr
}
