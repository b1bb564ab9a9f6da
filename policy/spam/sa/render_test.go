package sa

import (
	"reflect"
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
		got := paragraphs(renderHTML(c.html, &info), nil)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.html, got, c.want)
		}
	}
}
