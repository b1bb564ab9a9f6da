package sa

import (
	"math/rand/v2"
	"regexp"
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
