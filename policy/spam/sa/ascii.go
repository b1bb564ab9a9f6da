package sa

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Most lines of most messages are pure ASCII. For those, each regex has
// an ASCII variant: the same regex with every branch, literal and class
// member that can only match a byte above 0x7f removed. On ASCII text it
// matches exactly what the full regex matches, but it is much smaller (the
// obfuscation classes of the fuzzy rules shrink to [aA@4] and the like)
// and it often yields screening literals where the full one has none.

// asciiOnly returns re restricted to ASCII text, or nil when re cannot
// match ASCII text at all.
func asciiOnly(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if r >= 0x80 {
				return nil
			}
		}
		return re
	case syntax.OpCharClass:
		var rs []rune
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if lo >= 0x80 {
				continue
			}
			rs = append(rs, lo, min(hi, 0x7f))
		}
		if len(rs) == 0 {
			return nil
		}
		c := *re
		c.Rune = rs
		return &c
	case syntax.OpCapture:
		sub := asciiOnly(re.Sub[0])
		if sub == nil {
			return nil
		}
		c := *re
		c.Sub = []*syntax.Regexp{sub}
		return &c
	case syntax.OpStar, syntax.OpQuest, syntax.OpPlus, syntax.OpRepeat:
		sub := asciiOnly(re.Sub[0])
		if sub == nil {
			if re.Op == syntax.OpPlus || re.Op == syntax.OpRepeat && re.Min > 0 {
				return nil
			}
			return &syntax.Regexp{Op: syntax.OpEmptyMatch}
		}
		c := *re
		c.Sub = []*syntax.Regexp{sub}
		return &c
	case syntax.OpConcat:
		subs := make([]*syntax.Regexp, 0, len(re.Sub))
		for _, s := range re.Sub {
			a := asciiOnly(s)
			if a == nil {
				return nil
			}
			subs = append(subs, a)
		}
		c := *re
		c.Sub = subs
		return &c
	case syntax.OpAlternate:
		var subs []*syntax.Regexp
		for _, s := range re.Sub {
			if a := asciiOnly(s); a != nil {
				subs = append(subs, a)
			}
		}
		switch len(subs) {
		case 0:
			return nil
		case 1:
			return subs[0]
		}
		c := *re
		c.Sub = subs
		return &c
	}
	return re
}

// variant is one compiled form of a rule's regex with its screen.
type variant struct {
	re     *lazyRE
	screen *regexp.Regexp
	dfa    *dfa // the fast "any match" answer
	// dfaExact: the automaton is the regex itself, not a screen of it.
	dfaExact bool
	// ruleExact: for a backtracking rule, the automaton is the rule's
	// own regex (RE2 could run it but for its size): its answer is the
	// rule's, and the backtracking engine runs only where it gives up.
	ruleExact bool
	// litScreen: the literal sets a text must hold one string of each
	// of (factorsOf), and how many occurrences of one of them.
	litScreen
	never bool // cannot match this kind of text
	// prefix, when set, lists strings one of which every match of the
	// automaton's regex starts with: it starts at the first found.
	prefix []string
	// lineStart, when set (and prefix not), says every match starts at
	// the start of a line, (?m)^ (the text's or after a newline): the
	// anchored automaton runs at each.
	lineStart bool
	// startBytes, when set (and prefix and lineStart not), lists the
	// bytes one of which every match starts with (the \n of a header
	// name, the < of a tag): the anchored automaton runs at each.
	startBytes string
	// adfa is the automaton anchored at a prefix: run where each prefix
	// occurs, it stops at the first byte no match can go on with, where
	// the unanchored one scans to the end of the text (see prefixMatch).
	adfa *dfa
	// screenDFA is screen's automaton: it answers for the screen when
	// the regex's own automaton gave up (too many states), as for the
	// large repeated alternations of the __FILL_THIS_FORM rules.
	screenDFA *dfa
	// screenMin is the n of X{n,}: a text that screenDFA finds fewer
	// than n disjoint matches of cannot match (see repeats).
	screenMin int
}

// prefixMatch answers for the automaton from first, the first place a
// prefix occurs (or a line starts, lineStart): the anchored automaton
// runs at each such place, until it has scanned as many bytes as the
// unanchored one would from first; the unanchored one takes over from
// there.
func (v *variant) prefixMatch(text string, first int) (matched, ok bool) {
	budget := len(text) - first
	at := first
	var cur prefixCursor
	cur.init(v.prefix)
	for {
		m, ok, end := v.adfa.scanAt(text, at)
		if !ok {
			break
		}
		if m {
			return true, true
		}
		if budget -= end - at + 1; budget < 0 {
			break
		}
		if at = v.nextStart(text, at, &cur); at < 0 {
			return false, true
		}
	}
	return v.dfa.matchAt(text, at)
}

// prefixCursor finds the successive places where prefixes occur in a
// text: it remembers where each prefix occurs next, and searches for one
// again only once the search has passed that place. firstPrefix from
// each place instead searched for every prefix again each time, to its
// next occurrence: once per candidate place for a prefix that occurs
// once, late (a header rule's "subject:" in the whole header, while its
// "to:" occurs on several lines).
type prefixCursor struct {
	prefixes []string
	pos      [16]int // per prefix: its next place, -1 none, -2 not searched
}

func (c *prefixCursor) init(prefixes []string) {
	c.prefixes = prefixes
	for i := range c.pos {
		c.pos[i] = -2
	}
}

// next returns the first place at or after from where a prefix occurs,
// -1 for none; from never decreases between calls.
func (c *prefixCursor) next(text string, from int) int {
	if len(c.prefixes) > len(c.pos) {
		if i := firstPrefix(text[from:], c.prefixes); i >= 0 {
			return from + i
		}
		return -1
	}
	best := -1
	for i, p := range c.prefixes {
		at := c.pos[i]
		if at == -2 || at >= 0 && at < from {
			at = indexFold(text[from:], p)
			if at >= 0 {
				at += from
			}
			c.pos[i] = at
		}
		if at >= 0 && (best < 0 || at < best) {
			best = at
		}
	}
	return best
}

// nextStart returns the next place after at where a match can start (a
// prefix, cur's, or a line starts), -1 when there is none.
func (v *variant) nextStart(text string, at int, cur *prefixCursor) int {
	if v.lineStart {
		i := strings.IndexByte(text[at:], '\n')
		if i < 0 {
			return -1
		}
		return at + i + 1
	}
	if v.startBytes != "" {
		return indexAnyFrom(text, at+1, v.startBytes)
	}
	// Prefixes start with an ASCII byte: at+1 is a rune boundary.
	return cur.next(text, at+1)
}

// indexAnyFrom returns the first place from at where one of the
// (ASCII) bytes of set occurs, -1 for none.
func indexAnyFrom(text string, at int, set string) int {
	if at > len(text) {
		return -1
	}
	var i int
	if len(set) == 1 {
		i = strings.IndexByte(text[at:], set[0])
	} else {
		i = strings.IndexAny(text[at:], set)
	}
	if i < 0 {
		return -1
	}
	return at + i
}

// maxStartBytes bounds startBytes: the anchored automaton runs at each
// occurrence of each.
const maxStartBytes = 3

// startBytesOf returns the bytes one of which every match of re
// (simplified) starts with, "" when there is no such short set of
// bytes few texts are full of: ASCII, neither letters, digits nor
// blanks (a text holds a run at each).
func startBytesOf(re *syntax.Regexp) string {
	set, ok := firstBytes(re, 0)
	if !ok || len(set) == 0 || len(set) > maxStartBytes {
		return ""
	}
	for i := 0; i < len(set); i++ {
		c := set[i]
		if c >= 0x80 || c == ' ' || c == '\t' || isWordByte(c) {
			return ""
		}
	}
	return set
}

// firstBytes returns the bytes a match of re can start with, ok false
// when it does not know them all or a match can be empty.
func firstBytes(re *syntax.Regexp, depth int) (string, bool) {
	if depth > 100 {
		return "", false
	}
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 || re.Rune[0] >= 0x80 {
			return "", false
		}
		c := byte(re.Rune[0])
		if re.Flags&syntax.FoldCase != 0 && (c|0x20 >= 'a' && c|0x20 <= 'z') {
			return string([]byte{c | 0x20, c &^ 0x20}), true
		}
		return string(c), true
	case syntax.OpCharClass:
		var set []byte
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi >= 0x80 || hi-lo >= maxStartBytes {
				return "", false
			}
			for r := lo; r <= hi; r++ {
				set = append(set, byte(r))
			}
		}
		return string(set), len(set) > 0
	case syntax.OpCapture, syntax.OpPlus:
		return firstBytes(re.Sub[0], depth+1)
	case syntax.OpRepeat:
		if re.Min < 1 {
			return "", false
		}
		return firstBytes(re.Sub[0], depth+1)
	case syntax.OpAlternate:
		var set []byte
		for _, s := range re.Sub {
			b, ok := firstBytes(s, depth+1)
			if !ok {
				return "", false
			}
			for i := 0; i < len(b); i++ {
				if !slices.Contains(set, b[i]) {
					set = append(set, b[i])
				}
			}
			if len(set) > maxStartBytes {
				return "", false
			}
		}
		return string(set), len(set) > 0
	case syntax.OpConcat:
		for _, s := range re.Sub {
			switch s.Op {
			case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
				syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpEmptyMatch:
				continue // empty: the next part starts the match
			}
			return firstBytes(s, depth+1)
		}
	}
	return "", false
}

// startsOf returns, for a regex (simplified) without prefixes, where its
// matches can start: at line starts (lineStart), at a few bytes
// (startBytes), or anywhere (neither; nor where they all start at the
// text's start, which the automaton knows).
func startsOf(re *syntax.Regexp) (lineStart bool, startBytes string) {
	if line, ok := lineStarts(re, 0); ok {
		return line, ""
	}
	return false, startBytesOf(re)
}

// lineStarts reports whether every match of re starts at the start of
// a line (ok), and whether some can start after a newline (line).
func lineStarts(re *syntax.Regexp, depth int) (line, ok bool) {
	if depth > 100 {
		return false, false
	}
	switch re.Op {
	case syntax.OpBeginLine:
		return true, true
	case syntax.OpBeginText:
		return false, true
	case syntax.OpCapture, syntax.OpPlus:
		return lineStarts(re.Sub[0], depth+1)
	case syntax.OpRepeat:
		if re.Min < 1 {
			return false, false
		}
		return lineStarts(re.Sub[0], depth+1)
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			l, o := lineStarts(s, depth+1)
			if !o {
				return false, false
			}
			line = line || l
		}
		return line, len(re.Sub) > 0
	case syntax.OpConcat:
		for _, s := range re.Sub {
			switch s.Op {
			case syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpEmptyMatch:
				continue // empty, wherever the match starts
			}
			return lineStarts(s, depth+1)
		}
	}
	return false, false
}

// variant.screen, when set, runs before re: a smaller regex that matches
// wherever re does (X for X{3,}).

// repeatScreen returns, for a regex that is a repetition X{n,} as a whole
// with n >= 2, the regex X: every text X{n} matches contains a match of
// X, and X is n times smaller.
func repeatScreen(tree *syntax.Regexp) (*regexp.Regexp, *dfa, int) {
	t := tree
	for t.Op == syntax.OpCapture {
		t = t.Sub[0]
	}
	if t.Op != syntax.OpRepeat || t.Min < 2 {
		return nil, nil, 0
	}
	re, err := regexp.Compile(t.Sub[0].String())
	if err != nil {
		return nil, nil, 0
	}
	return re, lazyDFA(t.Sub[0]), t.Min
}

// repeats reports whether text can hold screenMin disjoint matches of
// the screen X, which a match of X{n,} is made of (n of them, one after
// the other); false only when it cannot. The screen's automaton finds
// the match that ends first, then the one that ends first after it, and
// so on: no choice of disjoint matches has more (the k-th end found is
// never after the k-th of any choice). Texts that hold X once or twice
// (a form's field named in a sentence) are then spared the pass of
// X{n}'s automaton, which has many more states.
func (v *variant) repeats(text string) bool {
	p := 0
	for k := 0; k < v.screenMin; k++ {
		m, ok, end := v.screenDFA.scanAt(text, p)
		if !ok {
			return true // the automaton gave up: it cannot tell
		}
		if !m {
			return false
		}
		if k == v.screenMin-1 {
			return true
		}
		// The match ended before the symbol (a byte, or a rune of a few)
		// that ends at end, or at the end of the text: the next one
		// starts no earlier than that symbol. A bad byte taken for the
		// start of the symbol makes q earlier, which can only find more.
		q := end - 1
		for q > p && text[q]&0xc0 == 0x80 {
			q--
		}
		if q <= p {
			return true // an empty match: X{n} may be n of them
		}
		p = q
	}
	return true
}

// screened reports whether text passes the variant's screen (true when it
// has none); the screen's automaton answers first, its regexp only when
// that gave up too.
func (v *variant) screened(text string) bool {
	if v.screenDFA != nil {
		if m, ok := v.screenDFA.match(text); ok {
			return m
		}
	}
	return v.screen == nil || v.screen.MatchString(text)
}

// compileVariants compiles an RE2 pattern and its ASCII variant. The
// pattern is parsed once; the regexps (needed only where the automata
// give up, or to count hits) are compiled on first use.
func compileVariants(pattern string) (full, ascii variant, err error) {
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return
	}
	full.re = newLazyRE(pattern)
	simple := tree.Simplify()
	full.litScreen = screenOf(simple)
	full.prefix = prefixLiterals(simple)
	if full.prefix == nil {
		full.lineStart, full.startBytes = startsOf(simple)
	}
	parse := func() *syntax.Regexp {
		t, _ := syntax.Parse(pattern, syntax.Perl)
		return t
	}
	full.dfa = lazyDFAOf(tree, parse)
	if full.prefix != nil || full.lineStart || full.startBytes != "" {
		full.adfa = anchoredDFA(parse)
	}
	full.dfaExact = true
	full.screen, full.screenDFA, full.screenMin = repeatScreen(tree)
	a := asciiOnly(tree)
	if a == nil {
		ascii.never = true
		return
	}
	screen, screenDFA, screenMin := repeatScreen(a)
	a = a.Simplify()
	src := a.String()
	if _, perr := syntax.Parse(src, syntax.Perl); perr != nil {
		ascii = full
	} else {
		ascii.re = newLazyRE(src)
		ascii.litScreen = screenOf(a)
		ascii.prefix = prefixLiterals(a)
		if ascii.prefix == nil {
			ascii.lineStart, ascii.startBytes = startsOf(a)
		}
		parseASCII := func() *syntax.Regexp {
			t, err := syntax.Parse(pattern, syntax.Perl)
			if err != nil {
				return nil
			}
			if t = asciiOnly(t); t == nil {
				return nil
			}
			return t.Simplify()
		}
		ascii.dfa = lazyDFAOf(a, parseASCII)
		if ascii.prefix != nil || ascii.lineStart || ascii.startBytes != "" {
			ascii.adfa = anchoredDFA(parseASCII)
		}
		ascii.dfaExact = true
	}
	ascii.screen, ascii.screenDFA, ascii.screenMin = screen, screenDFA, screenMin
	return
}

// lazyRE is a regexp compiled on first use: most rules never need theirs
// (the automata answer), and the regexps of all of them took more memory
// than the rest of the engine. Those compiled were the biggest thing a
// warm engine held besides the automata's tables (16 MB after 1,000
// corpus messages: the full variants of the large obfuscation rules, run
// where the automata gave up on a chunk cut inside a latin1 pair, which
// they now read, see byteRune; on the whole corpus that took the source
// of the compiled regexps from 1.3 MB to 52 KB), and a reset of the
// engine's budget drops those unused since the reset before, as it
// drops the automata's programs; the next message
// that needs one compiles it again. They are not counted in the budget:
// counted, they took the whole corpus's peak heap from 133 to 114 MB,
// but the budget then dropped the ones in use at each reset (8 resets
// instead of 3), and compiling them again cost 10-15 % of its CPU.
type lazyRE struct {
	src  string
	mu   sync.Mutex // serializes compiling
	re   atomic.Pointer[regexp.Regexp]
	bad  atomic.Bool // src does not compile
	used atomic.Bool // since the last reset
	// cnt counts matches without the regexp when the regex has the
	// shape a count.go counter handles (multiple-hit rules), built on
	// first use.
	cntOnce sync.Once
	cnt     matchCounter
	// Matches can only start at the start of the text (atText) or of a
	// line (atLine): see startAnchor.
	atText, atLine bool
}

func newLazyRE(src string) *lazyRE { return &lazyRE{src: src} }

// get returns the regexp, nil for no regexp (or one that does not
// compile, which a source that parsed cannot be).
func (l *lazyRE) get() *regexp.Regexp {
	if l == nil {
		return nil
	}
	if !l.used.Load() {
		l.used.Store(true)
	}
	if re := l.re.Load(); re != nil {
		return re
	}
	if l.bad.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if re := l.re.Load(); re != nil {
		return re
	}
	re, err := regexp.Compile(l.src)
	if err != nil {
		l.bad.Store(true)
		return nil
	}
	l.re.Store(re)
	return re
}

// dropUnused lets the compiled regexp go when no search asked for it
// since the last call (searches that hold it finish with it); it reports
// whether it did.
func (l *lazyRE) dropUnused() bool {
	if l.used.Swap(false) {
		return false
	}
	return l.re.Swap(nil) != nil
}

// counter returns the regex's exact counter, nil when it has none.
func (l *lazyRE) counter() matchCounter {
	if l == nil {
		return nil
	}
	l.countInit()
	return l.cnt
}

func (l *lazyRE) countInit() {
	l.cntOnce.Do(func() {
		l.cnt = newCounter(l.src)
		l.atText, l.atLine = startAnchor(l.src)
		if l.cnt == nil && l.atLine && !l.atText {
			if c := newLineCount(l); c != nil {
				l.cnt = c
			}
		}
	})
}

// atMostOne reports whether the regex can match text once at most, as
// a regex anchored at the start of the text, or of a line in a text of
// one line, does.
func (l *lazyRE) atMostOne(text string) bool {
	if l == nil {
		return false
	}
	l.countInit()
	return l.atText || l.atLine && strings.IndexByte(text, '\n') < 0
}

// repeatCore returns a screen for a pattern that is (X){n,m} or X+ as a
// whole: X{2} when n >= 2, else X; "" for other patterns. It works on the text: RE2 refuses to parse such a pattern when
// the nested counts exceed its limit, which is when a screen is needed.
func repeatCore(pattern string) string {
	prefix := ""
	if strings.HasPrefix(pattern, "(?") && len(pattern) > 3 {
		if j := strings.IndexByte(pattern, ')'); j > 2 && strings.Trim(pattern[2:j], "imsU-") == "" {
			prefix, pattern = pattern[:j+1], pattern[j+1:]
		}
	}
	if !strings.HasPrefix(pattern, "(") {
		return ""
	}
	end := groupEnd(pattern, 0)
	if end < 0 {
		return ""
	}
	rest := pattern[end+1:]
	if rest != "+" && !(strings.HasPrefix(rest, "{") && quantifierEnd(rest) == len(rest) && !strings.HasPrefix(rest, "{0")) {
		return ""
	}
	if rest != "+" && !strings.HasPrefix(rest, "{1") {
		// X{n} with n >= 2 contains X{2}: a closer screen than X.
		return prefix + pattern[:end+1] + "{2}"
	}
	return prefix + pattern[:end+1]
}

// parseRepeat parses an RE2 pattern that is (X){n}, (X){n,} or (X){n,m}
// as a whole, which Go's parser refuses when the nested repetition counts
// pass its limit (X{5} of a large X): it parses X and repeats it itself.
// The automaton has no such limit.
func parseRepeat(pattern string) (*syntax.Regexp, bool) {
	prefix := ""
	if strings.HasPrefix(pattern, "(?") && len(pattern) > 3 {
		if j := strings.IndexByte(pattern, ')'); j > 2 && strings.Trim(pattern[2:j], "imsU-") == "" {
			prefix, pattern = pattern[:j+1], pattern[j+1:]
		}
	}
	if !strings.HasPrefix(pattern, "(") {
		return nil, false
	}
	end := groupEnd(pattern, 0)
	if end < 0 {
		return nil, false
	}
	rest := pattern[end+1:]
	if !strings.HasPrefix(rest, "{") || quantifierEnd(rest) != len(rest) {
		return nil, false
	}
	var lo, hi int
	q := rest[1 : len(rest)-1]
	a, b, comma := strings.Cut(q, ",")
	if _, err := fmt.Sscan(a, &lo); err != nil || lo > 100 {
		return nil, false
	}
	hi = lo
	if comma {
		hi = -1
		if b != "" {
			if _, err := fmt.Sscan(b, &hi); err != nil || hi < lo || hi > 100 {
				return nil, false
			}
		}
	}
	sub, err := syntax.Parse(prefix+pattern[:end+1], syntax.Perl)
	if err != nil {
		return nil, false
	}
	return &syntax.Regexp{Op: syntax.OpRepeat, Min: lo, Max: hi, Sub: []*syntax.Regexp{sub}, Flags: sub.Flags}, true
}

// treeVariants is compileVariants for a tree RE2's parser refuses: the
// automata and the literals, without a regexp.
func treeVariants(tree *syntax.Regexp) (full, ascii variant) {
	full.litScreen = screenOf(tree.Simplify())
	full.dfa, full.dfaExact, full.ruleExact = lazyDFA(tree), true, true
	a := asciiOnly(tree)
	if a == nil {
		ascii.never = true
		return
	}
	a = a.Simplify()
	ascii.litScreen = screenOf(a)
	ascii.dfa, ascii.dfaExact, ascii.ruleExact = lazyDFA(a), true, true
	return
}
