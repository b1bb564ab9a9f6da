package sa

import (
	"math/rand/v2"
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
		// The rawbody chunks the rules are run on.
		for _, m := range loadMessages(t, sample(corpusFiles(t, k), 150)) {
			c := &msgCtx{e: e, m: m}
			texts = append(texts, c.rawLines()...)
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
	lazyHits := 0
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
			hits := 0
			for _, s := range texts {
				got, want := c.count(s, r.limit()), len(re.FindAllStringIndex(s, r.limit()))
				if got != want {
					t.Errorf("%s: %d, regexp %d on %.80q", r.name, got, want, s)
				}
				hits += got
			}
			if _, lazy := c.(*lazyCount); lazy {
				lazyHits += hits
			}
			t.Logf("%s/%d %T: %d matches", r.name, vi, c, hits)
		}
	}
	if lazyHits == 0 {
		t.Error("no lazyCount counter matched a corpus text")
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

// counterPatterns are regexes of every shape newCounter handles (and a
// few near misses it must refuse, marked by a nil want in the tests).
var counterPatterns = []string{
	// seqCount by expansion: alternations inside concatenations, x?, x{n,m}.
	`(?:a|b)c`, `ab?c`, `ab??c`, `a(?:b|bc)?`, `x{2,3}`, `[ab]{1,2}?`, `(?:a|ab)(?:c|bc)`, `(?i)s(?:k|a)?`,
	`<(?:a href|A HREF)=`, `\x{c3}[\x{a8}-\x{ab}]?e`,
	// lazyCount.
	`(?m)^[^>].*?<a href=`, `(?im)^[^>].*?<a href=`, `(?m)^[^>].*?<(?:a href|A HREF)=`, `(?im)^[^>].*?<img src=`,
	`(?-s:(?m:^)[\x00-=\?-\x7f].*?(?i:<A HREF=))`, `(?m)^[^>].*?<(?:img src|IMG SRC)=`,
	`^a.*?b`, `^a.*?\n`, `(?m)^.*?ab`, `(?m)^a.*?\n`, `(?m)^(?:a|ab)?.*?(?:b|bc)`, `(?m)^[^x]x?.*?(?i:s)`, `(?m)^\n?.*?a`,
	`(?m)^..*?.`, `(?m)^(?:<|a).*?(?:a|<a)`,
}

var counterPieces = []string{"<a href=", "<A HREF=", "<a HREF=", "<img src=", "<IMG SRC=", "<img ſrc=", "ſ", "s", "S",
	">", "\n", "\n", "a", "ab", "b", "bc", "c", "x", "xx", "\xff", "\xc3", "é", "è", " ", "<", "=", "k", "\u212a", "e", "\u00c3", "\u00c3\u00a9"}

func randCounterText(rng *rand.Rand) string { return randPieces(rng, counterPieces, 30) }

func checkCounter(t *testing.T, src string, c matchCounter, re *regexp.Regexp, s string) {
	t.Helper()
	for _, lim := range []int{1, 2, 1000} {
		if got, want := c.count(s, lim), len(re.FindAllStringIndex(s, lim)); got != want {
			t.Fatalf("%q on %q limit %d: %d, regexp %d", src, s, lim, got, want)
		}
	}
}

// TestCountersRandom checks every counter shape against Go's FindAll on
// random texts made of the patterns' pieces.
func TestCountersRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var texts []string
	for range 20000 {
		texts = append(texts, randCounterText(rng))
	}
	texts = append(texts, countTexts...)
	for _, p := range counterPatterns {
		c := newCounter(p)
		if c == nil {
			t.Errorf("%q: no counter", p)
			continue
		}
		re := regexp.MustCompile(p)
		hits := 0
		for _, s := range texts {
			checkCounter(t, p, c, re, s)
			if re.MatchString(s) {
				hits++
			}
		}
		if hits < 100 {
			t.Errorf("%q: only %d random texts match", p, hits)
		}
	}
	for _, p := range []string{`(?m)^a.*b`, `(?s)(?m)^a.*?b`, `a.*?b`, `(?m)^a.*?`, `(?m)^a.*?b.*?c`, `(?m)^a.*?b*`,
		`(?m)a^.*?b`, `(?:ab|cd|ef|gh|ij|kl)(?:ab|cd|ef|gh|ij|kl)`} {
		if newCounter(p) != nil {
			t.Errorf("%q: a counter for a regex it cannot count", p)
		}
	}
}

func FuzzCounters(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 40 {
		f.Add(randCounterText(rng))
	}
	type pc struct {
		src string
		c   matchCounter
		re  *regexp.Regexp
	}
	var l []pc
	for _, p := range counterPatterns {
		if c := newCounter(p); c != nil {
			l = append(l, pc{p, c, regexp.MustCompile(p)})
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, x := range l {
			checkCounter(t, x.src, x.c, x.re, s)
		}
	})
}

// TestLineCountRandom checks lineCount against Go's FindAll on random
// texts: matches that end mid-line, at a line end, past line breaks,
// empty ones, and \b after a line start.
func TestLineCountRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var texts []string
	for range 20000 {
		texts = append(texts, randCounterText(rng))
	}
	texts = append(texts, countTexts...)
	for _, p := range []string{`(?m)^a.*b`, `(?m)^\s{0,3}(?:ab|a)(?:\n|b)`, `(?im)^x?(?:a|b){1,3}\s*$`,
		`(?m)^\ba\b`, `(?m)^(?:a|\n)+`, `(?m)^a?`, `(?m)^[^>].*?<a href=`, `(?m)^(?:a|<)\s*(?:[a-z]|\n)*?(?:b|c)$`,
		`(?m)^(?:\n|a)(?:b^x|b\n)?`, `(?m)^(?:é|\xff)`} {
		l := newLazyRE(p)
		c := newLineCount(l)
		if c == nil {
			t.Errorf("%q: no lineCount", p)
			continue
		}
		re := regexp.MustCompile(p)
		hits := 0
		for _, s := range texts {
			checkCounter(t, p, c, re, s)
			hits += b2i(re.MatchString(s))
		}
		if hits < 100 {
			t.Errorf("%q: only %d random texts match", p, hits)
		}
	}
	for _, p := range []string{`a`, `^a`, `(?m)^a|b`, `\A(?m)^a|(?m)^b`, `(?m)^a\A`} {
		if newLineCount(newLazyRE(p)) != nil {
			t.Errorf("%q: a lineCount for a regex it cannot count", p)
		}
	}
}
