package sa

import (
	"fmt"
	"math/rand/v2"
	"regexp/syntax"
	"strings"
	"testing"
	"time"
	"unicode"
)

// lookTestPatterns are shapes the Debian rules do not all have: P with
// \b and $, /m line starts, \s and \w on the runes where regexp2's
// classes are not RE2's, lookaheads that read past Q's match.
var lookTestPatterns = []string{
	`/\bfoo(?!bar)\w+/`,
	`/(?:^|\s)(?=x)(?!xy)\S+$/m`,
	`/(?:^|\s)(?=x)(?!xy)\S+$/`,
	`/a(?!b)/`,
	`/(?!a)b$/`,
	`/\d(?=\s)\s\w/i`,
	`/\bcaf(?!\xe9)\w/i`,
	`/(?:foo|ba+r)\s*(?=[A-Z])(?![A-Z]{3})\w+/i`,
	`/\Afoo(?!x)/`,
	`/foo$(?!x)/m`,
	`/(?!.*\b1\.0\b).+/`,
	`/x(?!.*y)/s`,
	`/[\W_]{1,3}(?!\w{4})\w\W/`,
	`/(?=\S{4})(?!\s)(?!..\d)\S{2}\D/i`,
	`/\bc(?!lick\s+here)[cl1]{2}ick\b/i`,
}

// lookRulesOf compiles a rule of each pattern, written by line (a
// format of the rule's number and pattern), and returns them, their
// backtracking regexes without a time limit (the oracle).
func lookRulesOf(t testing.TB, line string, pats []string) []*rule {
	t.Helper()
	var src strings.Builder
	for i, p := range pats {
		fmt.Fprintf(&src, line+"\n", i, p)
	}
	e := compile(t, src.String(), Options{})
	var out []*rule
	for i, p := range pats {
		r := e.rules[e.byName[fmt.Sprintf("LOOK_%d", i)]]
		if r.bt == nil || r.btLook == nil {
			t.Fatalf("%s: no backtracking regex or no lookahead evaluation", p)
		}
		out = append(out, r)
	}
	return lookOracle(out)
}

func lookOracle(rules []*rule) []*rule {
	for _, r := range rules {
		r.bt.MatchTimeout = time.Minute
	}
	return rules
}

// debianLookRules are the Debian rules that have a lookRule.
func debianLookRules(t testing.TB) []*rule {
	e, err := Compile(debianRules(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*rule
	for _, r := range e.rules {
		if r != nil && r.btLook != nil {
			out = append(out, r)
		}
	}
	if len(out) < 50 {
		t.Fatalf("only %d Debian rules have a lookahead evaluation", len(out))
	}
	return lookOracle(out)
}

// checkLook fails when the lookahead evaluation answers other than the
// backtracking regex; it returns the regex's answer and whether the
// evaluation answered.
func checkLook(t testing.TB, r *rule, text string) (want, answered bool) {
	want, err := r.bt.MatchString(text)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	got, ok := r.btLook.match(text, isASCII(text))
	if ok && got != want {
		t.Errorf("%s %.200s: lookahead evaluation %v, regex %v, on %q", r.name, r.def.Pattern, got, want, text)
	}
	return want, ok
}

// lookSamples makes texts for a rule: samples of its parts (random
// matches of P, of each lookahead, of Q), its words and half-words, in
// random case, around random runes, with line breaks, ASCII or with
// byte-runes that regexp2's classes read differently from RE2's.
func lookSamples(t testing.TB, r *rule, rng *rand.Rand, n int) []string {
	pat, flags, err := SplitRegex(r.def.Pattern)
	if err != nil {
		t.Fatal(err)
	}
	pre, pos, neg, post, ok := lookParts(pat, flags)
	if !ok {
		t.Fatalf("%s: not of the shape", r.name)
	}
	parse := func(p string) *syntax.Regexp {
		src, err := translate(p, flags, targetRE2)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		re, err := syntax.Parse(src, syntax.Perl)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		return re.Simplify()
	}
	preT, postT := parse(pre), parse(post)
	var looks []*syntax.Regexp
	for _, p := range append(append([]string{}, pos...), neg...) {
		looks = append(looks, parse(p))
	}
	var words []string
	for _, w := range strings.FieldsFunc(pat, func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) && c != ' ' }) {
		if w = strings.TrimSpace(w); len(w) >= 2 {
			words = append(words, w, w[:len(w)/2], w[len(w)/2:])
		}
	}
	words = append(words, "click here", "security", "paypal.com", "million", "localhost", "1.0", "http://x.com/", "[ ip=1.2.3.4 rdns=localhost ]")
	odd := []rune{'\v', 0x85, 0xa0, 0xe9, 0xc9, 0xb5, 0xd7, 0xaa, 0xff, 0xc3, 0xa9, 0x80, 0xfffd, '\r', '\t', 0}
	junk := func(ascii bool) string {
		var b strings.Builder
		for range rng.IntN(4) {
			switch k := rng.IntN(10); {
			case k < 5:
				b.WriteByte(byte(' ' + rng.IntN(95)))
			case k < 7:
				b.WriteString([]string{" ", "\n", "-", ".", "@", "_"}[rng.IntN(6)])
			case ascii:
				b.WriteByte(byte('a' + rng.IntN(26)))
			default:
				b.WriteRune(odd[rng.IntN(len(odd))])
			}
		}
		return b.String()
	}
	piece := func(ascii bool) string {
		switch rng.IntN(6) {
		case 0:
			return sampleOf(preT, rng, ascii)
		case 1, 2:
			return sampleOf(postT, rng, ascii)
		case 3:
			if len(looks) > 0 {
				return sampleOf(looks[rng.IntN(len(looks))], rng, ascii)
			}
		case 4:
			return randomCase(words[rng.IntN(len(words))], rng)
		}
		return junk(ascii)
	}
	var out []string
	for len(out) < n {
		ascii := rng.IntN(2) == 0
		var b strings.Builder
		if rng.IntN(3) == 0 {
			b.WriteString(junk(ascii))
		}
		if rng.IntN(2) == 0 {
			// The common case of a match: P, then what the lookaheads
			// read and Q, at the same place.
			b.WriteString(sampleOf(preT, rng, ascii))
			if len(looks) > 0 && rng.IntN(2) == 0 {
				b.WriteString(sampleOf(looks[rng.IntN(len(looks))], rng, ascii))
			} else {
				b.WriteString(sampleOf(postT, rng, ascii))
			}
		}
		for range rng.IntN(4) {
			b.WriteString(piece(ascii))
		}
		s := b.String()
		if rng.IntN(4) == 0 && len(s) > 0 {
			// One byte-rune changed, or cut off: half-words.
			i := rng.IntN(len(s))
			for i > 0 && s[i]&0xc0 == 0x80 {
				i--
			}
			if rng.IntN(2) == 0 {
				s = s[:i]
			} else {
				s = s[:i] + string(odd[rng.IntN(len(odd))]) + s[i:]
			}
		}
		out = append(out, s)
	}
	return out
}

func randomCase(s string, rng *rand.Rand) string {
	b := []rune(s)
	for i, c := range b {
		if rng.IntN(3) == 0 {
			b[i] = unicode.SimpleFold(c)
			if b[i] > 0xff {
				b[i] = c
			}
		}
	}
	return string(b)
}

// sampleOf returns a random text re matches (often, not always: the
// empty-width assertions are not kept), of byte-runes.
func sampleOf(re *syntax.Regexp, rng *rand.Rand, ascii bool) string {
	var b strings.Builder
	var gen func(re *syntax.Regexp, depth int)
	gen = func(re *syntax.Regexp, depth int) {
		if depth > 40 {
			return
		}
		reps := func(lo, hi int) int {
			if hi < 0 || hi > lo+3 {
				hi = lo + 3
			}
			return lo + rng.IntN(hi-lo+1)
		}
		switch re.Op {
		case syntax.OpLiteral:
			for _, c := range re.Rune {
				if re.Flags&syntax.FoldCase != 0 && rng.IntN(2) == 0 {
					if f := unicode.SimpleFold(c); f <= 0xff {
						c = f
					}
				}
				b.WriteRune(c)
			}
		case syntax.OpCharClass:
			var cands [][2]rune
			for i := 0; i+1 < len(re.Rune); i += 2 {
				lo, hi := re.Rune[i], min(re.Rune[i+1], 0xff)
				if ascii {
					hi = min(hi, 0x7f)
				}
				if lo <= hi {
					cands = append(cands, [2]rune{lo, hi})
				}
			}
			if len(cands) > 0 {
				c := cands[rng.IntN(len(cands))]
				b.WriteRune(c[0] + rune(rng.IntN(int(c[1]-c[0])+1)))
			}
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte(byte(' ' + rng.IntN(95)))
		case syntax.OpCapture:
			gen(re.Sub[0], depth+1)
		case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
			lo, hi := 0, -1
			switch re.Op {
			case syntax.OpPlus:
				lo = 1
			case syntax.OpQuest:
				hi = 1
			case syntax.OpRepeat:
				lo, hi = re.Min, re.Max
			}
			for range reps(lo, hi) {
				gen(re.Sub[0], depth+1)
			}
		case syntax.OpConcat:
			for _, s := range re.Sub {
				gen(s, depth+1)
			}
		case syntax.OpAlternate:
			gen(re.Sub[rng.IntN(len(re.Sub))], depth+1)
		}
	}
	gen(re, 0)
	return b.String()
}

// lookTexts are texts every rule is tried on.
var lookTexts = []string{
	"", "\n", "click here", "Click Here", "c1ick here", "cl\u00efck here", "click&nbsp;here", "\nclick\nhere\n",
	"security", "s\u00e9curit\u00e9", "securlty", "seguridad", "Secur1ty", "million", "mi11ion", "millón", "MILLI0N",
	"apple", " apple", " app1e", "app1e", "\napp1e\n", "prices", "pr1ces", "price pr1ces", "paypal", "paypa1",
	"http://www.paypal.com/", "https://x.paypal.com", "https://x.paypa1.com", "Date: +1400", "+1445", "-0030", "+9999",
	"1.0", "MIME-Version: 1.0", "1.0 (x)", "2.0", "<FONT face", "<Font face", "[ ip=1.2.3.4 rdns=localhost ]",
	"[ ip=127.0.0.1 rdns=localhost ]", "foo@offers.com", "\u00a0click here", "click\u00a0here", "click\vhere",
}

func TestLookRulesMatchRegex(t *testing.T) {
	rules := append(lookRulesOf(t, "body LOOK_%d %s", lookTestPatterns), lookRulesOf(t, "header LOOK_%d Subject =~ %s", lookTestPatterns)...)
	rules = append(rules, debianLookRules(t)...)
	var answered, hits int
	for i, r := range rules {
		rng := rand.New(rand.NewPCG(1, uint64(i)))
		texts := append(lookSamples(t, r, rng, 400), lookTexts...)
		var ans, yes, no int
		for _, s := range texts {
			for _, text := range []string{s, "\n" + s, s + "\n", "x" + s} {
				want, ok := checkLook(t, r, text)
				if ok {
					ans++
					if want {
						yes++
					} else {
						no++
					}
				}
			}
		}
		if no == 0 || ans < len(texts) {
			t.Errorf("%s: %d texts answered (%d matches, %d not) of %d", r.name, ans, yes, no, 4*len(texts))
		}
		if yes == 0 {
			t.Logf("%s: no matching text answered (%d answered)", r.name, ans)
		}
		answered += ans
		hits += yes
	}
	t.Logf("%d rules, %d texts answered, %d of them matches", len(rules), answered, hits)
	if hits < answered/20 {
		t.Errorf("only %d of %d answered texts match: the samples do not reach the rules", hits, answered)
	}
}

// TestLookParts: the shapes recognised and the ones left to regexp2.
func TestLookParts(t *testing.T) {
	for _, c := range []struct {
		pat        string
		pre, post  string
		npos, nneg int
		recognised bool
	}{
		{`a(?!b)(?=c)d`, "a", "d", 1, 1, true},
		{`(?!x)`, "", "", 0, 1, true},
		{`(?:^|\W)(?=[aA])(?!apple)[aA]pple`, `(?:^|\W)`, "[aA]pple", 1, 1, true},
		{`a(?!b)c(?!d)`, "", "", 0, 0, false},  // two places
		{`a(?!b)|c`, "", "", 0, 0, false},      // top-level alternation
		{`(?:a(?!b))c`, "", "", 0, 0, false},   // nested: not at the top
		{`a(?!b)?c`, "", "", 0, 0, false},      // a quantified lookahead
		{`(?<!a)b(?!c)`, "", "", 0, 0, false},  // lookbehind
		{`(?i)a(?!b)`, "", "", 0, 0, false},    // flags for the rest
		{`a(?m:^b)(?!c)`, "", "", 0, 0, false}, // m read for the whole pattern
		{`[(?!]x(?!y)`, `[(?!]x`, "", 0, 1, true},
		{`\(?!x(?!y)`, `\(?!x`, "", 0, 1, true},
	} {
		pre, pos, neg, post, ok := lookParts(c.pat, "")
		if ok != c.recognised || ok && (pre != c.pre || post != c.post || len(pos) != c.npos || len(neg) != c.nneg) {
			t.Errorf("lookParts(%q) = %q %q %q %q %v", c.pat, pre, pos, neg, post, ok)
		}
	}
}

// TestLookRulesInEngine: the engine's answers for rules the lookahead
// evaluation answers are the regex's.
func TestLookRulesInEngine(t *testing.T) {
	e := compile(t, `body LOOK_CLICK /(?=[cC])(?!click\s+here)[cC][lL1][iI1!][cC][kK]\s+here/i
body LOOK_APPLE /(?:^|\W)(?!apple)[aA@][pP][pP][lL1][eE3](?:$|\W)/
`, Options{})
	for _, c := range []struct {
		body string
		want []string
		not  []string
	}{
		{"please click here now", nil, []string{"LOOK_CLICK", "LOOK_APPLE"}},
		{"please cl1ck here now", []string{"LOOK_CLICK"}, []string{"LOOK_APPLE"}},
		{"an app1e a day", []string{"LOOK_APPLE"}, []string{"LOOK_CLICK"}},
		{"an apple a day, and pineapp1e", nil, []string{"LOOK_APPLE"}},
	} {
		for _, n := range []string{"LOOK_CLICK", "LOOK_APPLE"} {
			if r := e.rules[e.byName[n]]; r.btLook == nil {
				t.Fatalf("%s: no lookahead evaluation", n)
			}
		}
		res := e.Check(FromRaw([]byte("Subject: x\n\n"+c.body+"\n")), Input{})
		wantHits(t, c.body, res, c.want, c.not)
	}
}

func FuzzLookRules(f *testing.F) {
	rules := append(lookRulesOf(f, "body LOOK_%d %s", lookTestPatterns), debianLookRules(f)...)
	for _, s := range lookTexts {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 512 {
			return
		}
		for _, r := range rules {
			checkLook(t, r, s)
			checkLook(t, r, latin1(s))
		}
	})
}
