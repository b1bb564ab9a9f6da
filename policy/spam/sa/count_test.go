package sa

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

var countTexts = []string{
	"", "e", "ee", "eee e", "E", "Eé\u00e8\u00e9", "\xc3\xa8\xc3", "\xc3\xc3\xa8e", "é\xffe\xc3",
	"abcabcab", "aaaa", "ab\nab", "\u212a k K", "ſs S", "x\u00c3\u00a8x\u00c3\u00a9", strings.Repeat("ae", 700),
}

// TestSeqCountAgrees checks the counter against Go's FindAll on chosen
// regexes and adversarial texts.
func TestSeqCountAgrees(t *testing.T) {
	pats := []string{`e`, `ab`, `(?i)k`, `(?i)s`, `[ae]`, `e|\x{e8}|\x{e9}`, `\x{c3}[\x{a8}-\x{ab}]|e`,
		`a.|b`, `(?s)a.`, `(?:ab|a)`, `(?:a|ab)`, `(aa)`, `[^a]`, `\x{fffd}`, `ée|e`}
	for _, p := range pats {
		c := newSeqCount(p)
		if c == nil {
			t.Logf("%q: no counter", p)
			continue
		}
		re := regexp.MustCompile(p)
		for _, s := range countTexts {
			for _, lim := range []int{1, 2, 1000} {
				if got, want := c.count(s, lim), len(re.FindAllStringIndex(s, lim)); got != want {
					t.Errorf("%q on %q limit %d: %d, regexp %d", p, s, lim, got, want)
				}
			}
		}
	}
	for _, p := range []string{`a*`, `a+`, `^e`, `e\b`, `(?:ab|)`} {
		if newSeqCount(p) != nil {
			t.Errorf("%q: a counter for a regex it cannot count", p)
		}
	}
}

// TestSeqCountDebian checks the counter of every multiple-hit rule of the
// Debian set against Go's FindAll on corpus lines.
func TestSeqCountDebian(t *testing.T) {
	rs := debianRules(t)
	e, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	texts = append(texts, countTexts...)
	for _, k := range []string{"ham", "spam"} {
		for _, f := range sample(corpusFiles(t, k), 20) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			texts = append(texts, strings.Split(string(raw), "\n")...)
			texts = append(texts, latin1(string(raw)))
		}
	}
	n := 0
	for _, r := range e.rules {
		if r == nil || !r.multi || r.bt != nil {
			continue
		}
		for vi := range r.v {
			l := r.v[vi].re
			if l == nil {
				continue
			}
			for _, s := range texts {
				if l.atMostOne(s) && len(l.get().FindAllStringIndex(s, -1)) > 1 {
					t.Errorf("%s: anchored, yet more than one match in %.80q", r.name, s)
				}
			}
		}
	}
	for _, r := range e.rules {
		if r == nil || !r.multi || r.bt != nil {
			continue
		}
		for vi := range r.v {
			c := r.v[vi].re.counter()
			if c == nil {
				continue
			}
			n++
			re := r.v[vi].re.get()
			for _, s := range texts {
				if got, want := c.count(s, r.limit()), len(re.FindAllStringIndex(s, r.limit())); got != want {
					t.Errorf("%s: %d, regexp %d on %.80q", r.name, got, want, s)
				}
			}
		}
	}
	if n == 0 {
		t.Error("no multiple-hit rule has a counter")
	}
	t.Logf("%d counters checked on %d texts", n, len(texts))
}

func TestStartAnchor(t *testing.T) {
	for _, tc := range []struct {
		src        string
		text, line bool
	}{
		{`^a`, true, true}, {`(?m)^a`, false, true}, {`\Aa|^b`, true, true}, {`(?m)^a|b`, false, false},
		{`a^`, false, false}, {`(^a)+`, false, false}, {`(?:^a|(?m:^b))c`, false, true}, {`^`, true, true},
	} {
		text, line := startAnchor(tc.src)
		if text != tc.text || line != tc.line {
			t.Errorf("%q: %v %v, want %v %v", tc.src, text, line, tc.text, tc.line)
		}
		re := regexp.MustCompile(tc.src)
		l := newLazyRE(tc.src)
		for _, s := range []string{"", "a", "aa", "a\na", "ab\nbc", "bc"} {
			if l.atMostOne(s) && len(re.FindAllStringIndex(s, -1)) > 1 {
				t.Errorf("%q on %q: more than one match", tc.src, s)
			}
		}
	}
}
