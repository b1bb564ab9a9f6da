// Package corpus reads message corpora for `mailwarden learn`, `eval` and
// `check`: directories of .eml files and mbox files (RFC 4155; the mboxrd
// variant unquotes ">From "), which are hostile input: the splitter has a
// fuzz test.
package corpus

import (
	"bufio"
	"bytes"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mailwarden/mailwarden/policy/message"
)

// Files lists the regular files under path (or path itself),
// sorted, skipping hidden files.
func Files(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != path {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// ParseError is a message that could not be read.
type ParseError struct{ err error }

func (e *ParseError) Error() string { return e.err.Error() }
func (e *ParseError) Unwrap() error { return e.err }

// mboxFrom matches an mbox separator line ("From sender date").
var mboxFrom = regexp.MustCompile(`^From \S+ .*\d\d:\d\d`)

// Split returns the messages of a file: one for an .eml file; an
// mbox file (it starts with a "From " line) is cut at every "From " line
// that follows an empty line, and ">From " unquoted (mboxrd).
func Split(data []byte) [][]byte {
	if !bytes.HasPrefix(data, []byte("From ")) {
		return [][]byte{data}
	}
	var msgs [][]byte
	var cur bytes.Buffer
	prevEmpty := true
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	sc.Split(scanLinesKeep)
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		trim := bytes.TrimRight(line, "\r\n")
		if prevEmpty && mboxFrom.Match(trim) {
			if !first {
				msgs = append(msgs, bytes.Clone(cur.Bytes()))
				cur.Reset()
			}
			first = false
			prevEmpty = false
			continue
		}
		if bytes.HasPrefix(trim, []byte(">")) && bytes.HasPrefix(bytes.TrimLeft(trim, ">"), []byte("From ")) {
			line = line[1:]
		}
		cur.Write(line)
		prevEmpty = len(trim) == 0
	}
	if cur.Len() > 0 || first {
		msgs = append(msgs, bytes.Clone(cur.Bytes()))
	}
	return msgs
}

func scanLinesKeep(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Each calls fn for every message in a file.
func Each(path string, maxHeaders int, fn func(*message.Message) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, raw := range Split(data) {
		m, err := Parse(raw, maxHeaders)
		if err != nil {
			return &ParseError{err}
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Parse makes a message of raw bytes, as the filter would: envelope
// sender and recipients from From, To and Cc.
func Parse(raw []byte, maxHeaders int) (*message.Message, error) {
	h, body, err := message.ReadMessage(bytes.NewReader(raw), maxHeaders)
	if err != nil {
		return nil, err
	}
	m := &message.Message{Header: h, Body: message.BytesBody(body)}
	m.Size = m.RawSize()
	m.Rcpts = Addresses(append(m.Header.Values("To"), m.Header.Values("Cc")...))
	m.MailFrom = FirstAddress(m.Header.Values("From"))
	return m, nil
}

// FirstAddress is the first address of the header values.
func FirstAddress(vals []string) string {
	if a := Addresses(vals); len(a) > 0 {
		return a[0]
	}
	return ""
}

// Addresses parses address lists (RFC 5322 §3.4), skipping bad ones.
func Addresses(vals []string) []string {
	var out []string
	for _, v := range vals {
		list, err := mail.ParseAddressList(v)
		if err != nil {
			continue
		}
		for _, a := range list {
			out = append(out, a.Address)
		}
	}
	return out
}
