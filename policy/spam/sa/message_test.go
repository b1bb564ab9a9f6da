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
	return strings.ReplaceAll(v, "\n", "")
}

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

// paragraphsRef is paragraphs written the plain way, the reference it is
// held to: a paragraph's lines joined, each run of white space (line
// breaks included, as SpamAssassin's s/\s+/ /g) one space.
func paragraphsRef(text string, out []string) []string {
	blanks := regexp.MustCompile("[ \t\r\f\v\n]+")
	var para []string
	flush := func() {
		if p := strings.TrimSpace(blanks.ReplaceAllString(strings.Join(para, "\n"), " ")); p != "" {
			out = chunks(p, out)
		}
		para = para[:0]
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		para = append(para, line)
	}
	flush()
	return out
}

func FuzzParagraphs(f *testing.F) {
	f.Add("one\ntwo  three\n\n\t\nfour\r\n five \v\n")
	f.Add(strings.Repeat("word ", 1000) + "\n\n" + strings.Repeat("x", 5000))
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		got, want := paragraphs(text, []string{"before"}), paragraphsRef(text, []string{"before"})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("paragraphs(%q)\n got %q\nwant %q", text, got, want)
		}
	})
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
