package sa

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestSplitRegex(t *testing.T) {
	tests := []struct{ in, pat, flags string }{
		{`/abc/i`, `abc`, `i`},
		{`/a\/b/`, `a\/b`, ``},
		{`m{a/b}ism`, `a/b`, `ism`},
		{`m!x!`, `x`, ``},
		{`m#a#x`, `a`, `x`},
	}
	for _, tc := range tests {
		p, f, err := SplitRegex(tc.in)
		if err != nil || p != tc.pat || f != tc.flags {
			t.Errorf("SplitRegex(%q) = %q, %q, %v; want %q, %q", tc.in, p, f, err, tc.pat, tc.flags)
		}
	}
	for _, bad := range []string{``, `abc`, `/abc`, `/a/q`, `m a `} {
		if _, _, err := SplitRegex(bad); !errors.Is(err, ErrRegexSyntax) {
			t.Errorf("SplitRegex(%q): err = %v", bad, err)
		}
	}
}

// TestTranslate checks Perl semantics on the translated regex: each case
// says which texts must and must not match.
func TestTranslate(t *testing.T) {
	tests := []struct {
		pat, flags string
		match      []string
		noMatch    []string
	}{
		{`foo$`, ``, []string{"a foo", "a foo\n"}, []string{"foo\nbar"}},
		{`^foo$`, `m`, []string{"x\nfoo\ny"}, []string{"xfoo"}},
		{`a.b`, `s`, []string{"a\nb"}, nil},
		{`a.b`, ``, []string{"axb"}, []string{"a\nb"}},
		{`abc\Z`, ``, []string{"abc", "abc\n"}, []string{"abc\nd"}},
		{`abc\z`, ``, []string{"abc"}, []string{"abc\n"}},
		{`a b # comment
		  c`, `x`, []string{"abc"}, []string{"a b c"}},
		{`[a b]`, `x`, []string{" "}, nil},
		{`\x41\x{42}\101`, ``, []string{"ABA"}, nil},
		{`\xc3\xa9`, ``, []string{latin1("é")}, nil}, // UTF-8 octets, as Perl sees them
		{`\x{e9}`, ``, []string{latin1("\xe9")}, []string{latin1("é")}},
		{`\x{263a}`, ``, []string{latin1("☺")}, nil},
		{`a++b`, ``, []string{"aab"}, nil},
		{`(?>a+)b`, ``, []string{"aab"}, nil},
		{`[[:alpha:]]+\d`, ``, []string{"ab1"}, []string{"1"}},
		{`[\w-.]+@`, ``, []string{"a-b.c@"}, nil},
		{`[^]a]`, ``, []string{"b"}, []string{"]", "a"}},
		{`\h+\v`, ``, []string{" \t\n"}, nil},
		{`\@\-\'\"`, ``, []string{`@-'"`}, nil},
		{`a{,3}`, ``, []string{"a{,3}"}, []string{"aaa"}},
		{`a{2,3}+`, ``, []string{"aa"}, []string{"a"}},
		{`\Qa.b\E.`, ``, []string{"a.bx"}, []string{"axbx"}},
		{`(?i)ab(?-i)c`, ``, []string{"ABc"}, []string{"ABC"}},
		{`(?^i:ab)`, ``, []string{"AB"}, nil},
		{`(?#note)ab`, ``, []string{"ab"}, nil},
		{`(?<n>a)b`, ``, []string{"ab"}, nil},
		{`[\b]`, ``, []string{"\b"}, []string{"b"}},
		{`\e\cA`, ``, []string{"\x1b\x01"}, nil},
		{`\y\i`, ``, []string{"yi"}, nil},
		{"\xe9", ``, []string{latin1("\xe9")}, nil},
	}
	for _, tc := range tests {
		re2, err := Translate(tc.pat, tc.flags)
		if err != nil {
			t.Errorf("Translate(%q, %q): %v", tc.pat, tc.flags, err)
			continue
		}
		re, err := regexp.Compile(re2)
		if err != nil {
			t.Errorf("Translate(%q) = %q: %v", tc.pat, re2, err)
			continue
		}
		for _, s := range tc.match {
			if !re.MatchString(s) {
				t.Errorf("%q (as %q) does not match %q", tc.pat, re2, s)
			}
		}
		for _, s := range tc.noMatch {
			if re.MatchString(s) {
				t.Errorf("%q (as %q) matches %q", tc.pat, re2, s)
			}
		}
	}
}

func TestTranslateNeedsBacktracking(t *testing.T) {
	for _, p := range []string{`(a)\1`, `a(?=b)`, `a(?!b)`, `(?<=a)b`, `(?<!a)b`, `\Ga`, `(?(1)a|b)`} {
		if _, err := Translate(p, ""); !errors.Is(err, ErrBacktrack) {
			t.Errorf("Translate(%q): err = %v, want ErrBacktrack", p, err)
		}
	}
	for _, p := range []string{`[abc`, `a\`} {
		if _, err := Translate(p, ""); !errors.Is(err, ErrRegexSyntax) {
			t.Errorf("Translate(%q): err = %v, want ErrRegexSyntax", p, err)
		}
	}
}

// TestSupersetScreens: the RE2 screen of a backtracking regex matches
// wherever the regex does.
func TestSupersetScreens(t *testing.T) {
	for _, tc := range []struct{ pat, text string }{
		{`(?!viagra)v[i1]agra`, "v1agra"},
		{`(\w)\1{3}`, "xaaaay"},
		{`(?<=\$)\d+`, "$12"},
		{`foo(?=bar)`, "foobar"},
	} {
		sup, err := translate(tc.pat, "", targetSuperset)
		if err != nil {
			t.Fatalf("%q: %v", tc.pat, err)
		}
		if !regexp.MustCompile(sup).MatchString(tc.text) {
			t.Errorf("screen %q of %q misses %q", sup, tc.pat, tc.text)
		}
	}
}

func TestRequiredLiterals(t *testing.T) {
	tests := []struct {
		pat  string
		want []string
	}{
		{`(?i)buy now`, []string{"buy now"}},
		{`foo\d+bar`, []string{"foo"}},
		{`(?i)(?:viagra|cialis)`, []string{"viagra", "cialis"}},
		{`(?i)colou?r`, []string{"color", "colour"}},
		{`v[i1]agra`, []string{"viagra", "v1agra"}},
		{`\d+`, nil},
		{`(?:ab|xyz)`, nil}, // a branch shorter than the minimum: no screen
		{`(?i)cel+ular`, []string{"lular"}},
	}
	for _, tc := range tests {
		got := requiredLiterals(tc.pat)
		sort.Strings(got)
		sort.Strings(tc.want)
		if len(got) != len(tc.want) {
			t.Errorf("requiredLiterals(%q) = %q, want %q", tc.pat, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("requiredLiterals(%q) = %q, want %q", tc.pat, got, tc.want)
			}
		}
	}
}

func TestAutomaton(t *testing.T) {
	for _, wide := range []bool{false, true} {
		if wide {
			// Entries of 32 bits, as for more than 65536 states.
			defer func(n int) { maxStates16 = n }(maxStates16)
			maxStates16 = 0
		}
		a := newAutomaton([]string{"he", "she", "his", "hers"})
		if (a.delta16 == nil) != wide {
			t.Fatalf("wide %v: 16-bit entries %v", wide, a.delta16 != nil)
		}
		var got []int32
		var ends []int
		a.scan("uSHErs", func(p int32, end int) { got = append(got, p); ends = append(ends, end) })
		// she (1) and he (0) end at 4, hers (3) at 6.
		if len(got) != 3 || got[0] != 1 || got[1] != 0 || got[2] != 3 || ends[0] != 4 || ends[2] != 6 {
			t.Errorf("wide %v: matches %v at %v", wide, got, ends)
		}
	}
}

// TestFactors: every literal set factorsOf gives is needed by every
// match: a text the regex matches holds one string of each (checked on
// random texts), and the sets beyond the first add what it does not
// imply.
func TestFactors(t *testing.T) {
	for _, c := range []struct {
		pat  string
		want string
	}{
		{`(?i)\byour?\s(?:\w{1,15}\s){0,10}(?:share|entitle)`, `[["share" "entitle"] ["you" "your"]]`},
		{`foo.*bar.*bazz`, `[["bazz"] ["foo"] ["bar"]]`},
		{`(?:foo|bar)\s+(?:abcd|xyzw)`, `[["abcd" "xyzw"] ["foo" "bar"]]`},
		{`foobar`, `[["foobar"]]`},
		{`(?:foo|ab)cde`, `[["foocde" "abcde"]]`},
		{`\d+`, `[]`},
	} {
		tree, err := syntax.Parse(c.pat, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		got := factorsOf(tree.Simplify())
		if s := fmt.Sprintf("%q", got); s != c.want {
			t.Errorf("factorsOf(%q) = %s, want %s", c.pat, s, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	words := []string{"foo", "bar", "baz", "ab", "ABC", "cd", " ", "x", "\n"}
	gen := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(words[rng.IntN(len(words))])
		}
		return b.String()
	}
	checked := 0
	for range 300 {
		pat := gen(1 + rng.IntN(2))
		switch rng.IntN(4) {
		case 0:
			pat = "(?i)" + pat + ".*" + gen(1+rng.IntN(2))
		case 1:
			pat = "(?:" + pat + "|" + gen(2) + ")\\s*" + gen(2)
		case 2:
			pat = pat + "(?:" + gen(1) + ")+" + gen(1)
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			continue
		}
		tree, _ := syntax.Parse(pat, syntax.Perl)
		sets := factorsOf(tree.Simplify())
		for range 200 {
			text := gen(rng.IntN(8))
			if !re.MatchString(text) {
				continue
			}
			checked++
			lower := strings.ToLower(text)
			for _, set := range sets {
				if !slices.ContainsFunc(set, func(l string) bool { return strings.Contains(lower, l) }) {
					t.Fatalf("%q matches %q, which holds none of %q", pat, text, set)
				}
			}
		}
	}
	if checked < 1000 {
		t.Errorf("only %d matching texts checked", checked)
	}
}

func FuzzTranslate(f *testing.F) {
	for _, s := range []string{`a+b`, `[\w-.]{2,}\@`, `(?i)(?:x|y)\1`, `\x{263a}[[:alpha:]]`, `(?!a)(?<=b)c`, `a{,2}\Z`, "a # x\n b"} {
		f.Add(s, "ix")
	}
	f.Fuzz(func(t *testing.T, pat, flags string) {
		if len(flags) > 4 {
			return
		}
		re2, err := Translate(pat, flags)
		if err == nil {
			if _, err := regexp.Compile(re2); err == nil {
				compileVariants(re2)
				requiredLiterals(re2)
			}
		}
		if sup, err := translate(pat, flags, targetSuperset); err == nil {
			regexp.Compile(sup)
		}
		translate(pat, flags, targetBT)
	})
}

func TestSupersetLookaheadAtTop(t *testing.T) {
	sup, err := translate(`(?:^|\W)(?=[vV][i1]agra)(?!viagra)\w+`, "i", targetSuperset)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(sup)
	if !re.MatchString("buy V1agra") || re.MatchString("buy nothing") {
		t.Errorf("screen %q", sup)
	}
}

func TestRepeatCore(t *testing.T) {
	for in, want := range map[string]string{
		`(?i)(?:ab|c){5}`: `(?i)(?:ab|c){2}`,
		`(?:ab){1,3}`:     `(?:ab)`,
		`(?:a)+`:          `(?:a)`,
		`(?:a){0,3}`:      ``,
		`(?:a)(?:b){3}`:   ``,
		`abc`:             ``,
	} {
		if got := repeatCore(in); got != want {
			t.Errorf("repeatCore(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDFAAgreesWithRegexp: the automaton answers as the regexp does on
// ASCII text, anchors and word boundaries included.
func TestDFAAgreesWithRegexp(t *testing.T) {
	pats := []string{`\x{e9}t`, `[\x{c0}-\x{ff}]{2}`, `caf.\b`, `^abc`, `abc$`, `\bfoo\b`, `\Bar`, `(?m)^x$`, `a.c`, `(?i)hello\s+world`, `\Aab|cd\z`, `(?s)a.b`, `[^a-z]{3}`, `x*`, `(?:^|\s)pay\b`}
	texts := []string{latin1("caf\xe9 abc"), latin1("\xc3\xa9t\xe9"), "", "abc", "xabc", "abc\n", "foo", "a foo.", "food", "bar", "car", "x", "a\nx\nb", "a\nc", "HELLO   World", "cd", "ab", "123", "pay me", "repay"}
	for _, p := range pats {
		re := regexp.MustCompile(p)
		tree, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		d := lazyDFA(tree)
		for _, s := range texts {
			m, ok := d.match(s)
			if !ok {
				t.Fatalf("%q on %q: automaton gave up", p, s)
			}
			if m != re.MatchString(s) {
				t.Errorf("%q on %q: automaton %v, regexp %v", p, s, m, !m)
			}
		}
	}
}

// TestAutomatonNaive compares the automaton (dense near the root, sparse
// deeper) with a naive search, on random patterns and texts over a small
// alphabet, so that deep states and long fail chains occur.
func TestAutomatonNaive(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 11))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcAB-"[rnd.IntN(6)]
		}
		return string(b)
	}
	for round := range 200 {
		pats := make([]string, 1+rnd.IntN(12))
		for i := range pats {
			pats[i] = strings.ToLower(word(1 + rnd.IntN(9)))
		}
		a := newAutomaton(pats)
		text := word(rnd.IntN(80))
		got := map[[2]int]int{}
		a.scan(text, func(p int32, end int) { got[[2]int{int(p), end}]++ })
		want := map[[2]int]int{}
		low := strings.ToLower(text)
		for p, pat := range pats {
			for end := len(pat); end <= len(low); end++ {
				if low[end-len(pat):end] == pat {
					want[[2]int{p, end}]++
				}
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("round %d: patterns %q on %q: got %v, want %v", round, pats, text, got, want)
		}
	}
}
