package sa

import (
	"fmt"
	"regexp/syntax"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
	btsyntax "github.com/dlclark/regexp2/v2/syntax"
)

// Lookahead rules without the backtracking engine. Many backtracking
// rules need it only for lookaheads that all stand at one place of the
// pattern, at its top level:
//
//	P (?=A1)...(?!L1)...(?!Lk) Q
//
// with P, every A and L, and Q free of lookarounds and backreferences
// (the FUZZY_* obfuscation rules: (?!click(?:\s|&nbsp;)here)<C><L>...,
// where Q matches the plain word too). Such a regex matches a text iff
// some place q has a match of P that ends at q, a match of every A and
// of Q that starts at q, and no match of any L that starts at q (on the
// rest of the text, not only within Q's match): backtracking tries
// every match of P, and a lookahead is a search anchored at q. Each part
// is an anchored automaton run at the places that can be q; P runs
// backwards from q (see scanBack). The RE2 screen (lookaheads
// dropped) passed every text with the plain word, and the backtracking
// engine then read the whole text to find nothing.
//
// The parts are read as the backtracking engine reads them: \s \w \d
// and their negations are the byte-runes (see latin1) regexp2's classes
// hold, not RE2's ASCII ones. \b and \B are ASCII in the automata: a
// rule with them answers only for texts whose non-ASCII runes are no
// word characters to regexp2. Texts with bytes other than ASCII and
// latin1 pairs, and multiple-hit rules, are left to regexp2.

// lookRule is the evaluation of one rule of that shape.
type lookRule struct {
	v [2]lookVariant // for any text, for ASCII text
	// asciiWord: the parts use \b or \B, which the automata read on
	// ASCII word bytes only.
	asciiWord bool
	// atStart: P is ^ (the start of the text, or of a line with lineP).
	atStart, lineP bool
}

// lookVariant is lookRule's automata for one kind of text.
type lookVariant struct {
	never bool // P, Q or an A cannot match this kind of text
	pre   *dfa // reversed P, anchored; nil when P is empty or ^
	post  *dfa
	pos   []*dfa
	neg   []*dfa // nil entries: the L cannot match this kind of text
	// at, when not nil, holds the symbols (bytes and badRune) that can
	// start a match of each of Q and the As that do not match the empty
	// text; last, when not nil, those a match of P (not empty) can end
	// with.
	at, last *[badRune + 1]bool
}

// maxLookScan bounds the bytes the automata read for one text, as a
// multiple of its length: past it the backtracking engine answers
// (a P or an L that scans to the end from every candidate).
const maxLookScan = 8

// lookParts splits a rule's Perl pattern at its top-level lookaheads;
// ok is false for any other shape.
func lookParts(pat, flags string) (pre string, pos, neg []string, post string, ok bool) {
	if strings.ContainsRune(flags, 'x') || strings.Contains(pat, `\Q`) {
		return
	}
	first, last := -1, -1
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '\\':
			i++
		case '|':
			return
		case '[':
			end := classEnd(pat, i)
			if end < 0 {
				return
			}
			i = end
		case '(':
			end := groupEnd(pat, i)
			if end < 0 {
				return
			}
			g := pat[i:end]
			isLook := strings.HasPrefix(g, "(?=") || strings.HasPrefix(g, "(?!")
			switch {
			case isLook:
				if last >= 0 && last != i {
					return // lookaheads at two places
				}
				if end+1 < len(pat) && strings.IndexByte("*+?{", pat[end+1]) >= 0 {
					return
				}
				if first < 0 {
					first = i
				}
				last = end + 1
				if g[2] == '=' {
					pos = append(pos, g[3:])
				} else {
					neg = append(neg, g[3:])
				}
			case strings.HasPrefix(g, "(?<=") || strings.HasPrefix(g, "(?<!"):
				return
			case strings.HasPrefix(g, "(?") && !strings.HasPrefix(g, "(?:") && !strings.HasPrefix(g, "(?>") &&
				!strings.HasPrefix(g, "(?#") && !strings.HasPrefix(g, "(?<") && !strings.HasPrefix(g, "(?P<") && !strings.HasPrefix(g, "(?'"):
				// Inline flags: one that changes the rest of the
				// pattern, or m and x, which translate reads for the
				// whole pattern, would not split.
				j := 2
				for j < len(g) && strings.IndexByte("imsxnpadlu^-", g[j]) >= 0 {
					j++
				}
				if j >= len(g) || g[j] == ')' || strings.ContainsAny(g[2:j], "mx") {
					return
				}
			}
			i = end
		}
	}
	if first < 0 {
		return
	}
	// m or x inside a group: see above.
	for i := strings.Index(pat, "(?"); i >= 0; {
		j := i + 2
		for j < len(pat) && strings.IndexByte("imsxnpadlu^-", pat[j]) >= 0 {
			j++
		}
		if strings.ContainsAny(pat[i+2:j], "mx") && (i == 0 || pat[i-1] != '\\') {
			return
		}
		k := strings.Index(pat[i+2:], "(?")
		if k < 0 {
			break
		}
		i += 2 + k
	}
	return pat[:first], pos, neg, pat[last:], true
}

// classEnd returns the index of the ] closing the class opened at p[i].
func classEnd(p string, i int) int {
	j := i + 1
	if j < len(p) && p[j] == '^' {
		j++
	}
	if j < len(p) && p[j] == ']' {
		j++
	}
	for ; j < len(p); j++ {
		switch p[j] {
		case '\\':
			j++
		case '[':
			if j+1 < len(p) && p[j+1] == ':' {
				if k := strings.Index(p[j+2:], ":]"); k >= 0 {
					j += k + 3
				}
			}
		case ']':
			return j
		}
	}
	return -1
}

// newLookRule returns the evaluation of a rule's regex, nil when it is
// not of the shape.
func newLookRule(pattern string) *lookRule {
	pat, flags, err := SplitRegex(pattern)
	if err != nil {
		return nil
	}
	pre, pos, neg, post, ok := lookParts(pat, flags)
	if !ok {
		return nil
	}
	l := &lookRule{}
	// parsed holds each part's tree, parsed once here; the automata
	// parse theirs again on first use (see dfa.release).
	parsed := map[string]*syntax.Regexp{}
	part := func(p string) (string, bool) {
		re2, err := translate(p, flags, targetRE2)
		if err != nil || strings.Contains(re2, `\p`) || strings.Contains(re2, `\P`) {
			return "", false
		}
		src, word := btClasses(re2)
		l.asciiWord = l.asciiWord || word
		t, err := syntax.Parse(src, syntax.Perl)
		if err != nil {
			return "", false
		}
		parsed[src] = t
		return src, true
	}
	preSrc, ok := part(pre)
	if !ok {
		return nil
	}
	postSrc, ok := part(post)
	if !ok {
		return nil
	}
	var posSrc, negSrc []string
	for _, p := range pos {
		s, ok := part(p)
		if !ok {
			return nil
		}
		posSrc = append(posSrc, s)
	}
	for _, p := range neg {
		s, ok := part(p)
		if !ok {
			return nil
		}
		negSrc = append(negSrc, s)
	}
	preTree := parsed[preSrc].Simplify()
	switch preTree.Op {
	case syntax.OpBeginText:
		l.atStart = true
	case syntax.OpBeginLine:
		l.atStart, l.lineP = true, true
	}
	preEmpty := preTree.Op == syntax.OpEmptyMatch
	for vi := range 2 {
		ascii := vi == 1
		v := &l.v[vi]
		// build returns a part's tree for this variant, parsing it
		// again: nil when it cannot match this kind of text.
		build := func(src string, reverse bool) *syntax.Regexp {
			t, err := syntax.Parse(src, syntax.Perl)
			if err != nil {
				return nil
			}
			return variantTree(t, ascii, reverse)
		}
		tree := func(src string, reverse bool) *syntax.Regexp {
			return variantTree(parsed[src], ascii, reverse)
		}
		// auto is the automaton of a part whose tree for this variant
		// is t.
		auto := func(t *syntax.Regexp, src string, reverse bool) *dfa {
			if t == nil {
				return nil
			}
			return anchoredDFA(func() *syntax.Regexp { return build(src, reverse) })
		}
		var at *[badRune + 1]bool
		narrow := func(t *syntax.Regexp) {
			s, nullable := firstSet(t)
			if nullable {
				return
			}
			if at == nil {
				at = &s
				return
			}
			for c := range at {
				at[c] = at[c] && s[c]
			}
		}
		pt := tree(postSrc, false)
		if pt == nil {
			v.never = true
			continue
		}
		narrow(pt)
		v.post = auto(pt, postSrc, false)
		for _, s := range posSrc {
			t := tree(s, false)
			if t == nil {
				v.never = true
				break
			}
			narrow(t)
			v.pos = append(v.pos, auto(t, s, false))
		}
		if v.never {
			continue
		}
		for _, s := range negSrc {
			v.neg = append(v.neg, auto(tree(s, false), s, false))
		}
		v.at = at
		if !preEmpty && !l.atStart {
			rt := tree(preSrc, true)
			if rt == nil {
				v.never = true
				continue
			}
			if s, nullable := firstSet(rt); !nullable {
				v.last = &s
			}
			v.pre = auto(rt, preSrc, true)
		}
	}
	return l
}

// variantTree is t for a variant (ascii: restricted to ASCII text, nil
// when it cannot match one), simplified, reversed for P.
func variantTree(t *syntax.Regexp, ascii, reverse bool) *syntax.Regexp {
	if ascii {
		if t = asciiOnly(t); t == nil {
			return nil
		}
	}
	t = t.Simplify()
	if reverse {
		t = reverseTree(t)
	}
	return t
}

// dfas returns the rule's automata (for the engine's budget).
func (l *lookRule) dfas() []*dfa {
	var ds []*dfa
	for vi := range l.v {
		v := &l.v[vi]
		ds = append(ds, v.pre, v.post)
		ds = append(ds, v.pos...)
		ds = append(ds, v.neg...)
	}
	return ds
}

// match answers for the rule's regex on text, a string of byte-runes;
// ok is false where it cannot (an automaton gave up, a word character
// regexp2 reads other than the automata do, too much scanning).
func (l *lookRule) match(text string, ascii bool) (matched, ok bool) {
	v := &l.v[b2i(ascii)]
	if v.never {
		return false, true
	}
	if l.asciiWord && !ascii {
		for i := 0; i < len(text); i++ {
			if text[i] < 0x80 {
				continue
			}
			c, size := byteRune(text[i:])
			if size == 0 || btWordRune(c) {
				return false, false
			}
			i += size - 1
		}
	}
	sc := lookScan{text: text, budget: maxLookScan*len(text) + 256}
	if ascii && !l.atStart {
		// The common case, one byte a symbol: a tight loop.
		at, last := v.at, v.last
		for q := 0; q <= len(text); q++ {
			if last != nil && (q == 0 || !last[text[q-1]]) {
				continue
			}
			if at != nil && (q == len(text) || !at[text[q]]) {
				continue
			}
			if m, ok := sc.matchAt(v, q); !ok || m {
				return m, ok
			}
		}
		return false, true
	}
	prev := -1 // the symbol before q, -1 at the start
	for q := 0; q <= len(text); {
		c, size := -1, 0
		if q < len(text) {
			c, size = int(text[q]), 1
			if c >= 0x80 {
				// Byte-runes only: ASCII and latin1 pairs (see
				// scanBack); a text with other bytes goes to regexp2.
				if c, size = byteRune(text[q:]); size != 2 {
					return false, false
				}
			}
		}
		cand := true
		switch {
		case l.atStart:
			cand = q == 0 || l.lineP && prev == '\n'
		case v.last != nil && (prev < 0 || !v.last[prev]):
			cand = false
		}
		if cand && v.at != nil && (c < 0 || !v.at[c]) {
			cand = false
		}
		if cand {
			m, ok := sc.matchAt(v, q)
			if !ok {
				return false, false
			}
			if m {
				return true, true
			}
		}
		if c < 0 || l.atStart && !l.lineP {
			break
		}
		prev = c
		q += size
	}
	return false, true
}

// lookScan is one text's evaluation: the bytes the automata may still
// read.
type lookScan struct {
	text   string
	budget int
}

// run reports whether d matches at p, charging the bytes it read; ok is
// false when it gave up or the budget is spent.
func (sc *lookScan) run(d *dfa, p int) (m, ok bool) {
	m, ok, end := d.scanAt(sc.text, p)
	sc.budget -= end - p + 1
	return m, ok && sc.budget >= 0
}

// matchAt reports whether the parts match at q (P, if any, ending there).
func (sc *lookScan) matchAt(v *lookVariant, q int) (matched, ok bool) {
	if m, ok := sc.run(v.post, q); !ok || !m {
		return false, ok
	}
	for _, d := range v.pos {
		if m, ok := sc.run(d, q); !ok || !m {
			return false, ok
		}
	}
	for _, d := range v.neg {
		if d == nil {
			continue
		}
		if m, ok := sc.run(d, q); !ok || m {
			return false, ok
		}
	}
	if v.pre == nil {
		return true, true
	}
	m, ok, end := v.pre.scanBack(sc.text, q)
	sc.budget -= q - end + 1
	return m, ok && sc.budget >= 0
}

// reverseTree returns a regex that matches the reversed texts re
// matches: concatenations and literals reversed, the start and end
// assertions swapped.
func reverseTree(re *syntax.Regexp) *syntax.Regexp {
	c := *re
	switch re.Op {
	case syntax.OpLiteral:
		c.Rune = make([]rune, len(re.Rune))
		for i, r := range re.Rune {
			c.Rune[len(re.Rune)-1-i] = r
		}
		return &c
	case syntax.OpBeginLine:
		c.Op = syntax.OpEndLine
		return &c
	case syntax.OpEndLine:
		c.Op = syntax.OpBeginLine
		return &c
	case syntax.OpBeginText:
		c.Op = syntax.OpEndText
		c.Flags &^= syntax.WasDollar
		return &c
	case syntax.OpEndText:
		c.Op = syntax.OpBeginText
		return &c
	}
	if len(re.Sub) > 0 {
		c.Sub = make([]*syntax.Regexp, len(re.Sub))
		for i, s := range re.Sub {
			c.Sub[i] = reverseTree(s)
		}
		if re.Op == syntax.OpConcat {
			for i, j := 0, len(c.Sub)-1; i < j; i, j = i+1, j-1 {
				c.Sub[i], c.Sub[j] = c.Sub[j], c.Sub[i]
			}
		}
	}
	return &c
}

// firstSet returns the symbols (bytes, badRune) a match of re can start
// with, and whether re matches the empty text (then any place can start
// one). It may hold more than those, never fewer.
func firstSet(re *syntax.Regexp) (set [badRune + 1]bool, nullable bool) {
	all := func() {
		for c := range set {
			set[c] = true
		}
	}
	switch re.Op {
	case syntax.OpNoMatch:
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		nullable = true
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return set, true
		}
		in := syntax.Inst{Op: syntax.InstRune, Rune: re.Rune[:1]}
		if re.Flags&syntax.FoldCase != 0 {
			in.Arg = uint32(syntax.FoldCase)
		}
		b := byteSetOf(&in)
		for c := range set {
			set[c] = b.has(c)
		}
	case syntax.OpCharClass:
		in := syntax.Inst{Op: syntax.InstRune, Rune: re.Rune}
		if len(re.Rune) == 0 {
			return
		}
		b := byteSetOf(&in)
		for c := range set {
			set[c] = b.has(c)
		}
	case syntax.OpAnyChar:
		all()
	case syntax.OpAnyCharNotNL:
		all()
		set['\n'] = false
	case syntax.OpCapture, syntax.OpPlus:
		return firstSet(re.Sub[0])
	case syntax.OpStar, syntax.OpQuest:
		set, _ = firstSet(re.Sub[0])
		nullable = true
	case syntax.OpRepeat:
		set, nullable = firstSet(re.Sub[0])
		nullable = nullable || re.Min == 0
	case syntax.OpConcat:
		nullable = true
		for _, s := range re.Sub {
			f, n := firstSet(s)
			for c := range set {
				set[c] = set[c] || f[c]
			}
			if !n {
				nullable = false
				break
			}
		}
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			f, n := firstSet(s)
			for c := range set {
				set[c] = set[c] || f[c]
			}
			nullable = nullable || n
		}
	default:
		all()
		nullable = true
	}
	return
}

// btClassSets are the byte-runes (0..255 and badRune, for U+FFFD) that
// regexp2's \s, \w and \d match, asked of regexp2 itself.
var btClassSets = sync.OnceValue(func() map[byte]*[badRune + 1]bool {
	sets := map[byte]*[badRune + 1]bool{}
	for _, e := range "swdSWD" {
		re := regexp2.MustCompile(`^\` + string(e) + `$`)
		var s [badRune + 1]bool
		for c := range badRune + 1 {
			r := rune(c)
			if c == badRune {
				r = utf8.RuneError
			}
			s[c], _ = re.MatchString(string(r))
		}
		sets[byte(e)] = &s
	}
	return sets
})

// btWordRune reports whether regexp2's \b reads byte-rune c (c >= 0x80,
// or badRune) as a word character, which the automata do not.
func btWordRune(c int) bool {
	if c == badRune {
		return btsyntax.IsWordChar(utf8.RuneError)
	}
	return btsyntax.IsWordChar(rune(c))
}

// btClasses rewrites \s \w \d and their negations in RE2 syntax as the
// byte-runes regexp2's classes hold, and reports whether src uses \b or
// \B.
func btClasses(src string) (out string, word bool) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\\' && i+1 < len(src):
			e := src[i+1]
			i++
			if s := btClassSets()[e]; s != nil {
				if !inClass {
					b.WriteByte('[')
				}
				writeRuneSet(&b, s)
				if !inClass {
					b.WriteByte(']')
				}
				continue
			}
			if e == 'b' || e == 'B' {
				word = word || !inClass
			}
			b.WriteByte('\\')
			b.WriteByte(e)
		case inClass:
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			b.WriteByte(c)
			if i+1 < len(src) && src[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(src) && src[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), word
}

// writeRuneSet writes the members of s as class items.
func writeRuneSet(b *strings.Builder, s *[badRune + 1]bool) {
	for c := 0; c < badRune; c++ {
		if !s[c] {
			continue
		}
		e := c
		for e+1 < badRune && s[e+1] {
			e++
		}
		fmt.Fprintf(b, `\x{%x}`, c)
		if e > c {
			fmt.Fprintf(b, `-\x{%x}`, e)
		}
		c = e
	}
	if s[badRune] {
		b.WriteString(`\x{fffd}`)
	}
}
