package arc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Field is one header field as it stands in the message: the name as
// written and everything after the colon (with the leading space the MTA
// kept, and with its folds, LF or CRLF). Simple canonicalization needs
// exactly these bytes; relaxed tolerates a changed fold or lost space.
type Field struct {
	Name  string
	Value string
}

// ErrHeaderSyntax reports a header section that cannot be parsed.
var ErrHeaderSyntax = errors.New("arc: malformed header section")

// maxHeaderBytes bounds the header section ReadMessage accepts.
const maxHeaderBytes = 1 << 20

// ReadMessage splits a message (CRLF or LF line ends) into its header
// fields and a reader positioned at the start of the body.
func ReadMessage(r io.Reader) ([]Field, io.Reader, error) {
	br := bufio.NewReader(r)
	var fields []Field
	total := 0
	for {
		line, err := br.ReadString('\n')
		total += len(line)
		if total > maxHeaderBytes {
			return nil, nil, fmt.Errorf("%w: header section over %d bytes", ErrHeaderSyntax, maxHeaderBytes)
		}
		if line == "" && err != nil {
			if err == io.EOF {
				break
			}
			return nil, nil, err
		}
		if line == "\n" || line == "\r\n" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, nil, fmt.Errorf("%w: continuation line before any field", ErrHeaderSyntax)
			}
			fields[len(fields)-1].Value += line
		} else {
			name, value, ok := strings.Cut(line, ":")
			if !ok || !validFieldName(strings.TrimRight(name, " \t")) {
				return nil, nil, fmt.Errorf("%w: line without a field name", ErrHeaderSyntax)
			}
			fields = append(fields, Field{Name: name, Value: value})
		}
		if err != nil {
			if err == io.EOF {
				break
			}
			return nil, nil, err
		}
	}
	// The values still carry their final line end; drop it so that a
	// Field looks the same whether it came from a file or a milter.
	for i := range fields {
		fields[i].Value = trimEOL(fields[i].Value)
	}
	return fields, br, nil
}

func trimEOL(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// validFieldName: RFC 5322 §3.6.8 ftext, printable US-ASCII except ":".
func validFieldName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// stripB returns a signature field's value with the value of its b= tag
// deleted, keeping everything else byte for byte (RFC 6376 §3.7, RFC 8617
// §5.1.1: the b= value, with any white space inside and around it, is
// the empty string while hashing).
func stripB(value string) string {
	var b strings.Builder
	rest := value
	for {
		spec, tail, more := strings.Cut(rest, ";")
		name, _, eq := strings.Cut(spec, "=")
		if eq && strings.Trim(name, " \t\r\n") == "b" {
			b.WriteString(spec[:strings.IndexByte(spec, '=')+1])
		} else {
			b.WriteString(spec)
		}
		if !more {
			return b.String()
		}
		b.WriteByte(';')
		rest = tail
	}
}
