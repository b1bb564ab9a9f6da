package sa

import (
	"regexp/syntax"
	"unicode/utf8"
)

// Prefilter literals. A rule's regex can only match a text that contains
// one of its required literals; all rules of a kind are screened in one
// Aho-Corasick pass over the ASCII-lower-cased text, and only the
// candidates run their regex.

const (
	minLiteral  = 3  // shorter literals screen out too little
	maxLiterals = 64 // an alternation of more is not worth the automaton
)

// requiredLiterals returns strings, ASCII lower case, at least one of which
// occurs in every text the regex matches; nil when there is no such set.
func requiredLiterals(pattern string) []string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	set := required(re.Simplify(), 0)
	if len(set) == 0 {
		return nil
	}
	for _, s := range set {
		if len(s) < minLiteral {
			return nil
		}
	}
	return dedupe(set)
}

func dedupe(set []string) []string {
	seen := map[string]bool{}
	out := set[:0]
	for _, s := range set {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func minLen(set []string) int {
	m := -1
	for _, s := range set {
		if m < 0 || len(s) < m {
			m = len(s)
		}
	}
	return m
}

// better reports whether set a screens better than b.
func better(a, b []string) bool {
	if b == nil {
		return a != nil
	}
	if a == nil {
		return false
	}
	ma, mb := minLen(a), minLen(b)
	if ma >= minLiteral != (mb >= minLiteral) {
		return ma >= minLiteral
	}
	if ma != mb {
		return ma > mb
	}
	return len(a) < len(b)
}

func required(re *syntax.Regexp, depth int) []string {
	if depth > 100 {
		return nil
	}
	switch re.Op {
	case syntax.OpLiteral:
		return literalSet(re.Rune, re.Flags&syntax.FoldCase != 0)
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0], depth+1)
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0], depth+1)
		}
		return nil
	case syntax.OpConcat:
		var best []string
		for _, s := range re.Sub {
			if set := required(s, depth+1); better(set, best) {
				best = set
			}
		}
		return best
	case syntax.OpAlternate:
		var all []string
		for _, s := range re.Sub {
			set := required(s, depth+1)
			if set == nil || minLen(set) < minLiteral {
				return nil
			}
			all = append(all, set...)
			if len(all) > maxLiterals {
				return nil
			}
		}
		return all
	}
	return nil
}

// literalSet turns a literal into its screening string: the text is
// matched as one rune per byte and screened in ASCII lower case, so a
// case-folded literal keeps only its longest run without letters beyond
// ASCII (whose other case the screen would miss).
func literalSet(runes []rune, fold bool) []string {
	var best, cur []byte
	flush := func() {
		if len(cur) > len(best) {
			best = append(best[:0], cur...)
		}
		cur = cur[:0]
	}
	for _, r := range runes {
		if r >= 0x80 && fold && hasOtherCase(r) {
			flush()
			continue
		}
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		cur = utf8.AppendRune(cur, r)
	}
	flush()
	if len(best) == 0 {
		return nil
	}
	return []string{string(best)}
}

func hasOtherCase(r rune) bool {
	// The Latin-1 letters and anything beyond may fold.
	return r >= 0xb5
}
