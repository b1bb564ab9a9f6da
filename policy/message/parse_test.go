package message

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestReadMessage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		header Header
		body   string // "" and nilBody false: empty body
		nobody bool   // body must be nil (no empty line, no body)
	}{
		{
			name:   "plain CRLF",
			in:     "From: a@b.test\r\nSubject: hi\r\n\r\nline1\r\nline2\r\n",
			header: Header{{"From", " a@b.test"}, {"Subject", " hi"}},
			body:   "line1\r\nline2\r\n",
		},
		{
			name:   "LF file gets CRLF body",
			in:     "Subject: hi\n\nline1\nline2\n",
			header: Header{{"Subject", " hi"}},
			body:   "line1\r\nline2\r\n",
		},
		{
			name:   "mixed line ends",
			in:     "Subject: hi\n\na\r\nb\nc",
			header: Header{{"Subject", " hi"}},
			body:   "a\r\nb\r\nc",
		},
		{
			name:   "mbox From line",
			in:     "From alice@b.test Mon Jan  1 00:00:00 2024\nFrom: alice@b.test\nTo: bob@c.test\n\nbody\n",
			header: Header{{"From", " alice@b.test"}, {"To", " bob@c.test"}},
			body:   "body\r\n",
		},
		{
			name:   "folded header joined with LF",
			in:     "Subject: one\r\n two\r\n\tthree\r\nX: y\r\n\r\n",
			header: Header{{"Subject", " one\n two\n\tthree"}, {"X", " y"}},
			body:   "",
		},
		{
			name:   "header only, no empty line",
			in:     "Subject: only\nX-Two: 2\n",
			header: Header{{"Subject", " only"}, {"X-Two", " 2"}},
			nobody: true,
		},
		{
			name:   "header only, no final newline",
			in:     "Subject: only",
			header: Header{{"Subject", " only"}},
			nobody: true,
		},
		{
			name:   "no-colon line ends the header and starts the body",
			in:     "Subject: x\nthis is body\nmore\n",
			header: Header{{"Subject", " x"}},
			body:   "this is body\r\nmore\r\n",
		},
		{
			name:   "space before the colon",
			in:     "Subject : spaced\n\n",
			header: Header{{"Subject", " spaced"}},
		},
		{
			name:   "no space after the colon",
			in:     "Subject:tight\n\n",
			header: Header{{"Subject", "tight"}},
		},
		{
			name:   "empty value",
			in:     "X-Empty:\n\nb",
			header: Header{{"X-Empty", ""}},
			body:   "b",
		},
		{
			name:   "NUL bytes in value and body",
			in:     "X-Nul: a\x00b\n\nbo\x00dy\n",
			header: Header{{"X-Nul", " a\x00b"}},
			body:   "bo\x00dy\r\n",
		},
		{
			name:   "8-bit header bytes kept raw",
			in:     "Subject: caf\xc3\xa9 \xff\xfe\n\n",
			header: Header{{"Subject", " caf\xc3\xa9 \xff\xfe"}},
		},
		{
			name:   "continuation before any field is body",
			in:     " leading space\nSubject: x\n",
			header: nil,
			body:   " leading space\r\nSubject: x\r\n",
		},
		{
			name:   "field name with a control character is body",
			in:     "Bad\x01Name: x\n\n",
			header: nil,
			body:   "Bad\x01Name: x\r\n\r\n",
		},
		{
			name:   "empty input",
			in:     "",
			nobody: true,
		},
		{
			name:   "From-space line later is a body line",
			in:     "Subject: x\n\nFrom here on\n",
			header: Header{{"Subject", " x"}},
			body:   "From here on\r\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, body, err := ReadMessage(strings.NewReader(tc.in), 1000)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%q", h) != fmt.Sprintf("%q", tc.header) {
				t.Errorf("header\n got %q\nwant %q", h, tc.header)
			}
			if tc.nobody {
				if body != nil {
					t.Errorf("body = %q, want none", body)
				}
				return
			}
			if string(body) != tc.body {
				t.Errorf("body\n got %q\nwant %q", body, tc.body)
			}
		})
	}
}

func TestReadMessageLimits(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 1001; i++ {
		fmt.Fprintf(&b, "X-F%d: v\r\n", i)
	}
	b.WriteString("\r\nbody\r\n")
	if _, _, err := ReadMessage(strings.NewReader(b.String()), 1000); !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("1001 fields with max 1000: err = %v, want ErrHeaderTooLarge", err)
	}
	h, body, err := ReadMessage(strings.NewReader(b.String()), 1001)
	if err != nil || len(h) != 1001 || string(body) != "body\r\n" {
		t.Errorf("1001 fields with max 1001: %d fields, body %q, %v", len(h), body, err)
	}
	h, _, err = ReadMessage(strings.NewReader(b.String()), 0)
	if err != nil || len(h) != 1001 {
		t.Errorf("max 0 means no limit: %d, %v", len(h), err)
	}
	// One enormous folded field: bounded by MaxHeaderBytes.
	huge := "Subject: x\r\n" + strings.Repeat(" fold fold fold fold fold fold\r\n", MaxHeaderBytes/30+10) + "\r\n"
	if _, _, err := ReadMessage(strings.NewReader(huge), 1000); !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("header above %d bytes: err = %v", MaxHeaderBytes, err)
	}
	// A huge one-line body is fine.
	big := "Subject: x\n\n" + strings.Repeat("a", 3<<20)
	_, body, err = ReadMessage(strings.NewReader(big), 1000)
	if err != nil || len(body) != 3<<20 {
		t.Errorf("big body: %d bytes, %v", len(body), err)
	}
}

type errReader struct{ after io.Reader }

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.after.Read(p)
	if err == io.EOF {
		return n, errors.New("disk on fire")
	}
	return n, err
}

func TestReadMessageReadError(t *testing.T) {
	for _, in := range []string{"Subject: x\n", "Subject: x\n\nbody", "Subject: x\nbody line\n"} {
		if _, _, err := ReadMessage(&errReader{strings.NewReader(in)}, 10); err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("%q: err = %v, want the read error", in, err)
		}
	}
}

func TestHeaderWriteToRoundTrip(t *testing.T) {
	for _, in := range []string{
		"From: a@b.test\r\nSubject: hello\r\n world\r\n\tagain\r\nX-Empty:\r\n\r\n",
		"Received: from x\r\n\tby y; Mon, 1 Jan 2024 00:00:00 +0000\r\nDKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\n\r\n",
		"Subject: caf\xc3\xa9\r\n\r\n",
	} {
		h, _, err := ReadMessage(strings.NewReader(in), 100)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		n, err := h.WriteTo(&b)
		if err != nil || n != int64(b.Len()) {
			t.Fatalf("WriteTo: %d, %v", n, err)
		}
		if b.String() != in {
			t.Errorf("round trip\n got %q\nwant %q", b.String(), in)
		}
		// LF-folded input (as files on disk) comes back with CRLF.
		lf := strings.ReplaceAll(in, "\r\n", "\n")
		h2, _, _ := ReadMessage(strings.NewReader(lf), 100)
		b.Reset()
		h2.WriteTo(&b)
		if b.String() != in {
			t.Errorf("LF input\n got %q\nwant %q", b.String(), in)
		}
	}
	// A value without the space after the colon (the MTA stripped it) gets
	// the conventional one back.
	var b bytes.Buffer
	Header{{"Subject", "tight"}, {"X", "a\r\n b"}}.WriteTo(&b)
	if b.String() != "Subject: tight\r\nX: a\r\n b\r\n\r\n" {
		t.Errorf("got %q", b.String())
	}
}

// wireRef is the header's wire form as WriteTo built it before AppendWire
// (string replaces into a growing buffer): the reference AppendWire and
// WireSize are held to.
func wireRef(h Header) string {
	var b strings.Builder
	for _, f := range h {
		b.WriteString(f.Name + ":")
		v := f.Value
		if !strings.HasPrefix(v, " ") && !strings.HasPrefix(v, "\t") && v != "" {
			b.WriteByte(' ')
		}
		if strings.Contains(v, "\n") {
			v = strings.ReplaceAll(v, "\r\n", "\n")
			v = strings.ReplaceAll(v, "\n", "\r\n")
		}
		b.WriteString(v + "\r\n")
	}
	return b.String() + "\r\n"
}

func TestHeaderWire(t *testing.T) {
	for _, h := range []Header{
		nil,
		{{"Subject", ""}},
		{{"Subject", "tight"}, {"X", "a\r\n b"}, {"Y", " a\n b\n\tc"}},
		{{"Z", "\r\r\n x\r y\n\n"}, {"W", "\n"}, {"V", "\r\n"}, {"U", "\t\r"}},
	} {
		want := wireRef(h)
		if got := string(h.AppendWire([]byte("x"))); got != "x"+want {
			t.Errorf("%q: AppendWire\n got %q\nwant %q", h, got, "x"+want)
		}
		if got := h.WireSize(); got != len(want) {
			t.Errorf("%q: WireSize %d, want %d", h, got, len(want))
		}
		var b strings.Builder
		b.WriteString("x")
		if h.WriteWire(&b); b.String() != "x"+want {
			t.Errorf("%q: WriteWire\n got %q\nwant %q", h, b.String(), "x"+want)
		}
	}
}

func TestHeaderAccessors(t *testing.T) {
	h := Header{{"Subject", " one\n two "}, {"subject", "\tsecond"}, {"X-A", " a"}}
	if got := h.Get("SUBJECT"); got != "one two" {
		t.Errorf("Get = %q", got)
	}
	if got := h.Values("Subject"); len(got) != 2 || got[1] != "second" {
		t.Errorf("Values = %q", got)
	}
	if !h.Has("x-a") || h.Has("X-B") || h.Get("X-B") != "" {
		t.Error("Has/Get of a missing field")
	}
	if got := Unfold(" a\r\n b\n\tc "); got != "a b\tc" {
		t.Errorf("Unfold = %q", got)
	}
}

func TestMessageRaw(t *testing.T) {
	m := &Message{Header: Header{{"Subject", " x"}}, Body: BytesBody("hello\r\n")}
	raw, _ := io.ReadAll(m.Raw())
	if string(raw) != "Subject: x\r\n\r\nhello\r\n" {
		t.Errorf("Raw = %q", raw)
	}
	if m.RawSize() != int64(len(raw)) {
		t.Errorf("RawSize = %d, want %d", m.RawSize(), len(raw))
	}
	// Raw is a fresh reader each time.
	raw2, _ := io.ReadAll(m.Raw())
	if !bytes.Equal(raw, raw2) {
		t.Error("second Raw differs")
	}
	var nobody Message
	if b, _ := io.ReadAll(nobody.BodyReader()); len(b) != 0 {
		t.Error("nil body reads empty")
	}
	if Domain("A@Example.ORG.") != "example.org" || Domain("nodomain") != "" || LocalPart("a@b@c.test") != "a@b" {
		t.Error("Domain/LocalPart")
	}
}

func TestMessageText(t *testing.T) {
	raw := "Content-Type: multipart/alternative; boundary=XX\r\n\r\n" +
		"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"aGVsbG8gYmFzZTY0IHdvcmxk\r\n" +
		"--XX\r\nContent-Type: text/html\r\n\r\n<html><head><style>p{}</style></head><p>caf&eacute; <b>bold</b></p><script>evil()</script></html>\r\n" +
		"--XX\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\nbinary\r\n" +
		"--XX--\r\n"
	h, body, err := ReadMessage(strings.NewReader(raw), 100)
	if err != nil {
		t.Fatal(err)
	}
	m := &Message{Header: h, Body: BytesBody(body)}
	txt := m.Text()
	for _, want := range []string{"hello base64 world", "café", "bold"} {
		if !strings.Contains(txt, want) {
			t.Errorf("Text() lacks %q: %q", want, txt)
		}
	}
	for _, not := range []string{"evil", "p{}", "binary", "<b>"} {
		if strings.Contains(txt, not) {
			t.Errorf("Text() has %q: %q", not, txt)
		}
	}
	parts := m.Parts()
	if len(parts) != 3 || parts[2].Filename != "a.bin" || parts[2].Text != "" || parts[0].ContentType != "text/plain" {
		t.Errorf("Parts = %+v", parts)
	}
	// A body of one huge line: Text is capped, never fails.
	big := &Message{Header: Header{{"Subject", " x"}}, Body: BytesBody(strings.Repeat("z", 3<<20))}
	if n := len(big.Text()); n > MaxTextBytes+1 || n < MaxTextBytes {
		t.Errorf("Text of a 3 MiB body: %d bytes, want about %d", n, MaxTextBytes)
	}
}

// message/rfc822 inside message/rfc822 inside ...: the walk stops at
// MaxMIMEDepth instead of recursing (and copying) once per level, which
// made a 100 KB message cost seconds of CPU.
func TestMessageTextNestedAttachments(t *testing.T) {
	s := strings.Repeat("Content-Type: message/rfc822\r\n\r\n", 3000) + "Subject: x\r\n\r\ndeep text"
	m := &Message{Header: Header{{"Content-Type", " message/rfc822"}}, Body: BytesBody(s)}
	parts := m.Parts()
	if len(parts) != 1 || parts[0].Depth > MaxMIMEDepth {
		t.Fatalf("parts %+v", parts)
	}
	// Within the limit the text is found.
	s = strings.Repeat("Content-Type: message/rfc822\r\n\r\n", 3) + "Subject: x\r\n\r\ndeep text"
	m = &Message{Header: Header{{"Content-Type", " message/rfc822"}}, Body: BytesBody(s)}
	if !strings.Contains(m.Text(), "deep text") || m.Parts()[0].Depth != 4 {
		t.Errorf("3 levels deep: %q %+v", m.Text(), m.Parts())
	}
}

func TestDecodeHeader(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"=?utf-8?q?caf=C3=A9?=", "café"},
		{"=?iso-8859-1?b?Y2Fm6Q==?= ok", "café ok"},
		{"plain", "plain"},
		{"=?x-unknown-charset?q?abc?=", "=?x-unknown-charset?q?abc?="}, // unchanged on error
		{"=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="},
	} {
		if got := DecodeHeader(tc.in); got != tc.want {
			t.Errorf("DecodeHeader(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if (&Message{MailFrom: "A@Sender.TEST"}).SenderDomain() != "sender.test" || (&Message{}).SenderDomain() != "" {
		t.Error("SenderDomain")
	}
}

func FuzzHeaderWire(f *testing.F) {
	f.Add("Subject", " a\r\n b\n\tc")
	f.Add("X", "\r\r\n\n")
	f.Fuzz(func(t *testing.T, name, value string) {
		h := Header{{name, value}, {"Y", value}}
		want := wireRef(h)
		if got := string(h.AppendWire(nil)); got != want || h.WireSize() != len(want) {
			t.Fatalf("%q: AppendWire %q (WireSize %d), want %q", h, got, h.WireSize(), want)
		}
		var b strings.Builder
		if h.WriteWire(&b); b.String() != want {
			t.Fatalf("%q: WriteWire %q, want %q", h, b.String(), want)
		}
	})
}
