package sa

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
)

// TestRepeats: the count of disjoint matches of X screens X{n}: it
// rejects texts with fewer than n, and never a text X{n} matches.
func TestRepeats(t *testing.T) {
	for _, tc := range []struct {
		pattern, text string
		want          bool
	}{
		{`(?:a[b\xe9]c){3}`, "abc abc", false},
		{`(?:a[b\xe9]c){3}`, "abcabcabc", true},
		{`(?:a[b\xe9]c){3}`, "abc x abc y abc", true}, // a screen: X{3} does not match
		{`(?:a[b\xe9]c){3}`, latin1("a\xe9ca\xe9c abc"), true},
		{`(?:a[b\xe9]c){3}`, latin1("a\xe9ca\xe9c ab"), false},
		{`(?:\bab\s?){2,}`, "xab ab", false},
		{`(?:\bab\s?){2,}`, "ab ab", true},
		{`(?:a?){3}`, "bbb", true}, // X matches empty: no screen
	} {
		full, ascii, err := compileVariants(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		v := &full
		if isASCII(tc.text) {
			v = &ascii
		}
		if v.screenDFA == nil {
			t.Fatalf("%s: no repeat screen", tc.pattern)
		}
		if got := v.repeats(tc.text); got != tc.want {
			t.Errorf("%s on %q: repeats %v, want %v", tc.pattern, tc.text, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"a", "b", "c", "ab", " ", "\n", "\xe9", "abc", "a\xe9c"}
	for _, pattern := range []string{
		`(?:a[b\xe9]c\s?){3}`, `(?m)(?:^ab|c\b){2}`, `(?:\bab\s?|c){2,}`, `(?:b|\xe9a?){4}`, `(?:a\W?c?){3,5}`,
	} {
		full, ascii, err := compileVariants(pattern)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(pattern)
		for range 3000 {
			var b strings.Builder
			for range rng.IntN(16) {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
			text := latin1(b.String())
			v := &full
			if isASCII(text) {
				v = &ascii
			}
			if re.MatchString(text) && !v.repeats(text) {
				t.Fatalf("%s matches %q, which the screen rejects", pattern, text)
			}
		}
	}
}

// TestGroupNeed: a group's needed bytes skip the texts that hold too
// few of them, and never a text one of its regexes matches.
func TestGroupNeed(t *testing.T) {
	parse := func(ps ...string) []*syntax.Regexp {
		var ts []*syntax.Regexp
		for _, p := range ps {
			re, err := syntax.Parse(p, syntax.Perl)
			if err != nil {
				t.Fatal(err)
			}
			ts = append(ts, re)
		}
		return ts
	}
	for _, tc := range []struct {
		patterns []string
		need     string
		n        int
	}{
		{[]string{`(?i)(?:&[a-z0-9#]{2,};\s{0,64}){10}`, `(?:&#\d{1,2};){10}`}, "&", 10},
		{[]string{`<a\s+href=`, `>\s*x`}, "<>", 1},
		{[]string{`a&&b|c&&&d`}, "&", 2},
		{[]string{`<a`, `\bfoo\b`}, "", 0}, // a rule with no such byte
		{[]string{`[\s\d]+x`}, "", 0},
	} {
		need, n := groupNeed(parse(tc.patterns...))
		if need != tc.need || n != tc.n {
			t.Errorf("%q: need %q %d, want %q %d", tc.patterns, need, n, tc.need, tc.n)
		}
	}
	if holdsBytes("&amp; &lt;", "&", 10) || !holdsBytes(strings.Repeat("&x", 10), "&", 10) {
		t.Error("holdsBytes miscounts")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	pieces := []string{"&", ";", "#1", "a", "<", ">", " ", "&#9;", "x\xe9", "<a", "="}
	for _, ps := range [][]string{
		{`(?:&#?[a-z0-9]{1,};\s?){3}`},
		{`<a\s?=`, `>[^<]{0,3}<`, `(?:=;){2}|&&`},
		{`(?i)(?:<A\s*|&#\d;){2,}`},
	} {
		trees := parse(ps...)
		need, n := groupNeed(trees)
		if need == "" {
			t.Fatalf("%q: no needed bytes", ps)
		}
		var res []*regexp.Regexp
		for _, p := range ps {
			res = append(res, regexp.MustCompile(p))
		}
		for range 3000 {
			var b strings.Builder
			for range rng.IntN(20) {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
			text := latin1(b.String())
			for _, re := range res {
				if re.MatchString(text) && !holdsBytes(text, need, n) {
					t.Fatalf("%s matches %q, which holds fewer than %d of %q", re, text, n, need)
				}
			}
		}
	}
}
