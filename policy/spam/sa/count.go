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
	alts := []*syntax.Regexp{tree}
	if tree.Op == syntax.OpAlternate {
		alts = tree.Sub
	}
	c := &seqCount{}
	for _, a := range alts {
		var seq []*syntax.Regexp
		if !appendSeq(&seq, a) || len(seq) == 0 {
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
next:
	for _, seq := range c.branches {
		j := i
		for _, el := range seq {
			if j >= len(text) {
				continue next
			}
			r, w := utf8.DecodeRuneInString(text[j:])
			if !runeIn(el, r) {
				continue next
			}
			j += w
		}
		return j
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
