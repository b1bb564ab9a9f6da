package sa

import (
	"reflect"
	"strings"
	"testing"
)

// TestRenderHTMLWhitespace: the body paragraphs of HTML as HTML.pm's
// display_text and html_whitespace render it: only br and div break a
// line and p (and the like) a paragraph; table rows, cells and the line
// breaks of the source are spaces; a no-break space is a space; an
// image's alt text is not rendered.
func TestRenderHTMLWhitespace(t *testing.T) {
	for _, c := range []struct {
		html string
		want []string
	}{
		{"<table>\n<tr><td><b>Name</b> &nbsp;&nbsp;</td><td><input></td></tr>\n<tr><td><b>City</b> &nbsp;</td></tr>\n</table>",
			[]string{"Name City"}},
		{"one\n\ntwo<br>three<br><br>four", []string{"one two three", "four"}},
		{"<p>one</p>two<div>three</div><li>four<h1>five</h1>", []string{"one", "two three four five"}},
		{"<title>Hi</title>text", []string{"Hi", "text"}},
		// HTML.pm renders no alt text.
		{`<img src="a.png" alt="Buy now">text`, []string{"text"}},
	} {
		var info htmlInfo
		got := paragraphsOf(renderHTML(c.html, &info))
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.html, got, c.want)
		}
	}
}

// TestUnicodeSpacesInBody: white space beyond ASCII separates words and
// makes a line blank, as Perl's \s in Message.pm's white space handling;
// bytes that are not UTF-8 stay.
func TestUnicodeSpacesInBody(t *testing.T) {
	e := compile(t, "body MONEY /\\$129\\.00 10\\b/\nbody BLANK /^\\x{3000}/\n", Options{})
	h := hits(e.Check(FromRaw([]byte("Subject: a\nContent-Type: text/plain; charset=utf-8\n\nFOR $129.00\u00a0 10 TABLETS\n\n\u3000\n")), Input{}))
	if _, ok := h["MONEY"]; !ok {
		t.Error("a no-break space is not white space")
	}
	if _, ok := h["BLANK"]; ok {
		t.Error("a line of U+3000 is not blank")
	}
	if got := unicodeSpaces("a\xff\u2003b\u00e9"); got != "a\xff b\u00e9" {
		t.Errorf("unicodeSpaces: %q", got)
	}
}

// paragraphsOf is the body lines of one rendered text without the blanks
// and line breaks at their ends.
func paragraphsOf(text string) []string {
	var out []string
	for _, l := range bodyLines("", []string{text}, nil) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
