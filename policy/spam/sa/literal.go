package sa

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"
)

// Prefilter literals. A rule's regex can only match a text that contains
// one of its required literals; all rules of a kind are screened in one
// Aho-Corasick pass over the ASCII-lower-cased text, and only the
// candidates run their regex.

const (
	minLiteral  = 3   // shorter literals screen out too little
	maxLiterals = 64  // exact sets (products of classes and optionals) stay this small
	maxRequired = 512 // a required set may list this many (alternations of words)
)

// requiredLiterals returns strings, ASCII lower case, at least one of which
// occurs in every text the regex matches; nil when there is no such set.
func requiredLiterals(pattern string) []string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	return literalsOf(re.Simplify())
}

// literalsOf is requiredLiterals for a parsed, simplified regex.
func literalsOf(re *syntax.Regexp) []string {
	set := required(re, 0)
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

// maxFactors bounds the sets of factorsOf.
const maxFactors = 3

// factorsOf returns, for a parsed, simplified regex, sets of strings
// (ASCII lower case) such that every text the regex matches holds one
// string of each set: the first is literalsOf's, the others add what
// it does not imply (a rule needing "your" and "share" runs only on
// the texts with both). nil when there is no screen.
func factorsOf(re *syntax.Regexp) [][]string {
	return factorsFrom(analyse(re, 0))
}

// factorsFrom is factorsOf for what analyse found.
func factorsFrom(in info) [][]string {
	first := requiredOf(in)
	if len(first) == 0 || minLen(first) < minLiteral {
		return nil
	}
	first = dedupe(first)
	out := [][]string{first}
	cands := allOf(in)
	slices.SortStableFunc(cands, func(a, b []string) int {
		switch {
		case better(a, b):
			return -1
		case better(b, a):
			return 1
		}
		return 0
	})
	for _, set := range cands {
		if len(out) == maxFactors {
			break
		}
		set = dedupe(slices.Clone(set))
		if slices.ContainsFunc(out, func(f []string) bool { return implies(f, set) }) {
			continue
		}
		out = append(out, set)
	}
	return out
}

// maxLitSets is the most literal sets a rule's screen has (prefilter.need
// has a bit for each).
const maxLitSets = 4

// litScreen is what a variant's literals say of the texts it can match.
type litScreen struct {
	lits []string   // the first set (factorsOf)
	more [][]string // the others
	// A match holds count pairwise disjoint occurrences of the strings
	// of the set countSet (0 lits, i more[i-1]), when count > 1.
	count    int
	countSet int
	// width, when > 0, bounds the runes a match spans: it lies within
	// width of each occurrence of lits it holds (see prefilter.width).
	width int
}

// screenOf returns the literal screen of a parsed, simplified regex:
// factorsOf's sets, and the set with the most occurrences a match
// needs (repeatCount) with their number.
func screenOf(re *syntax.Regexp) litScreen {
	in := analyse(re, 0)
	f := factorsFrom(in)
	if f == nil {
		return litScreen{}
	}
	ls := litScreen{lits: f[0], more: f[1:], width: max(maxRunes(re), 0)}
	set, n := repeatCount(in)
	if n < 2 {
		return ls
	}
	set = dedupe(slices.Clone(set))
	i := slices.IndexFunc(f, func(s []string) bool { return slices.Equal(s, set) })
	if i < 0 {
		if len(f) == maxLitSets {
			return ls
		}
		i = len(f)
		ls.more = append(ls.more, set)
	}
	ls.count, ls.countSet = n, i
	return ls
}

// counted is a literal set of which every match holds n pairwise
// disjoint occurrences: n repetitions of a part that needs one of the
// set (the repetitions' spans are disjoint, each holds one).
type counted struct {
	set []string
	n   int
}

// maxCounted bounds info.cnt: the sets with the most occurrences are
// kept.
const maxCounted = 8

// repeatCount returns the set of in.cnt with the most occurrences
// (the better screen among equals), n 0 when none needs two.
func repeatCount(in info) ([]string, int) {
	var best counted
	for _, c := range in.cnt {
		if c.n > best.n || c.n == best.n && better(c.set, best.set) {
			best = c
		}
	}
	return best.set, best.n
}

// countsOf is every set a match of in needs, with how many disjoint
// occurrences: its counted sets (with their n, the most where a set
// is counted twice: both are the same span's) and its other required
// sets (once), each times n (in repeated n times).
func countsOf(in info, times int) []counted {
	var out []counted
	add := func(set []string, n int) {
		if len(set) == 0 || len(set) > maxRequired || !screenable(set) {
			return
		}
		for i := range out {
			if slices.Equal(out[i].set, set) {
				out[i].n = max(out[i].n, n*times)
				return
			}
		}
		out = append(out, counted{set, n * times})
	}
	for _, c := range in.cnt {
		add(c.set, c.n)
	}
	for _, set := range allOf(in) {
		add(set, 1)
	}
	return out
}

// sumCounts adds the counts of the parts of a concatenation (disjoint
// spans: the occurrences of a set add up), keeping those of at least
// two, the maxCounted largest.
func sumCounts(parts [][]counted) []counted {
	var out []counted
	for _, p := range parts {
		for _, c := range p {
			i := slices.IndexFunc(out, func(o counted) bool { return slices.Equal(o.set, c.set) })
			if i < 0 {
				out = append(out, c)
				continue
			}
			out[i].n += c.n
		}
	}
	return keepCounts(out)
}

// keepCounts drops the counts below two and keeps the maxCounted
// largest.
func keepCounts(cnt []counted) []counted {
	cnt = slices.DeleteFunc(cnt, func(c counted) bool { return c.n < 2 })
	if len(cnt) > maxCounted {
		slices.SortStableFunc(cnt, func(a, b counted) int { return b.n - a.n })
		cnt = cnt[:maxCounted]
	}
	return cnt
}

// implies reports whether a text holding a string of set a holds one of
// set b: each string of a contains one of b.
func implies(a, b []string) bool {
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y string) bool { return strings.Contains(x, y) }) {
			return false
		}
	}
	return true
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

// info is what a sub-expression says about the texts it matches: exact
// lists every text it can match (when few), req is a set one of which
// every match contains.
type info struct {
	exact []string
	hasEx bool
	req   []string
	// all are other sets every match needs one of (the sub-expressions'
	// that every match goes through): a text must hold one of each, so
	// together they screen more than req alone (see factorsOf).
	all [][]string
	// cnt are sets every match holds several disjoint occurrences of
	// (two at least): the repetitions of a part (X{5}, simplified to
	// XXXXX) each hold one.
	cnt []counted
}

// maxAll bounds info.all: the sets kept are the best screens.
const maxAll = 8

// addSet adds set to all when it can screen on its own, keeping the
// maxAll best.
func addSet(all [][]string, set []string) [][]string {
	if len(set) == 0 || len(set) > maxRequired || !screenable(set) {
		return all
	}
	for _, s := range all {
		if slices.Equal(s, set) {
			return all
		}
	}
	all = append(all, set)
	if len(all) > maxAll {
		worst := 0
		for i := range all {
			if better(all[worst], all[i]) {
				worst = i
			}
		}
		all = slices.Delete(all, worst, worst+1)
	}
	return all
}

// allOf is every required set in, its own req and exact included.
func allOf(in info) [][]string {
	all := slices.Clone(in.all)
	all = addSet(all, in.req)
	if in.hasEx {
		all = addSet(all, in.exact)
	}
	return all
}

func required(re *syntax.Regexp, depth int) []string {
	return requiredOf(analyse(re, depth))
}

func requiredOf(in info) []string {
	if in.hasEx && better(in.exact, in.req) {
		return in.exact
	}
	return in.req
}

func product(a, b []string) ([]string, bool) {
	if len(a)*len(b) > maxLiterals {
		return nil, false
	}
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return dedupe(out), true
}

const maxClass = 3

func analyse(re *syntax.Regexp, depth int) info {
	if depth > 100 {
		return info{}
	}
	fold := re.Flags&syntax.FoldCase != 0
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if r >= 0x80 && fold && hasOtherCase(r) {
				return info{req: literalSet(re.Rune, fold)}
			}
		}
		l := literalSet(re.Rune, fold)
		return info{exact: l, hasEx: true, req: l}
	case syntax.OpCharClass:
		var set []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi-lo >= maxClass {
				return info{}
			}
			for r := lo; r <= hi; r++ {
				if r >= 0x80 && hasOtherCase(r) && fold {
					return info{}
				}
				c := r
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				set = append(set, string(utf8.AppendRune(nil, c)))
			}
		}
		set = dedupe(set)
		if len(set) > maxClass || len(set) == 0 {
			return info{}
		}
		return info{exact: set, hasEx: true}
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return info{exact: []string{""}, hasEx: true}
	case syntax.OpCapture:
		return analyse(re.Sub[0], depth+1)
	case syntax.OpPlus:
		sub := analyse(re.Sub[0], depth+1)
		return info{req: requiredOf(sub), all: allOf(sub), cnt: sub.cnt}
	case syntax.OpQuest:
		in := analyse(re.Sub[0], depth+1)
		if in.hasEx && len(in.exact) < maxLiterals {
			return info{exact: dedupe(append([]string{""}, in.exact...)), hasEx: true}
		}
		return info{}
	case syntax.OpRepeat:
		if re.Min == 1 && re.Max == 1 {
			return analyse(re.Sub[0], depth+1)
		}
		if re.Min >= 1 {
			sub := analyse(re.Sub[0], depth+1)
			return info{req: requiredOf(sub), all: allOf(sub), cnt: keepCounts(countsOf(sub, re.Min))}
		}
		return info{}
	case syntax.OpConcat:
		var best []string
		var all [][]string
		consider := func(set []string) {
			if set != nil && better(set, best) {
				best = set
			}
			all = addSet(all, set)
		}
		cur := []string{""}
		whole := true
		var parts [][]counted
		for _, s := range re.Sub {
			if s.Op == syntax.OpPlus || s.Op == syntax.OpRepeat && s.Min >= 1 {
				// x+ starts with x and ends with x: extend the run by x,
				// then start the next run with x.
				sub := analyse(s.Sub[0], depth+1)
				for _, set := range sub.all {
					all = addSet(all, set)
				}
				if sub.hasEx {
					if p, ok := product(cur, sub.exact); ok {
						consider(nonEmpty(p))
					} else {
						consider(nonEmpty(cur))
					}
					consider(sub.req)
					cur = sub.exact
					whole = false
					times := 1
					if s.Op == syntax.OpRepeat {
						times = s.Min
					}
					parts = append(parts, countsOf(sub, times))
					continue
				}
			}
			in := analyse(s, depth+1)
			parts = append(parts, countsOf(in, 1))
			for _, set := range in.all {
				all = addSet(all, set)
			}
			if in.hasEx {
				if p, ok := product(cur, in.exact); ok {
					cur = p
					continue
				}
			}
			whole = false
			consider(nonEmpty(cur))
			consider(in.req)
			if in.hasEx {
				cur = in.exact
			} else {
				cur = []string{""}
			}
		}
		consider(nonEmpty(cur))
		cnt := sumCounts(parts)
		if whole {
			return info{exact: cur, hasEx: true, req: best, all: all, cnt: cnt}
		}
		return info{req: best, all: all, cnt: cnt}
	case syntax.OpAlternate:
		var ex, req []string
		hasEx := true
		reqOK := true
		for _, s := range re.Sub {
			in := analyse(s, depth+1)
			if in.hasEx && len(ex)+len(in.exact) <= maxLiterals {
				ex = append(ex, in.exact...)
			} else {
				hasEx = false
			}
			r := in.req
			if in.hasEx && better(in.exact, r) {
				r = in.exact
			}
			if r == nil || !screenable(r) || len(req)+len(r) > maxRequired {
				reqOK = false
			} else {
				req = append(req, r...)
			}
		}
		out := info{}
		if hasEx {
			out.exact, out.hasEx = dedupe(ex), true
		}
		if reqOK {
			out.req = dedupe(req)
		}
		return out
	}
	return info{}
}

// nonEmpty returns set unless one of its strings is empty (no screen).
func nonEmpty(set []string) []string {
	for _, s := range set {
		if s == "" {
			return nil
		}
	}
	return set
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

// maxPrefixes bounds the prefix set: each is searched for on its own.
const maxPrefixes = 4

// prefixLiterals returns strings, ASCII lower case, one of which every
// match of re (simplified) starts with; nil when there is no such short
// set. A match can then start no earlier than the first of them found in
// the text, and the automaton starts there.
func prefixLiterals(re *syntax.Regexp) []string {
	set := prefixSet(re, 0)
	if len(set) == 0 || len(set) > maxPrefixes {
		return nil
	}
	for _, s := range set {
		// At least minLiteral bytes, starting with an ASCII byte (a rune
		// boundary of the text).
		if len(s) < minLiteral || s[0] >= 0x80 {
			return nil
		}
	}
	return dedupe(set)
}

func prefixSet(re *syntax.Regexp, depth int) []string {
	if depth > 100 {
		return nil
	}
	switch re.Op {
	case syntax.OpCapture:
		return prefixSet(re.Sub[0], depth+1)
	case syntax.OpPlus:
		return prefixSet(re.Sub[0], depth+1)
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return prefixSet(re.Sub[0], depth+1)
		}
		return nil
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			p := prefixSet(s, depth+1)
			if p == nil || len(out)+len(p) > maxPrefixes {
				return nil
			}
			out = append(out, p...)
		}
		return out
	case syntax.OpConcat:
		cur := []string{""}
		for i, s := range re.Sub {
			in := analyse(s, depth+1)
			if !in.hasEx {
				if i == 0 {
					return prefixSet(s, depth+1)
				}
				break
			}
			p, ok := product(cur, in.exact)
			if !ok {
				break
			}
			cur = p
		}
		return nonEmpty(cur)
	}
	in := analyse(re, depth+1)
	if in.hasEx {
		return nonEmpty(in.exact)
	}
	return nil
}

// firstPrefix returns the first byte of text where one of the prefixes
// starts (ASCII case-insensitively), -1 when none occurs.
func firstPrefix(text string, prefixes []string) int {
	best := -1
	for _, p := range prefixes {
		end := len(text)
		if best >= 0 {
			end = min(len(text), best+len(p))
		}
		if i := indexFold(text[:end], p); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// indexFold is strings.Index with ASCII letters of text matched in
// either case; lit is lower case.
func indexFold(text, lit string) int {
	n := len(lit)
	if n == 0 || n > len(text) {
		return -1
	}
	lo, up := lit[0], lit[0]
	if lo >= 'a' && lo <= 'z' {
		up = lo - 'a' + 'A'
	}
	nextUp := -2 // not searched yet; -1 none left
	for i := 0; i <= len(text)-n; {
		j := strings.IndexByte(text[i:len(text)-n+1], lo)
		if j >= 0 {
			j += i
		}
		if up != lo {
			if nextUp != -1 && nextUp < i {
				nextUp = strings.IndexByte(text[i:len(text)-n+1], up)
				if nextUp >= 0 {
					nextUp += i
				}
			}
			if nextUp >= 0 && (j < 0 || nextUp < j) {
				j = nextUp
			}
		}
		if j < 0 {
			return -1
		}
		if equalFoldASCII(text[j+1:j+n], lit[1:]) {
			return j
		}
		i = j + 1
	}
	return -1
}

func equalFoldASCII(s, lower string) bool {
	for i := 0; i < len(lower); i++ {
		if lowerTable[s[i]] != lower[i] {
			return false
		}
	}
	return true
}

// maxWidth bounds the matches' lengths maxRunes reports.
const maxWidth = 1 << 16

// maxRunes returns the most runes a match of re can span, -1 when there
// is no bound (or it is past maxWidth).
func maxRunes(re *syntax.Regexp) int {
	n := maxRunesOf(re, 0)
	if n > maxWidth {
		return -1
	}
	return n
}

func maxRunesOf(re *syntax.Regexp, depth int) int {
	// Deep: Simplify nests x{0,80} eighty levels down.
	if depth > 1000 {
		return -1
	}
	sub := func(i int) int { return maxRunesOf(re.Sub[i], depth+1) }
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return 0
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return 1
	case syntax.OpCapture, syntax.OpQuest:
		return sub(0)
	case syntax.OpStar, syntax.OpPlus:
		if sub(0) == 0 {
			return 0
		}
		return -1
	case syntax.OpRepeat:
		n := sub(0)
		if n < 0 || re.Max < 0 && n > 0 {
			return -1
		}
		return min(n*max(re.Max, 0), maxWidth+1)
	case syntax.OpConcat:
		total := 0
		for i := range re.Sub {
			n := sub(i)
			if n < 0 {
				return -1
			}
			total = min(total+n, maxWidth+1)
		}
		return total
	case syntax.OpAlternate:
		most := 0
		for i := range re.Sub {
			n := sub(i)
			if n < 0 {
				return -1
			}
			most = max(most, n)
		}
		return most
	}
	return -1
}

// rareBytes are the punctuation bytes few paragraphs of mail hold (each
// in under a tenth of the corpus's): a string with one of them screens
// well even when shorter than minLiteral (the % of a percentage, the @
// of an address).
const rareBytes = "%@$*+#_[]{}|~^\\`"

// screenable reports whether a set can screen: each string is at least
// minLiteral long or holds a rare byte. Only the first set of a screen
// (the Aho-Corasick literals a rule is indexed by) needs long strings.
func screenable(set []string) bool {
	for _, s := range set {
		if len(s) < minLiteral && !strings.ContainsAny(s, rareBytes) {
			return false
		}
	}
	return len(set) > 0
}
