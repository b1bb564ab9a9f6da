package message

import (
	"bytes"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// htmlTextRE is HTMLText as it was written with regular expressions; the
// hand-written scanners must give the same text on every input.
func htmlTextRE(s string) string {
	s = htmlDropRE.ReplaceAllString(s, " ")
	s = htmlTagRE.ReplaceAllString(s, " ")
	s = html.UnescapeString(s)
	return htmlWSRE.ReplaceAllString(s, " ")
}

var (
	htmlDropRE = regexp.MustCompile(`(?is)<(script|style|head)\b.*?</(script|style|head)\s*>`)
	htmlTagRE  = regexp.MustCompile(`(?s)<[^>]*>`)
	htmlWSRE   = regexp.MustCompile(`[ \t\r\f\v]+`)
)

var htmlTextCases = []string{
	"",
	"plain text",
	"  two  spaces\tand\ttabs \r\n\v\f end ",
	" ",
	"a\n\nb",
	"<p>Hello</p>",
	"<p>Hello<br>world</p>",
	"<",
	">",
	"<>",
	"a < b",
	"a < b > c",
	"a > b < c",
	"<a href=\"x\">link</a> <b>bold",
	"<p>unclosed <tag",
	"<<p>>",
	"<html><head><title>T</title></head><body>Body</body></html>",
	"<HEAD>x</HEAD>y",
	"<Script type=x>var a = '<p>';</SCRIPT >after",
	"<script>a</script\t\n>b",
	"<script>a</script\v>b</script>c",
	"<script>a</style>b</script>c",
	"<script>never closed",
	"<script>a</script><style>b</style>c<head>d</head>e",
	"<scripts>a</script>b",
	"<script_x>a</script>b",
	"<script1>a</script>b",
	"<script-x>a</script>b",
	"<script\u00e9>a</script>b",
	"<scriptą>a</script>b",
	"<script",
	"<script>",
	"<script></script>",
	"<script</script>",
	"<style></scriptx></style>y",
	"<style></ script></style>y",
	"<\u017fcript>x</\u017ftyle>y",
	"<\u017fcrip>x</script>y",
	"<\u212aead>x</head>y",
	"<SCRİPT>x</script>y",
	"x<hEaD>y</HeAd  >z",
	"<head>a<head>b</head>c</head>d",
	"a &amp; b &lt;p&gt; c",
	"&lt;script&gt;x&lt;/script&gt;",
	"&#9;&#9;tab &#32; &nbsp; x",
	"<p>&amp;</p>  <p>x</p>",
	"&",
	"&amp",
	"a&b<i>c</i>  d",
	"\xff<p>\xfe</p>\xfd  \xc5",
	"<p\xff>x</p>",
	"<script\xff>x</script>y",
	"<\xc5\xbfcript>x</script>y",
	"<\xc5cript>x</script>y",
	"\t\t<p>\t</p>\t",
	"<p> </p> <p> </p>",
	"<!-- comment <p> -->text",
	"<![CDATA[ x ]]>y",
}

func TestHTMLTextLikeRegexps(t *testing.T) {
	for _, s := range htmlTextCases {
		if got, want := HTMLText(s), htmlTextRE(s); got != want {
			t.Errorf("HTMLText(%q) = %q, the expressions give %q", s, got, want)
		}
	}
}

// TestHTMLText pins a few answers, so that a change to both versions
// cannot pass unnoticed.
func TestHTMLText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"<p>Hello<br>world</p>", " Hello world "},
		{"<head><title>T</title></head>a\t \tb", " a b"},
		{"<script>x</style>y", " y"},
		{"a &amp;&#9;\tb", "a & b"},
		{"a < b", "a < b"},
	} {
		if got := HTMLText(c.in); got != c.want {
			t.Errorf("HTMLText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestHTMLTextCorpus compares the two on the HTML parts of the shared
// corpus, when it is there.
func TestHTMLTextCorpus(t *testing.T) {
	n := 0
	for _, s := range corpusHTML(t) {
		if got, want := HTMLText(s), htmlTextRE(s); got != want {
			t.Errorf("corpus part %d: HTMLText differs from the expressions", n)
		}
		n++
	}
	t.Logf("%d HTML parts", n)
}

func FuzzHTMLText(f *testing.F) {
	for _, s := range htmlTextCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := HTMLText(s), htmlTextRE(s); got != want {
			t.Fatalf("HTMLText(%q) = %q, the expressions give %q", s, got, want)
		}
	})
}

func TestFoldPrefix(t *testing.T) {
	for _, c := range []struct {
		s, word string
		want    int
	}{
		{"script", "script", 6},
		{"SCRIPT>", "script", 6},
		{"\u017fcript", "script", 7},
		{"\u017fCRIPT", "script", 7},
		{"scrip", "script", 0},
		{"sc\u0131ipt", "script", 0},
		{"\u212aey", "key", 5},
		{"", "head", 0},
		{"@ead", "head", 0},
	} {
		if got := foldPrefix(c.s, c.word); got != c.want {
			t.Errorf("foldPrefix(%q, %q) = %d, want %d", c.s, c.word, got, c.want)
		}
	}
}

// corpusHTML returns the HTML parts of the shared corpus messages, or
// skips when the corpus is not beside the repository.
func corpusHTML(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, m := range corpusMessages(t) {
		for _, p := range m.Parts() {
			if p.ContentType == "text/html" && strings.TrimSpace(p.Text) != "" {
				out = append(out, p.Text)
			}
		}
	}
	return out
}

// corpusMessages reads the shared SpamAssassin corpus, or skips.
func corpusMessages(t *testing.T) []*Message {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "corpus", "spamassassin", "*", "*.eml"))
	if len(files) == 0 {
		t.Skip("corpus not found beside the repository")
	}
	var out []*Message
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h, body, err := ReadMessage(bytes.NewReader(data), 0)
		if err != nil {
			continue
		}
		out = append(out, &Message{Header: h, Body: BytesBody(body)})
	}
	return out
}
