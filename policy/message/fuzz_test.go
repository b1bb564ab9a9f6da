package message

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Run locally for a while, e.g.
//   go test -run='^$' -fuzz=FuzzReadMessage -fuzztime=30s ./policy/message
// Crashers land in testdata/fuzz/FuzzReadMessage/ and are then regression seeds.

func messageSeeds(f *testing.F) {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "golden", "*.eml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"",
		"\n",
		"\r\n\r\n",
		"Subject: x",
		"Subject: x\n continued\n\tagain\n\nbody",
		"From x@y Mon Jan 1\nFrom: a\n\n",
		" leading continuation\n",
		"NoColonLine\nSubject: x\n\n",
		"Subject: a\rb\r\n\r\nbody\r",
		"X: \x00\xff\xfe\n\n\x00",
		"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: multipart/mixed; boundary=y\n\n--y\n--y--\n--x--\n",
		"Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nSubject: inner\n\ntext",
		"Content-Type: text/plain; charset=bogus-charset\nContent-Transfer-Encoding: base64\n\n!!!notbase64",
		"Content-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n<p>=E9=\n</p><script>x",
		"Authentication-Results: mx.fuzz.test; spf=pass\nX-Spam-Status: Yes\n\n",
		"Authentication-Results: (((\nAuthentication-Results: ;;;\n\n",
	} {
		f.Add([]byte(s))
	}
}

func FuzzReadMessage(f *testing.F) {
	messageSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, body, err := ReadMessage(bytes.NewReader(data), 50)
		if err != nil {
			if !errors.Is(err, ErrHeaderTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(h) > 50 {
			t.Fatalf("%d fields with a limit of 50", len(h))
		}
		for _, fl := range h {
			if !ValidFieldName(fl.Name) {
				t.Fatalf("invalid field name %q", fl.Name)
			}
			if strings.ContainsAny(fl.Value, "\n") && !validFolds(fl.Value) {
				t.Fatalf("value %q has a line break not followed by white space", fl.Value)
			}
		}
		// The body the MTA would send has CRLF line ends only.
		if bytes.Count(body, []byte("\n")) != bytes.Count(body, []byte("\r\n")) {
			t.Fatalf("body has bare LF: %q", body)
		}
		// Writing the header and reading it back gives the same fields.
		var b bytes.Buffer
		h.WriteTo(&b)
		h2, rest, err := ReadMessage(&b, 0)
		if err != nil {
			t.Fatalf("re-reading our own header: %v", err)
		}
		if len(rest) != 0 || len(h2) != len(h) {
			t.Fatalf("round trip: %q -> %q (rest %q)", h, h2, rest)
		}
		for i := range h {
			want := h[i].Value
			if want != "" && want[0] != ' ' && want[0] != '\t' {
				want = " " + want
			}
			if h2[i].Name != h[i].Name || h2[i].Value != want {
				t.Fatalf("round trip field %d: %q -> %q", i, h[i], h2[i])
			}
		}
	})
}

func validFolds(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] == '\n' && (i+1 >= len(v) || (v[i+1] != ' ' && v[i+1] != '\t')) {
			return false
		}
	}
	return true
}
