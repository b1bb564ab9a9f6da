package sa

import "testing"

// TestNameToRGB: the expected values are what HTML.pm's name_to_rgb
// (SpamAssassin 4.0.1) returns for the same input.
func TestNameToRGB(t *testing.T) {
	for in, want := range map[string]string{
		"Red":               "#ff0000",
		" white ":           "#ffffff",
		"#FFF":              "#ffffff",
		"#12345":            "#112233", // 4-5 digits: the first three
		"#1234567":          "#123456",
		"#12":               "#112200", // padded to 3, then doubled
		"ff0000":            "invalid", // no #
		"":                  "invalid",
		"bogus":             "invalid",
		"rgb(255, 0, 0)":    "#ff0000",
		"rgb(100%,50%,0%)":  "#ff7f00",
		"rgb(300,0,0)":      "#12c000", // as HTML.pm: 300 is 12c, cut to 6 digits
		"#zz0000":           "invalid",
		"rgb(1, 2, 3) junk": "#010203", // as HTML.pm's unanchored match
	} {
		if got := nameToRGB(in); got != want {
			t.Errorf("nameToRGB(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFontContrast(t *testing.T) {
	e := compile(t, "body LOW eval:html_test('font_low_contrast')\nbody BAD eval:html_test('font_invalid_color')\n", Options{})
	for _, c := range []struct {
		name, html string
		want, not  []string
	}{
		{"white on white", `<font color="#ffffff">hidden words</font>`, []string{"LOW"}, []string{"BAD"}},
		{"near white", `<font color="#fefefe">hidden words</font>`, []string{"LOW"}, nil},
		{"body text colour on a styled background", `<body text="#000001"><p>x</p><div style="background-color: #000000">hidden</div></body>`, []string{"LOW"}, nil},
		{"style colour transparent takes the background", `<span style="color: transparent">hidden</span>`, []string{"LOW"}, nil},
		{"readable", `<font color="#000080">plain words</font><span style="color: red; background: #ffffff url(x.png)">more</span>`, nil, []string{"LOW", "BAD"}},
		{"closed font restores the colour", `<font color="white"></font>visible text`, nil, []string{"LOW"}},
		{"a new cell closes the font", `<table><tr><td><font color="white"><td>visible text</table>`, nil, []string{"LOW"}},
		{"white space only is no text", `<font color="white">   </font>`, nil, []string{"LOW"}},
		{"hex without #", `<font color="ff0000">red?</font>`, []string{"BAD"}, []string{"LOW"}},
		{"bgcolor attribute is ignored, as in SpamAssassin", `<table bgcolor="#000000"><tr><td><font color="#ffffff">on black</font></td></tr></table>`, []string{"LOW"}, nil},
	} {
		wantHits(t, c.name, e.Check(FromRaw([]byte(htmlOnly(c.html))), Input{}), c.want, c.not)
	}
}
