package sa

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// parseFieldsRef and unfoldRef are parseFields and unfold as they were
// before they stopped copying each line: the reference they are held to.
func parseFieldsRef(hdr []byte) []Field {
	var fs []Field
	for _, line := range strings.SplitAfter(string(hdr), "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fs) > 0 {
			fs[len(fs)-1].Value += line
			continue
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(name, " \t") {
			continue
		}
		fs = append(fs, Field{Name: name, Value: val})
	}
	for i := range fs {
		fs[i].Value = strings.TrimRight(strings.TrimLeft(fs[i].Value, " \t"), "\r\n")
	}
	return fs
}

func unfoldRef(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	v = strings.ReplaceAll(v, "\r\n", "\n")
	v = foldRef.ReplaceAllString(v, " ")
	return strings.ReplaceAll(v, "\n", "")
}

// foldRef is Node.pm's fold: a line break and the blanks after it.
var foldRef = regexp.MustCompile(`\n[ \t]+`)

var headerSeeds = []string{
	"",
	"Subject: a\r\n b\r\n\tc\r\nFrom: x\r\n",
	" lead: x\nA: 1\nbad line\n cont\n more\nB:2",
	"A: x\n\r\n y\nB c: d\n e\nC:\n",
	"X: \r\r\n\n \r\nY: a\rb",
}

func TestParseFieldsUnfold(t *testing.T) {
	check := func(name, h string) {
		if got, want := parseFields(h), parseFieldsRef([]byte(h)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: parseFields(%q)\n got %q\nwant %q", name, h, got, want)
		}
		for _, f := range parseFieldsRef([]byte(h)) {
			if got, want := unfold(f.Value), unfoldRef(f.Value); got != want {
				t.Errorf("%s: unfold(%q) = %q, want %q", name, f.Value, got, want)
			}
		}
	}
	for _, h := range headerSeeds {
		check("seed", h)
		check("seed raw", h+"\n")
	}
	eachCorpusMessage(t, func(f string, raw []byte) {
		h, _ := splitHeader(raw)
		check(f, string(h))
	})
}

func FuzzParseFieldsUnfold(f *testing.F) {
	for _, h := range headerSeeds {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if got, want := parseFields(h), parseFieldsRef([]byte(h)); !reflect.DeepEqual(got, want) {
			t.Fatalf("parseFields(%q)\n got %q\nwant %q", h, got, want)
		}
		if got, want := unfold(h), unfoldRef(h); got != want {
			t.Fatalf("unfold(%q) = %q, want %q", h, got, want)
		}
	})
}

// latin1 makes each byte one rune, whatever the bytes.
func FuzzLatin1(f *testing.F) {
	f.Add("plain")
	f.Add("caf\xc3\xa9 \xff\x80\x7f")
	f.Fuzz(func(t *testing.T, s string) {
		want := make([]rune, len(s))
		for i := 0; i < len(s); i++ {
			want[i] = rune(s[i])
		}
		if got := latin1(s); got != string(want) {
			t.Fatalf("latin1(%q) = %q, want %q", s, got, string(want))
		}
	})
}

// bodyLinesRef is bodyLines written as Message.pm writes it, the
// reference it is held to: the regexps of get_body_text_array_common and
// split_into_array_of_short_lines.
func bodyLinesRef(subject string, parts []string, out []string) []string {
	text := strings.Join(parts, "\n")
	for len(parts) > 0 && parts[0] == "" {
		// $text .= "\n" if $text ne '': no break before the first
		// part with text.
		parts = parts[1:]
		text = strings.Join(parts, "\n")
	}
	text = regexp.MustCompile(`\n+[ \t\n\r\f\v]*\n+`).ReplaceAllString(text, "\x00")
	text = regexp.MustCompile(`[ \t\n\r\f\v]+`).ReplaceAllString(text, " ")
	text = strings.ReplaceAll(text, "\x00", "\n")
	all := subject + text
	for _, line := range strings.SplitAfter(all, "\n") {
		if line == "" {
			continue
		}
		out = appendBodyLine(out, line)
	}
	return out
}

func FuzzBodyLines(f *testing.F) {
	f.Add("Hi  there", "one\ntwo  three\n\n\t\nfour\r\n five \v\n", "")
	f.Add("", strings.Repeat("word ", 1000)+"\n\n"+strings.Repeat("x", 5000), "tail")
	f.Add("", "", "a\x00b")
	f.Fuzz(func(t *testing.T, subject, a, b string) {
		parts := []string{a, "", b}
		got, want := bodyLines(subject, parts, []string{"before"}), bodyLinesRef(subject, parts, []string{"before"})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("bodyLines(%q, %q)\n got %q\nwant %q", subject, parts, got, want)
		}
	})
}

// TestBodyLinesAsSpamAssassin: the space SpamAssassin keeps at a
// paragraph's ends (a tracking id after "&nbsp;\n" is " id ", which
// TRACKER_ID's ^ does not match), the subject line as it is, and a part
// without a final line break running on into the next part.
func TestBodyLinesAsSpamAssassin(t *testing.T) {
	got := bodyLines("Re:  Hi\n", []string{"Order Now!!! \n \n 0783Iixc7-224SSVD1282BjAl2-765knZz61l34\n\n\n", "", "end"}, nil)
	want := []string{"Re:  Hi\n", "Order Now!!! \n", " 0783Iixc7-224SSVD1282BjAl2-765knZz61l34\n", "end"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := bodyLines("\n", []string{"first part", "second"}, nil); !reflect.DeepEqual(got, []string{"\n", "first part second"}) {
		t.Errorf("parts without line breaks: %q", got)
	}
	e := compile(t, "body TRACKER_ID /^[a-z0-9]{6,24}[-_a-z0-9]{12,36}[a-z0-9]{6,24}\\s*\\z/is\n", Options{})
	raw := "Subject: x\nContent-Type: text/html\n\n<html><body>Order Now!!!<br>&nbsp;\n</body></html>\n0783Iixc7-224SSVD1282BjAl2-765knZz61l34\n\n\n"
	if h := hits(e.Check(FromRaw([]byte(raw)), Input{})); len(h) != 0 {
		t.Errorf("TRACKER_ID hits a paragraph that starts with a space: %v", h)
	}
}

// FromText and FromRaw build the same message, Raw aside, and the string
// helpers agree with the byte ones.
func checkFromText(t *testing.T, raw string) {
	t.Helper()
	a, b := FromRaw([]byte(raw)), FromText(raw)
	a.Raw = nil
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("FromRaw and FromText differ on %.200q", raw)
	}
	h, body := splitHeader([]byte(raw))
	h2, body2, found := splitText(raw)
	if string(h) != h2 || string(body) != body2 || (body != nil) != found {
		t.Fatalf("splitText(%.200q) = %q, %q, %v; splitHeader: %q, %q", raw, h2, body2, found, h, body)
	}
	if maxLine([]byte(raw)) != maxLine(raw) {
		t.Fatalf("maxLine(%.200q) = %d on the string, %d on the bytes", raw, maxLine(raw), maxLine([]byte(raw)))
	}
}

func TestFromText(t *testing.T) {
	for _, h := range headerSeeds {
		checkFromText(t, h)
		checkFromText(t, h+"\n\nbody\r\n")
	}
	eachCorpusMessage(t, func(_ string, raw []byte) { checkFromText(t, string(raw)) })
}

func FuzzFromText(f *testing.F) {
	for _, h := range headerSeeds {
		f.Add(h + "\n\nbody\r\n")
	}
	f.Add("From x\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b--\n")
	f.Fuzz(checkFromText)
}

func TestMaxLine(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int
	}{
		{"", 0}, {"abc", 3}, {"a\nbcd\r\nef", 3}, {"\r\n\r\n", 0}, {"ab\r", 2}, {"x\n\nlonger line\n", 11}, {"\rab", 3},
	} {
		if got := maxLine(tc.s); got != tc.want {
			t.Errorf("maxLine(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

// TestFoldIsOneSpace: a folded field reads with the line break and the
// blanks after it as one space (Node.pm's s/\n[ \t]+/ /g), so that
// __DOMINO_RCVD's "by \S+ \(Lotus Domino " matches across the fold.
func TestFoldIsOneSpace(t *testing.T) {
	e := compile(t, "header DOMINO Received =~ /by \\S+ \\(Lotus Domino /\n", Options{})
	raw := "Received: from a ([192.0.2.1]) by www.example.nl\n    (Lotus Domino Release 5.0.5) with SMTP id 1 ;\n    Thu, 10 May 2001 15:21:35 +0200\nSubject: x\n\nbody\n"
	if _, ok := hits(e.Check(FromRaw([]byte(raw)), Input{}))["DOMINO"]; !ok {
		t.Error("a fold of four spaces is not one space")
	}
}

// TestHeaderValueTrimmed: a field value reads without the white space at
// its ends, as Node.pm stores it, so /now$/ matches "Save now   ".
func TestHeaderValueTrimmed(t *testing.T) {
	e := compile(t, "header SUBJ_NOW Subject =~ /now$/\n", Options{})
	raw := "Subject: Save now   \t\nFrom: a@example.com\n\nbody\n"
	if _, ok := hits(e.Check(FromRaw([]byte(raw)), Input{}))["SUBJ_NOW"]; !ok {
		t.Error("trailing blanks of a Subject are kept")
	}
}

// TestDecodedTextLF: a base64 text part's CRLF line breaks read as LF
// (Node.pm's decode), so a paragraph ends without the space a CR would
// leave ("INFORMATION:\r\n\r\n" is "INFORMATION:\n").
func TestDecodedTextLF(t *testing.T) {
	raw := "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" +
		"SU1QT1JUQU5UIElORk9STUFUSU9OOg0KDQpUaGUgbmV3IGRvbWFpbg0K\n"
	lines := (&msgCtx{m: FromRaw([]byte(raw))}).bodyLines()
	if want := []string{"\n", "IMPORTANT INFORMATION:\n", "The new domain "}; !reflect.DeepEqual(lines, want) {
		t.Errorf("got %q, want %q", lines, want)
	}
}

// TestLenientContentType: a Content-Type with empty parameters is still
// its media type (Util.pm's parse_content_type), here text/html.
func TestLenientContentType(t *testing.T) {
	m := FromRaw([]byte("Content-Type: text/html ; ; ;\n\n<p>News</p>\n"))
	if len(m.Parts) != 1 || m.Parts[0].Type != "text/html" {
		t.Fatalf("parts %+v, want one text/html", m.Parts)
	}
}

// TestMIMEEpilogue: text after a multipart's closing delimiter is
// Message.pm's mime_epilogue_exists (T_TVD_MIME_EPI); blank lines and
// dots are not.
func TestMIMEEpilogue(t *testing.T) {
	e := compile(t, "body EPI eval:check_msg_parse_flags('mime_epilogue_exists')\n", Options{})
	msg := func(after string) []byte {
		return []byte("Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\nhi\n--b1--\n" + after)
	}
	if _, ok := hits(e.Check(FromRaw(msg("\nbuy now\n")), Input{}))["EPI"]; !ok {
		t.Error("text after the closing delimiter is no epilogue")
	}
	if _, ok := hits(e.Check(FromRaw(msg("\n.\n \n")), Input{}))["EPI"]; ok {
		t.Error("a dot and blanks are an epilogue")
	}
}
