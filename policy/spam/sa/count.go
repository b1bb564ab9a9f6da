package sa

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// seqCount counts the matches of a regex that is an alternation of
// fixed-length sequences of single runes (e, [aeiou], \xc3[\xa8-\xab]|e):
// the shape of the letter-counting `tflags multiple` rules such as
// __LOWER_E and __E_LIKE_LETTER. For such a regex, Go's leftmost-first
// non-overlapping matching (FindAll) is a left-to-right walk: at each rune
// the first branch that matches there is the match, the walk resumes after
// it, else it moves on by one rune. Counting so costs a byte loop instead
// of the regexp's machine per match.
type seqCount struct {
	lit      string // the regex is this literal (strings.Count answers)
	branches [][]*syntax.Regexp
	first    [256]bool // bytes a match can start with
}

// matchCounter counts the leftmost-first non-overlapping matches of a
// regex: count(text, limit) is len(re.FindAllStringIndex(text, limit)).
type matchCounter interface {
	count(text string, limit int) int
}

// newCounter returns an exact counter for a regex of a shape count.go
// handles (seqCount, lazyCount), nil for other regexes.
func newCounter(src string) matchCounter {
	if c := newSeqCount(src); c != nil {
		return c
	}
	if c := newLazyCount(src); c != nil {
		return c
	}
	return nil
}

// maxSeqBranches bounds the branches a regex expands to (each is tried
// in turn at every candidate position).
const maxSeqBranches = 32

// newSeqCount returns the counter of a regex, nil when it is not of the
// shape seqCount handles.
func newSeqCount(src string) *seqCount {
	tree, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil
	}
	tree = tree.Simplify()
	for tree.Op == syntax.OpCapture {
		tree = tree.Sub[0]
	}
	// A plain literal is counted by strings.Count, unless it holds
	// U+FFFD, which the regexp also finds at each invalid UTF-8 byte.
	if tree.Op == syntax.OpLiteral && tree.Flags&syntax.FoldCase == 0 && len(tree.Rune) > 0 && !slices.Contains(tree.Rune, utf8.RuneError) {
		return &seqCount{lit: string(tree.Rune)}
	}
	return seqAlternation(tree, false)
}

// seqAlternation returns the seqCount of a regex that expands to an
// alternation of single-rune sequences, nil for others. Only a head
// (empty: true) may hold the empty sequence: a match of a counted regex
// is never empty (FindAll's rules for empty matches differ).
func seqAlternation(tree *syntax.Regexp, empty bool) *seqCount {
	branches, ok := expandSeqs(tree)
	if !ok || len(branches) == 0 {
		return nil
	}
	c := &seqCount{}
	for _, seq := range branches {
		if len(seq) == 0 && !empty {
			return nil
		}
		c.branches = append(c.branches, seq)
	}
	// The bytes a match can start with: the leading bytes of the UTF-8
	// form of every rune the first element of a branch accepts (invalid
	// UTF-8 decodes as RuneError, which a class may hold).
	for b := 0; b < 256; b++ {
		var r rune
		if b < utf8.RuneSelf {
			r = rune(b)
		}
		for _, seq := range c.branches {
			if len(seq) == 0 {
				c.first[b] = true
				continue
			}
			if b < utf8.RuneSelf {
				if runeIn(seq[0], r) {
					c.first[b] = true
				}
				continue
			}
			// A multi-byte or invalid sequence: keep it (rare in the
			// ASCII-heavy text, and exactness beats a finer table).
			c.first[b] = true
		}
	}
	return c
}

// expandSeqs lists the single-rune sequences a regex without repetition
// matches, in the order Go's leftmost-first (Perl) matching tries them:
// an alternation its branches in turn, a concatenation the product with
// the left part's choice the most significant, x? as x then the empty
// sequence (x?? the other way). The first sequence that matches at a
// position is so the regexp's match there. false for regexes with other
// parts (repetition, anchors) or more than maxSeqBranches sequences.
func expandSeqs(re *syntax.Regexp) ([][]*syntax.Regexp, bool) {
	switch re.Op {
	case syntax.OpCapture:
		return expandSeqs(re.Sub[0])
	case syntax.OpEmptyMatch:
		return [][]*syntax.Regexp{nil}, true
	case syntax.OpLiteral, syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		var seq []*syntax.Regexp
		if !appendSeq(&seq, re) {
			return nil, false
		}
		return [][]*syntax.Regexp{seq}, true
	case syntax.OpAlternate:
		var out [][]*syntax.Regexp
		for _, s := range re.Sub {
			l, ok := expandSeqs(s)
			if !ok || len(out)+len(l) > maxSeqBranches {
				return nil, false
			}
			out = append(out, l...)
		}
		return out, true
	case syntax.OpQuest:
		l, ok := expandSeqs(re.Sub[0])
		if !ok || len(l)+1 > maxSeqBranches {
			return nil, false
		}
		if re.Flags&syntax.NonGreedy != 0 {
			return append([][]*syntax.Regexp{nil}, l...), true
		}
		return append(l, nil), true
	case syntax.OpConcat:
		out := [][]*syntax.Regexp{nil}
		for _, s := range re.Sub {
			l, ok := expandSeqs(s)
			if !ok || len(out)*len(l) > maxSeqBranches {
				return nil, false
			}
			var next [][]*syntax.Regexp
			for _, a := range out {
				for _, b := range l {
					next = append(next, append(slices.Clip(a), b...))
				}
			}
			out = next
		}
		return out, true
	}
	return nil, false
}

// appendSeq flattens a branch into single-rune elements; false when some
// part does not match exactly one rune.
func appendSeq(seq *[]*syntax.Regexp, re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpCapture:
		return appendSeq(seq, re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !appendSeq(seq, s) {
				return false
			}
		}
		return true
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			*seq = append(*seq, &syntax.Regexp{Op: syntax.OpLiteral, Rune: []rune{r}, Flags: re.Flags & syntax.FoldCase})
		}
		return true
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		*seq = append(*seq, re)
		return true
	}
	return false
}

// runeIn reports whether a single-rune element accepts r, as the regexp
// machine decides (syntax.Inst.MatchRune).
func runeIn(re *syntax.Regexp, r rune) bool {
	switch re.Op {
	case syntax.OpAnyChar:
		return true
	case syntax.OpAnyCharNotNL:
		return r != '\n'
	case syntax.OpLiteral:
		l := re.Rune[0]
		if r == l {
			return true
		}
		if re.Flags&syntax.FoldCase != 0 {
			for f := unicode.SimpleFold(l); f != l; f = unicode.SimpleFold(f) {
				if f == r {
					return true
				}
			}
		}
		return false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if r < re.Rune[i] {
				return false
			}
			if r <= re.Rune[i+1] {
				return true
			}
		}
	}
	return false
}

// count returns the number of non-overlapping leftmost-first matches in
// text, at most limit: what len(re.FindAllStringIndex(text, limit)) is.
func (c *seqCount) count(text string, limit int) int {
	if limit <= 0 {
		limit = -1 // FindAll: all matches
	}
	if c.lit != "" {
		if limit < 0 {
			return strings.Count(text, c.lit)
		}
		n := 0
		for n < limit {
			i := strings.Index(text, c.lit)
			if i < 0 {
				break
			}
			n++
			text = text[i+len(c.lit):]
		}
		return n
	}
	n := 0
	for i := 0; i < len(text) && n != limit; {
		if !c.first[text[i]] {
			i++
			continue
		}
		end := c.matchAt(text, i)
		if end < 0 {
			_, w := utf8.DecodeRuneInString(text[i:])
			i += w
			continue
		}
		n++
		i = end
	}
	return n
}

// matchAt returns the end of the first branch matching at i, -1 for none.
func (c *seqCount) matchAt(text string, i int) int {
	for _, seq := range c.branches {
		if j := seqAt(seq, text, i); j >= 0 {
			return j
		}
	}
	return -1
}

// seqAt returns the end of a single-rune sequence matching at i, -1 when
// it does not.
func seqAt(seq []*syntax.Regexp, text string, i int) int {
	for _, el := range seq {
		if i >= len(text) {
			return -1
		}
		r, w := utf8.DecodeRuneInString(text[i:])
		if !runeIn(el, r) {
			return -1
		}
		i += w
	}
	return i
}

// lazyCount counts the matches of ^H.*?T: a regex anchored at the start
// of each line ((?m)^) or of the text (\A), whose head H and tail T
// expand to single-rune sequences (expandSeqs) around one lazy .*? that
// does not cross a line break: the shape of __HAS_HREF and __HAS_IMG_SRC.
// A match can only start at a line start; there, leftmost-first
// matching takes H's first branch that fits, then the shortest run of
// the line after which a branch of T fits (T's first such branch), else
// H's next branch. The next match is searched from the end of this one,
// so at the first line start at or after it. Each line is scanned once
// per branch of H (a head that takes the line break: twice).
type lazyCount struct {
	atText bool      // \A: only at the start of the text
	head   *seqCount // nil: H is empty
	tail   *seqCount
}

// newLazyCount returns the counter of a regex, nil when it is not of the
// shape lazyCount handles.
func newLazyCount(src string) *lazyCount {
	tree, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil
	}
	tree = tree.Simplify()
	for tree.Op == syntax.OpCapture {
		tree = tree.Sub[0]
	}
	if tree.Op != syntax.OpConcat || len(tree.Sub) < 3 {
		return nil
	}
	c := &lazyCount{}
	switch tree.Sub[0].Op {
	case syntax.OpBeginText:
		c.atText = true
	case syntax.OpBeginLine:
	default:
		return nil
	}
	star := -1
	for i, s := range tree.Sub {
		if s.Op == syntax.OpStar {
			if star >= 0 {
				return nil
			}
			star = i
		}
	}
	if star < 0 {
		return nil
	}
	st := tree.Sub[star]
	if st.Flags&syntax.NonGreedy == 0 || st.Sub[0].Op != syntax.OpAnyCharNotNL {
		return nil
	}
	if star > 1 {
		head := &syntax.Regexp{Op: syntax.OpConcat, Sub: tree.Sub[1:star]}
		if c.head = seqAlternation(head, true); c.head == nil {
			return nil
		}
	}
	if star == len(tree.Sub)-1 {
		return nil
	}
	tail := &syntax.Regexp{Op: syntax.OpConcat, Sub: tree.Sub[star+1:]}
	if c.tail = seqAlternation(tail, false); c.tail == nil {
		return nil
	}
	return c
}

// count returns the number of non-overlapping leftmost-first matches in
// text, at most limit: what len(re.FindAllStringIndex(text, limit)) is.
func (c *lazyCount) count(text string, limit int) int {
	if limit <= 0 {
		limit = -1
	}
	n := 0
	for p := 0; p <= len(text) && n != limit; {
		// p is a line start at or after the end of the last match.
		from := p
		if end := c.matchAt(text, p); end >= 0 {
			n++
			if c.atText {
				break
			}
			if text[end-1] == '\n' {
				p = end
				continue
			}
			from = end
		}
		if c.atText {
			break
		}
		i := strings.IndexByte(text[from:], '\n')
		if i < 0 {
			break
		}
		p = from + i + 1
	}
	return n
}

// matchAt returns the end of the match starting at p, -1 for none.
func (c *lazyCount) matchAt(text string, p int) int {
	nh := 1
	if c.head != nil {
		nh = len(c.head.branches)
	}
	for h := range nh {
		q := p
		if c.head != nil {
			if q = seqAt(c.head.branches[h], text, p); q < 0 {
				continue
			}
		}
		for k := q; k < len(text); {
			if c.tail.first[text[k]] {
				if end := c.tail.matchAt(text, k); end >= 0 {
					return end
				}
			}
			r, w := utf8.DecodeRuneInString(text[k:])
			if r == '\n' {
				break
			}
			k += w
		}
	}
	return -1
}

// startAnchor reports how every match of a regex is anchored at its
// start: text (^ without /m, \A: one match at most in any text), line
// (^ with /m: one match at most in a text without a line break).
func startAnchor(src string) (text, line bool) {
	tree, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return false, false
	}
	text, line = true, true
	var walk func(re *syntax.Regexp)
	walk = func(re *syntax.Regexp) {
		for re.Op == syntax.OpCapture {
			re = re.Sub[0]
		}
		switch re.Op {
		case syntax.OpAlternate:
			for _, s := range re.Sub {
				walk(s)
			}
			return
		case syntax.OpConcat:
			if len(re.Sub) > 0 {
				walk(re.Sub[0])
				return
			}
		case syntax.OpBeginText:
			return
		case syntax.OpBeginLine:
			text = false
			return
		}
		text, line = false, false
	}
	walk(tree)
	return text, line
}

// lineCount counts the matches of a regex that can only match from a
// line start ((?m)^ first in every branch), of any shape: the regexp's
// FindAll runs its machine over the whole text (for the large
// alternations of __FILL_THIS_FORM_PARTIAL_RAW, the costliest count of
// the Debian rules), where an automaton anchored at each line start
// dies within a few bytes on most lines. Where it says a match starts,
// the regexp, run from there, gives the match's end; the next match is
// searched from the first line start at or after it, as FindAll does.
// From a line start, the regexp sees what it would in the whole text
// (^ matches, \b sees a non-word byte before), so it runs on the rest
// of the text; a regex with \A, which does not, gets no lineCount.
type lineCount struct {
	re  *lazyRE
	dfa *dfa // anchored: a match starts where the scan does
}

// newLineCount returns the counter of a line-anchored regex (see
// startAnchor) without \A, nil for others.
func newLineCount(l *lazyRE) *lineCount {
	tree, err := syntax.Parse(l.src, syntax.Perl)
	if err != nil || hasBeginText(tree) {
		return nil
	}
	if text, line := startAnchor(l.src); text || !line {
		return nil
	}
	src := l.src
	return &lineCount{re: l, dfa: anchoredDFA(func() *syntax.Regexp {
		t, _ := syntax.Parse(src, syntax.Perl)
		return t
	})}
}

func hasBeginText(re *syntax.Regexp) bool {
	if re.Op == syntax.OpBeginText {
		return true
	}
	return slices.ContainsFunc(re.Sub, hasBeginText)
}

func (c *lineCount) count(text string, limit int) int {
	re := c.re.get()
	if limit == 0 || re == nil {
		return 0
	}
	n := 0
	for p := 0; p <= len(text) && n != limit; {
		// p is a line start at or after the end of the last match.
		m, ok := c.dfa.matchAt(text, p)
		if !ok {
			// The automaton gave up: the regexp finds the rest.
			return n + len(re.FindAllStringIndex(text[p:], limit-n))
		}
		from := p
		if m {
			loc := re.FindStringIndex(text[p:])
			if loc == nil || loc[0] != 0 || loc[1] == 0 {
				// Not the match the automaton saw, or an empty one
				// (FindAll skips those next to a match): the
				// regexp counts them all.
				return len(re.FindAllStringIndex(text, limit))
			}
			n++
			end := p + loc[1]
			if text[end-1] == '\n' {
				p = end
				continue
			}
			from = end
		}
		i := strings.IndexByte(text[from:], '\n')
		if i < 0 {
			break
		}
		p = from + i + 1
	}
	return n
}
