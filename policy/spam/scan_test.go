package spam

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// The expressions the HTML scanners replaced; the scanners must answer as
// they do on every input.
var (
	imgRE      = regexp.MustCompile(`(?i)<img\b`)
	hiddenCSS  = regexp.MustCompile(`display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*[01](?:px|pt)?\s*[;"']`)
	hiddenFont = regexp.MustCompile(`<font[^>]*\bsize\s*=\s*["']?(?:0|-[1-9])`)
	tagRE      = regexp.MustCompile(`<([A-Za-z][A-Za-z0-9]{0,10})\b`)
)

var scanCases = []string{
	"",
	"<",
	"<i",
	"<im",
	"<img",
	"<img>",
	"<IMG src=x>",
	"<iMg\tsrc=x>",
	"<imgx>",
	"<img_>",
	"<img1>",
	"<img-x>",
	"<img\u00e9>",
	"x<ximg><img",
	"< img>",
	"<p>text</p>",
	"<a href=x><b>bold</b></a>",
	"<abcdefghijk>",
	"<abcdefghijkl>",
	"<abcdefghij1>",
	"<abcdefghijk_>",
	"<abcdefghijk\u00e9>",
	"<a_b><c>",
	"<1a><b2>",
	"<<a>>",
	"<a<b<c",
	"<\xffa><b\xff>",
	"<div style=\"display:none\">x</div>",
	"<div style=\"display : \n none\">x</div>",
	"<div style=\"display:block\">x</div>",
	"<div style=\"display:\vnone\">x</div>",
	"display display:none",
	"displaydisplay: none",
	"<span style='visibility:hidden'>",
	"<span style='visibility: visible'>",
	"visibility:hidde",
	"font-size:0;",
	"font-size: 1px;",
	"font-size:1pt\"",
	"font-size:0 '",
	"font-size:0px",
	"font-size:0em;",
	"font-size:10px;",
	"font-size:0 \t\n;",
	"font-size:0\v;",
	"font-size:1ptx;",
	"font-size:0pt;font-size:1px'",
	"font-size font-size:0;",
	"<font size=0>",
	"<font size=\"0\">",
	"<font size='-1'>",
	"<font size=-0>",
	"<font size=- 1>",
	"<font size = \n -2>",
	"<font color=red size=0>",
	"<font color=red>size=0",
	"<fontsize=0>",
	"<font xsize=0>",
	"<font _size=0>",
	"<font -size=0>",
	"<font size=1>",
	"<font size=\"\"0>",
	"<font <font size=0>",
	"<font a> <font b size=-3>",
	"<font a> size=0 <font b>",
	"<font \u00e9size=0>",
	"<font",
	"<font size",
	"<font size=",
	"<FONT SIZE=0>",
}

func TestHasImgTagLikeRegexp(t *testing.T) {
	for _, s := range scanCases {
		if got, want := hasImgTag(s), imgRE.MatchString(s); got != want {
			t.Errorf("hasImgTag(%q) = %v, the expression says %v", s, got, want)
		}
	}
}

// TestImgFoldASCII: (?i) folds each letter with its Unicode orbit; for i,
// m and g that is the ASCII pair only, so hasImgTag may compare bytes.
func TestImgFoldASCII(t *testing.T) {
	for _, c := range "img" {
		orbit := []rune{c}
		for f := unicode.SimpleFold(c); f != c; f = unicode.SimpleFold(f) {
			orbit = append(orbit, f)
		}
		if len(orbit) != 2 || orbit[1] != unicode.ToUpper(c) {
			t.Errorf("fold orbit of %q is %q", c, orbit)
		}
	}
}

func TestHiddenLikeRegexps(t *testing.T) {
	for _, s := range scanCases {
		l := strings.ToLower(s)
		if got, want := cssHides(l), hiddenCSS.MatchString(l); got != want {
			t.Errorf("cssHides(%q) = %v, the expression says %v", l, got, want)
		}
		if got, want := fontHides(l), hiddenFont.MatchString(l); got != want {
			t.Errorf("fontHides(%q) = %v, the expression says %v", l, got, want)
		}
	}
}

// TestHidden pins answers, so that a change to scanner and expression
// alike cannot pass unnoticed.
func TestHidden(t *testing.T) {
	for s, want := range map[string]bool{
		"<div style=\"DISPLAY: none\">x</div>": true,
		"<font color=red SIZE=\"-1\">x</font>": true,
		"<font color=red>size=0</font>":        false,
		"<p style=\"font-size:12px\">x</p>":    false,
		"<img src=x>":                          false,
	} {
		if got := hidden(strings.ToLower(s)); got != want {
			t.Errorf("hidden(%q) = %v, want %v", s, got, want)
		}
	}
}

func tagNamesRE(h string, n int) []string {
	var out []string
	for _, m := range tagRE.FindAllStringSubmatch(h, n) {
		out = append(out, m[1])
	}
	return out
}

func tagNamesOf(h string, n int) []string {
	var out []string
	tagNames(h, n, func(name string) { out = append(out, name) })
	return out
}

func TestTagNamesLikeRegexp(t *testing.T) {
	for _, s := range scanCases {
		for _, n := range []int{200, 1} {
			if got, want := tagNamesOf(s, n), tagNamesRE(s, n); !slices.Equal(got, want) {
				t.Errorf("tagNames(%q, %d) = %q, the expression finds %q", s, n, got, want)
			}
		}
	}
	if got := tagNamesOf("<p><B>x</B><br/><x_y><h1 class=a>", 200); !slices.Equal(got, []string{"p", "B", "br", "h1"}) {
		t.Errorf("tagNames = %q", got)
	}
}

// TestScannersOnCorpus compares scanners and expressions on the HTML
// parts of the shared corpus, when it is there.
func TestScannersOnCorpus(t *testing.T) {
	ham, spam := corpus(t, 100000)
	n := 0
	for _, m := range append(ham, spam...) {
		for _, p := range m.Parts() {
			if p.ContentType != "text/html" {
				continue
			}
			n++
			checkScanners(t, p.Text)
		}
	}
	t.Logf("%d HTML parts", n)
}

func checkScanners(t *testing.T, s string) {
	t.Helper()
	l := strings.ToLower(s)
	if got, want := hasImgTag(s), imgRE.MatchString(s); got != want {
		t.Fatalf("hasImgTag(%q) = %v, the expression says %v", s, got, want)
	}
	if got, want := cssHides(l), hiddenCSS.MatchString(l); got != want {
		t.Fatalf("cssHides(%q) = %v, the expression says %v", l, got, want)
	}
	if got, want := fontHides(l), hiddenFont.MatchString(l); got != want {
		t.Fatalf("fontHides(%q) = %v, the expression says %v", l, got, want)
	}
	if got, want := tagNamesOf(s, 200), tagNamesRE(s, 200); !slices.Equal(got, want) {
		t.Fatalf("tagNames(%q) = %q, the expression finds %q", s, got, want)
	}
}

func FuzzHTMLScanners(f *testing.F) {
	for _, s := range scanCases {
		f.Add(s)
	}
	f.Fuzz(checkScanners)
}

func TestFieldsLen(t *testing.T) {
	for _, s := range append(scanCases, "  a  b\t\nc ", "\u00a0x\u0085y\u2003", "\xff \xfe\xfd  z", "one", " ", "\u3000") {
		if got, want := fieldsLen(s), len(strings.Join(strings.Fields(s), " ")); got != want {
			t.Errorf("fieldsLen(%q) = %d, want %d", s, got, want)
		}
	}
}

func FuzzFieldsLen(f *testing.F) {
	f.Add("  a  b\t\nc \u00a0x\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := fieldsLen(s), len(strings.Join(strings.Fields(s), " ")); got != want {
			t.Fatalf("fieldsLen(%q) = %d, want %d", s, got, want)
		}
	})
}

// TestHeaderSetLikePathMatch: the shortcuts for names and "name*" answer
// as path.Match does.
func TestHeaderSetLikePathMatch(t *testing.T) {
	patterns := []string{"X-Spam*", "x-spam-status", "X-Mailwarden", "*", "x-*-flag", "x-[ab]", `x-\*`, "x-?", "[", "x-spam*", "list-*"}
	names := []string{"", "x-spam", "x-spam-status", "x-spam/x", "x-spamx", "x-mailwarden", "x-mailwardenx", "x-a", "x-b", "x-*", "x-ab", "x-my-flag", "list-id", "list/", "[", "subject", "x-spam-status/"}
	for _, p := range patterns {
		s := NewHeaderSet(p)
		for _, n := range names {
			want, _ := path.Match(strings.ToLower(p), n)
			if got := s.Match(n); got != want {
				t.Errorf("pattern %q, name %q: Match = %v, path.Match = %v", p, n, got, want)
			}
		}
	}
}
