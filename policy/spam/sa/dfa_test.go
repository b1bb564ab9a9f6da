package sa

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// TestDFAFlush: an automaton whose states outgrow the cache keeps
// answering like the regexp once it has served enough bytes: the cache is
// flushed and rebuilt instead of the automaton giving up for good.
func TestDFAFlush(t *testing.T) {
	const pat = `a[ab]{14}c` // 2^14 states at least: more than the cache
	tree, err := syntax.Parse(pat, syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(pat)
	// With the default threshold, texts that need a new state every few
	// bytes make the automaton give up.
	d := lazyDFA(tree)
	gaveUp := false
	for i := 0; i < 50 && !gaveUp; i++ {
		_, ok := d.match(string(randAB(rand.New(rand.NewPCG(3, uint64(i))), 200)))
		gaveUp = !ok
	}
	if !gaveUp {
		t.Error("the automaton never gave up on an exploding regex")
	}
	// With enough bytes served per state, the cache is flushed instead.
	defer func(v int64) { flushBytesPerState = v }(flushBytesPerState)
	flushBytesPerState = 0
	d = lazyDFA(tree)
	rng := rand.New(rand.NewPCG(1, 2))
	flushed := false
	for i := 0; i < 3000; i++ {
		b := randAB(rng, 200)
		if i%3 == 0 {
			b[rng.IntN(len(b))] = 'c'
		}
		text := string(b)
		m, ok := d.match(text)
		if !ok {
			t.Fatalf("text %d: the automaton gave up after %d bytes", i, d.scanned.Load())
		}
		if m != re.MatchString(text) {
			t.Fatalf("text %d: dfa %v, regexp %v", i, m, !m)
		}
		if i > 0 && d.scanned.Load() < int64(len(text)) {
			flushed = true
		}
	}
	if !flushed {
		t.Error("the cache was never flushed: the test does not exercise it")
	}
}

func randAB(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = "ab"[rng.IntN(2)]
	}
	return b
}

// TestScanCut: parts are cut as SpamAssassin cuts them, at a newline
// within 1 KB past the size, else at a later cut byte, else hard.
func TestScanCut(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, c := range []struct{ in, want string }{
		{"short", "short"},
		{long[:12] + "\n" + long, long[:12] + "\n"},
		{long[:12] + " y\n" + long, long[:12] + " y\n"},
		{long[:12] + " " + long, long[:12] + " "},
		{long, long[:10]},
	} {
		if got := scanCut(c.in, 10, "\n "); got != c.want {
			t.Errorf("scanCut(%.20q) = %.20q, want %.20q", c.in, got, c.want)
		}
	}
	if got := scanCut(strings.Repeat("x", 2000)+"\n", 10, "\n"); len(got) != 10 {
		t.Errorf("newline past 1 KB: cut at %d, want 10", len(got))
	}
}

// TestMDFA: a group automaton names exactly the regexes of the group that
// match, as each regexp says, on random texts over a small alphabet that
// exercises line, word and text boundaries.
func TestMDFA(t *testing.T) {
	pats := []string{`ab+c`, `^a`, `c$`, `\bba\b`, `(?m)^b.a$`, `a\Bb`, `(?i)CA`, `\s\S{3}\s`, `x`, `(?:a|b){4}`, `\Ab`, `c\z`}
	trees, res := parsePats(t, pats)
	d := newMDFA(trees)
	rng := rand.New(rand.NewPCG(5, 6))
	const alphabet = "abcC \n"
	for i := range 5000 {
		b := make([]byte, rng.IntN(12))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		text := string(b)
		got, ok := d.match(text)
		if !ok {
			t.Fatalf("text %d: gave up", i)
		}
		for k, re := range res {
			if want := re.MatchString(text); (got>>k&1 == 1) != want {
				t.Fatalf("%q on %q: group says %v, regexp %v", pats[k], text, !want, want)
			}
		}
	}
}

// TestPrefixStart: a regex whose matches all start with one of its prefix
// literals matches a text exactly when its automaton, started at the
// first prefix found, does (the byte before counts for \b and ^).
func TestPrefixStart(t *testing.T) {
	for _, c := range []struct {
		pat  string
		want []string
	}{
		{`\nFrom: [^\n]+`, []string{"\nfrom: "}},
		{`(?i)abc|def`, []string{"abc", "def"}},
		{`a?bcd`, []string{"bcd", "abcd"}},
		{`\bcab\b`, []string{"cab"}},
		{`(?m)^abc$`, []string{"abc"}},
		{`.*abc`, nil},
		{`x*abc`, nil},
		{`(?:ab|c)ba`, []string{"abba", "cba"}},
	} {
		tree, err := syntax.Parse(c.pat, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		got := prefixLiterals(tree.Simplify())
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("prefixLiterals(%q) = %q, want %q", c.pat, got, c.want)
		}
		if got == nil {
			continue
		}
		re := regexp.MustCompile(c.pat)
		d := lazyDFA(tree)
		pat := c.pat
		v := variant{dfa: lazyDFA(tree), prefix: got, adfa: anchoredDFA(func() *syntax.Regexp {
			t, _ := syntax.Parse(pat, syntax.Perl)
			return t
		})}
		rng := rand.New(rand.NewPCG(7, 8))
		const alphabet = "abcdABC \n"
		for i := range 3000 {
			b := make([]byte, rng.IntN(14))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			text := string(b)
			want := re.MatchString(text)
			p := firstPrefix(text, got)
			m := false
			if p >= 0 {
				var ok bool
				if m, ok = d.matchAt(text, p); !ok {
					t.Fatalf("%q on %q: gave up", c.pat, text)
				}
			}
			if m != want {
				t.Fatalf("%q on %q (prefix at %d): %v, regexp %v (text %d)", c.pat, text, p, m, want, i)
			}
			// The anchored automaton run at each prefix answers the same.
			if p >= 0 {
				if m, ok := v.prefixMatch(text, p); !ok || m != want {
					t.Fatalf("%q on %q: prefixMatch %v (ok %v), regexp %v", c.pat, text, m, ok, want)
				}
			}
		}
	}
}

// TestLineStart: a regex whose matches start at line starts runs its
// anchored automaton at each line start and answers as the regexp does.
func TestLineStart(t *testing.T) {
	for _, c := range []struct {
		pat  string
		want bool
	}{
		{`(?m)^\s?ab+c`, true},
		{`(?m)^(?:ab|\bc)d`, true},
		{`(?m)(?:^a|^b\n)c$`, true},
		{`(?m)\b^a`, true},
		{`(?m)(?:^ab){2,}`, true},
		{`(?im)^\s*$`, true},
		{`(?m)^a|\Ab`, true},
		{`^abc`, false}, // anchored at the text's start already
		{`(?m)(?:^a|b)c`, false},
		{`(?m)a^`, false},
		{`(?m)(?:^a)?b`, false},
		{`(?m)abc`, false},
	} {
		tree, err := syntax.Parse(c.pat, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := startsOf(tree.Simplify()); got != c.want {
			t.Errorf("startsOf(%q) = %v, want %v", c.pat, got, c.want)
		}
		if !c.want {
			continue
		}
		re := regexp.MustCompile(c.pat)
		pat := c.pat
		v := variant{dfa: lazyDFA(tree), lineStart: true, adfa: anchoredDFA(func() *syntax.Regexp {
			t, _ := syntax.Parse(pat, syntax.Perl)
			return t
		})}
		rng := rand.New(rand.NewPCG(5, 6))
		const alphabet = "abcdA \n\n"
		for range 3000 {
			b := make([]byte, rng.IntN(16))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			text := string(b)
			if m, ok := v.prefixMatch(text, 0); !ok || m != re.MatchString(text) {
				t.Fatalf("%q on %q: %v (ok %v), regexp %v", c.pat, text, m, ok, !m)
			}
		}
	}
}

// TestStartBytes: a regex whose matches start with one of a few bytes
// runs its anchored automaton where each occurs and answers as the
// regexp does.
func TestStartBytes(t *testing.T) {
	// All start at the text's start: the automaton is anchored there.
	if tree, _ := syntax.Parse(`^<ab`, syntax.Perl); tree != nil {
		if line, bytes := startsOf(tree.Simplify()); line || bytes != "" {
			t.Errorf("startsOf(^<ab) = %v %q", line, bytes)
		}
	}
	for _, c := range []struct {
		pat  string
		want string
	}{
		{`\n(?:From|To):`, "\n"},
		{`(?i)<(?:a|b)+\s`, "<"},
		{`\b(?:<a|>b+)c`, "<>"},
		{`[<>=]a`, "<=>"},
		{`(?:<a){2,}b`, "<"},
		{`(?:<a)?b`, ""},   // a match can start with b
		{`<?ab`, ""},       // or a
		{`[<>=&]a`, ""},    // too many bytes
		{`\s<a`, ""},       // blanks are everywhere
		{`(?i)abc|<b`, ""}, // a letter
		{`<*`, ""},         // empty
	} {
		tree, err := syntax.Parse(c.pat, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got := startBytesOf(tree.Simplify()); got != c.want {
			t.Errorf("startBytesOf(%q) = %q, want %q", c.pat, got, c.want)
		}
		if c.want == "" {
			continue
		}
		re := regexp.MustCompile(c.pat)
		pat := c.pat
		v := variant{dfa: lazyDFA(tree), startBytes: c.want, adfa: anchoredDFA(func() *syntax.Regexp {
			t, _ := syntax.Parse(pat, syntax.Perl)
			return t
		})}
		rng := rand.New(rand.NewPCG(5, 6))
		const alphabet = "abcA<>=:\n FromTo"
		for range 3000 {
			b := make([]byte, rng.IntN(16))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			text := string(b)
			want := re.MatchString(text)
			first := indexAnyFrom(text, 0, v.startBytes)
			m := false
			if first >= 0 {
				var ok bool
				if m, ok = v.prefixMatch(text, first); !ok {
					t.Fatalf("%q on %q: gave up", c.pat, text)
				}
			}
			if m != want {
				t.Fatalf("%q on %q: %v, regexp %v", c.pat, text, m, want)
			}
		}
	}
}

// TestAnchoredDFA: a regex that must start at the start of the text gets
// an anchored automaton, which stops at the first byte no match can go
// on with, and answers as the regexp does, from any start.
func TestAnchoredDFA(t *testing.T) {
	for _, p := range []string{`^abc`, `\A(?:ab|c)d`, `^a[^\n]*b`, `(?i)^x\b`, `^$`, `(?m)^abc`, `\Aa|b`} {
		re := regexp.MustCompile(p)
		tree, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		d := lazyDFA(tree)
		rng := rand.New(rand.NewPCG(3, 4))
		for range 2000 {
			b := make([]byte, rng.IntN(12))
			for j := range b {
				b[j] = "abcdx X\n"[rng.IntN(8)]
			}
			text := string(b)
			from := rng.IntN(len(text) + 1)
			m, ok, end := d.scanAt(text, from)
			if !ok {
				t.Fatalf("%q on %q: gave up", p, text)
			}
			loc := re.FindStringIndex(text[from:])
			want := false
			// Go's regexp sees text[from:] as a whole text: compare only
			// where the start condition does not depend on the byte before.
			if from == 0 {
				want = loc != nil
				if m != want {
					t.Fatalf("%q on %q: %v, regexp %v", p, text, m, want)
				}
			}
			if from > 0 && d.anchored && m {
				t.Fatalf("%q on %q from %d: a match not at the start of the text", p, text, from)
			}
			if end < from || end > len(text) {
				t.Fatalf("%q on %q from %d: end %d", p, text, from, end)
			}
		}
		if want := p != `(?m)^abc` && p != `\Aa|b`; d.anchored != want {
			t.Errorf("%q: anchored %v, want %v", p, d.anchored, want)
		}
	}
	// Dead at once: the scan stops after the first byte.
	tree, err := syntax.Parse(`^abc`, syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	d := lazyDFA(tree)
	if m, ok, end := d.scanAt("xbcabcabc", 0); m || !ok || end != 1 {
		t.Errorf("^abc on xbcabcabc: %v %v end %d, want a stop after 1 byte", m, ok, end)
	}
}

// TestIndexFold: indexFold is strings.Index on the ASCII-lowered text.
func TestIndexFold(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const alphabet = "abAB\n"
	for range 5000 {
		b := make([]byte, rng.IntN(20))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		l := make([]byte, 1+rng.IntN(3))
		for j := range l {
			l[j] = "ab\n"[rng.IntN(3)]
		}
		text, lit := string(b), string(l)
		if got, want := indexFold(text, lit), strings.Index(strings.ToLower(text), lit); got != want {
			t.Fatalf("indexFold(%q, %q) = %d, want %d", text, lit, got, want)
		}
	}
}

// TestDFAConcurrent: matchers share the automata while they grow and are
// flushed (run with -race): each answer is still the regexp's.
func TestDFAConcurrent(t *testing.T) {
	defer func(v int64) { flushBytesPerState = v }(flushBytesPerState)
	flushBytesPerState = 0 // flush whenever full
	pats := []string{`a[ab]{14}c`, `\bab+a\b`, `(?m)^b.{3}c$`}
	trees, res := parsePats(t, pats)
	single := lazyDFA(trees[0])
	group := newMDFA(trees)
	inGoroutines(t, 4, func(g int) string {
		rng := rand.New(rand.NewPCG(uint64(g), 11))
		for i := range 1500 {
			b := randAB(rng, 40+rng.IntN(100))
			for range rng.IntN(4) {
				b[rng.IntN(len(b))] = " c\n"[rng.IntN(3)]
			}
			text := string(b)
			if m, ok := single.matchAt(text, 0); ok && m != res[0].MatchString(text) {
				return fmt.Sprintf("goroutine %d text %d: dfa %v on %q", g, i, m, text)
			}
			if m, ok := group.match(text); ok {
				for k, re := range res {
					if (m>>k&1 == 1) != re.MatchString(text) {
						return fmt.Sprintf("goroutine %d text %d: group bit %d wrong on %q", g, i, k, text)
					}
				}
			}
		}
		return ""
	})
}

// TestDFARelease: an automaton whose parsed tree was dropped after
// Compile parses it again on first use and answers as before, for the
// full and the ASCII variant.
func TestDFARelease(t *testing.T) {
	texts := []string{"", "free money", "FREE  m\u00f6ney now", "fr\u00e9e", "xx fre money", "free\nmoney"}
	for _, pat := range []string{`(?i)\bfree\s+m[o\x{f6}]ney\b`, `fr[e\x{e9}]e`, `^free$`} {
		for vi := range 2 {
			kept, _, err := compileVariants(pat)
			if err != nil {
				t.Fatal(err)
			}
			dropped, _, _ := compileVariants(pat)
			if vi == 1 {
				_, kept, _ = compileVariants(pat)
				_, dropped, _ = compileVariants(pat)
			}
			dropped.dfa.release()
			if dropped.dfa.tree != nil {
				t.Fatalf("%s: tree kept", pat)
			}
			for _, text := range texts {
				text = latin1(text)
				m1, ok1 := kept.dfa.match(text)
				m2, ok2 := dropped.dfa.match(text)
				if m1 != m2 || ok1 != ok2 || !ok1 {
					t.Errorf("%s variant %d on %q: kept %v %v, released %v %v", pat, vi, text, m1, ok1, m2, ok2)
				}
			}
		}
	}
}

// inGoroutines runs f(g) for g = 0..n-1 at once and reports the error
// each returns ("" for none).
func inGoroutines(t *testing.T, n int, f func(g int) string) {
	t.Helper()
	errs := make(chan string, n)
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			if e := f(g); e != "" {
				errs <- e
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// parsePats parses each pattern for the automata and compiles it for the
// regexp they are checked against.
func parsePats(t *testing.T, pats []string) ([]*syntax.Regexp, []*regexp.Regexp) {
	t.Helper()
	var trees []*syntax.Regexp
	var res []*regexp.Regexp
	for _, p := range pats {
		tree, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, tree)
		res = append(res, regexp.MustCompile(p))
	}
	return trees, res
}

// TestByteSetOf holds byteSetOf to regexp/syntax's own MatchRune for every
// byte, on every rune instruction of hand-picked patterns (case folding,
// classes, any byte) and of the Debian rules' regexes.
func TestByteSetOf(t *testing.T) {
	srcs := []string{`(?i)k`, `(?i)s`, `(?i)[a-c]`, `(?i)é`, `[^\n]`, `(?s).`, `.`, `[\x00-\xff]`,
		`[^a-z]`, `[\x{100}-\x{10FFFF}]`, `(?i)\x{212a}`, `[abcXYZ0-9\x80-\xbf]`, `(?i)ǅ`, `\pL`, `\PL`}
	checkByteSets(t, srcs)
	t.Run("debian", func(t *testing.T) {
		e, err := Compile(debianRules(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		var srcs []string
		for _, r := range e.rules {
			if r == nil {
				continue
			}
			for vi := range r.v {
				if v := &r.v[vi]; v.re != nil {
					srcs = append(srcs, v.re.src)
				}
			}
		}
		checkByteSets(t, srcs)
	})
}

func checkByteSets(t *testing.T, srcs []string) {
	n := 0
	for _, src := range srcs {
		re, err := syntax.Parse(src, syntax.Perl)
		if err != nil {
			continue
		}
		sp, err := syntax.Compile(re.Simplify())
		if err != nil {
			continue
		}
		for i := range sp.Inst {
			in := &sp.Inst[i]
			switch in.Op {
			case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			default:
				continue
			}
			n++
			b := byteSetOf(in)
			for c := range badRune + 1 {
				r := rune(c)
				if c == badRune {
					r = utf8.RuneError
				}
				if b.has(c) != in.MatchRune(r) {
					t.Fatalf("%q inst %d (%v %q fold=%v): byte %#x: byteSetOf %v, MatchRune %v",
						src, i, in.Op, in.Rune, syntax.Flags(in.Arg)&syntax.FoldCase != 0, c, b.has(c), !b.has(c))
				}
			}
		}
	}
	if n < len(srcs) {
		t.Fatalf("only %d rune instructions checked", n)
	}
	t.Logf("%d rune instructions of %d regexes checked", n, len(srcs))
}

// TestDFABadRune: where a text holds a byte that is no byte-rune (half of
// a latin1 pair that chunks cut in two, or any byte that is not UTF-8),
// the automata read it as the regexp does, as U+FFFD, and answer instead
// of giving up; they give up only on a rune above U+00FF.
func TestDFABadRune(t *testing.T) {
	pats := []string{`[^\.]{2}x`, `\bx`, `x\b`, `x.x`, `\Wx`, `[\x80-\xff]`, `[^\x00-\x7f]`,
		`[\x{100}-\x{10ffff}]`, `(?i)\x{e9}x`, `\x{c3}`, `(?s)^.$`, `\S\S\S`, `(?m)x$`, `\x{fffd}`,
		`(?:x|\x{e9})\s`}
	trees, res := parsePats(t, pats)
	group := newMDFA(trees)
	var single []*dfa
	for _, tree := range trees {
		single = append(single, lazyDFA(tree))
	}
	// Latin1 pairs, their halves, U+FFFD itself, bytes that are never
	// UTF-8, and a rune above U+00FF (on which the automata give up).
	pieces := []string{"x", ".", " ", "\n", "\xc3\xa9", "\xc2\xa0", "\xc3", "\xc2", "\xa9", "\x80",
		"\xef\xbf\xbd", "\xff", "\xed\xa0\x80", "\xe2\x82\xac"}
	rng := rand.New(rand.NewPCG(12, 13))
	for i := range 5000 {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		text := b.String()
		above := strings.Contains(text, "\xe2\x82\xac")
		// Past a rune above U+00FF they give up, unless they found
		// their answer before it.
		gm, gok := group.match(text)
		if !gok && !above {
			t.Fatalf("text %d %q: the group gave up", i, text)
		}
		for k, re := range res {
			want := re.MatchString(text)
			m, ok := single[k].match(text)
			if !ok && !above {
				t.Fatalf("%q on %q: gave up", pats[k], text)
			}
			if ok && m != want {
				t.Fatalf("%q on %q: dfa %v, regexp %v", pats[k], text, m, want)
			}
			if gok && (gm>>k&1 == 1) != want {
				t.Fatalf("%q on %q: group %v, regexp %v", pats[k], text, !want, want)
			}
		}
	}
}
