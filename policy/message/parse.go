package message

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrHeaderTooLarge is returned by ReadMessage for a header section beyond
// its limits.
var ErrHeaderTooLarge = errors.New("message: header section too large")

// Limits of ReadMessage's header parsing.
const (
	MaxHeaderBytes = 1 << 20
)

// ReadMessage splits a message file (.eml, or one mbox entry with its
// "From " line) into its header fields and body, the way an MTA presents
// them to a milter: field values keep their leading space, folded lines are
// joined with "\n", and the body keeps its bytes. A line that is neither a
// field nor a continuation ends the header (as in Postfix); maxFields bounds
// the number of fields.
func ReadMessage(r io.Reader, maxFields int) (Header, []byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var h Header
	// The last field's value is built here while continuation lines may
	// follow: appending to the string each time is quadratic in the size of
	// a long folded field.
	var val strings.Builder
	flush := func() Header {
		if len(h) > 0 {
			h[len(h)-1].Value = val.String()
		}
		return h
	}
	read := 0
	first := true
	for {
		line, err := br.ReadBytes('\n')
		read += len(line)
		if read > MaxHeaderBytes {
			return flush(), nil, ErrHeaderTooLarge
		}
		if len(line) == 0 && err != nil {
			if err == io.EOF {
				return flush(), nil, nil // header only, no body
			}
			return flush(), nil, err
		}
		text := strings.TrimRight(string(line), "\r\n")
		if first && strings.HasPrefix(text, "From ") {
			first = false
			continue // mbox separator
		}
		first = false
		if text == "" {
			break
		}
		if (text[0] == ' ' || text[0] == '\t') && len(h) > 0 {
			val.WriteByte('\n')
			val.WriteString(text)
			continue
		}
		i := strings.IndexByte(text, ':')
		if i <= 0 || !ValidFieldName(strings.TrimRight(text[:i], " \t")) {
			// Not a header field: the header section ended without the
			// empty line; this line belongs to the body.
			rest, err2 := io.ReadAll(br)
			if err2 != nil {
				return flush(), nil, err2
			}
			return flush(), toCRLF(append(append([]byte{}, line...), rest...)), nil
		}
		if maxFields > 0 && len(h) >= maxFields {
			return flush(), nil, fmt.Errorf("%w: more than %d fields", ErrHeaderTooLarge, maxFields)
		}
		flush()
		h = append(h, Field{Name: strings.TrimRight(text[:i], " \t")})
		val.Reset()
		val.WriteString(text[i+1:])
		if err == io.EOF {
			return flush(), nil, nil
		}
	}
	flush()
	body, err := io.ReadAll(br)
	if err != nil {
		return h, nil, err
	}
	return h, toCRLF(body), nil
}

// toCRLF turns bare LF line ends into CRLF, as the MTA sends a body to a
// milter (files on disk usually have LF).
func toCRLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) {
		return b
	}
	n := bytes.Count(b, []byte("\n")) - bytes.Count(b, []byte("\r\n"))
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// ValidFieldName reports whether s is a header field name (RFC 5322
// §2.2: printable US-ASCII except colon).
func ValidFieldName(s string) bool {
	for _, c := range []byte(s) {
		if c <= 32 || c >= 127 || c == ':' {
			return false
		}
	}
	return s != ""
}
