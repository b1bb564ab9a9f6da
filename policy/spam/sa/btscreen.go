package sa

import (
	"strings"
	"sync/atomic"
)

// Screens for backtracking rules: hand-written tests, keyed by the rule's
// exact pattern text (a rule rewritten by sa-update loses its screen, it
// does not get a wrong one), that prove the regex cannot match a text
// before the backtracking engine spends its time on it. A screen must be
// sound: it may answer true where the regex does not match (the engine
// then decides), never false where it does. They reason on bytes, so
// they answer only for texts of printable ASCII, tab and line breaks,
// where the engine's Unicode classes and case folding reduce to ASCII;
// any other text goes to the engine.

// randHeaderPattern is __RAND_HEADER's.
const randHeaderPattern = `/^(?!Accept-Language|Authentication-Results|Content-|DomainKey-Signature|DKIM-|List-|MIME-|Received-SPF|Return-Path|Thread-|User-Agent|Tracking-Code)(?:[a-z]{4,}-[a-z]{3,}|[a-z]{3,}-[a-z]{4,}):\s+\d(?=\S{6,}\s*$)[\da-f]*(?:[-.]\w+)*\s*$/ism`

// randomLocalPattern is HK_RANDOM_FROM's, _ENVFROM's and _REPLYTO's.
const randomLocalPattern = `/^(?!(?:mail|bounce)[_.-]|[^@]*(?:[+=^~\#-]|mc(?:b|g)r|kpmg|nlpbr|ndqv|lcgc|cplpr)|[^@]{26}|.*?\@.{0,20}\b(?:cmp-info|cmpgnr|cnn|tori|jysk|amadeus|amazon)\.[a-z]{2,3}$)[^@]*(?:[bcdfgjklmnpqrtvwxz]{5}|[aeiouy]{5}|([a-z]{1,2})(?:\1){3})/mi`

// btScreens maps a rule's pattern to its screen.
var btScreens = map[string]func(text string) bool{
	randomLocalPattern: screenRandomLocal,
	// __URI_LONG_REPEAT
	`m;(?:://|@)(?:\w+\.)*(\w{7,}\.)\1;i`: screenLongRepeat,
	randHeaderPattern:                     screenRandHeader,
	fromNameInMsgPattern:                  screenFromNameInMsg,
	// __PDS_TONAME_EQ_TOLOCAL
	`/^\s*['"]?([^'"]+)['"]? <?\1\@/`: screenToNameEqLocal,
	// __PDS_TO_EQ_FROM_NAME_1: see pairScreen (the other comparisons
	// of its shape have exact answers, see pairRule).
	`/\nTo: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*From:\W+(\1)([^\n\w<]++<)?((?!\1)[^\n">]++)>?\n/ism`: func(s string) bool { return pairScreen(s, "to:", "from:", ">") },
}

// plainASCII reports whether text holds only printable ASCII, tab and
// line breaks: there \s is [\t\n\v\f\r ], \d is [0-9] and case folding
// is ASCII's.
func plainASCII(text string) bool {
	if len(text) < plainMemoMin {
		return plainWords(text)
	}
	// A dozen natives and screens ask of the same header block (ALL)
	// one after the other: the answer for the last long text is kept.
	// Checks running at once replace it in turn, which costs time only.
	// Comparing a text with itself costs nothing (same bytes).
	if m := lastPlain.Load(); m != nil && m.text == text {
		return m.plain
	}
	p := plainWords(text)
	lastPlain.Store(&plainMemo{text, p})
	return p
}

// plainMemoMin is the length from which plainASCII keeps its answer:
// reading a shorter text costs less than keeping it.
const plainMemoMin = 512

type plainMemo struct {
	text  string
	plain bool
}

var lastPlain atomic.Pointer[plainMemo]

// plainWords is plainASCII without the memo.
func plainWords(text string) bool {
	// Eight bytes at a time (a dozen natives and screens read the
	// header block): a word of bytes 0x20-0x7e passes at once, one with
	// a byte below or above (a line break, mostly) byte by byte.
	i := 0
	for ; i+8 <= len(text); i += 8 {
		w := word8(text, i)
		// The high bit of a byte of low is set by a byte below 0x20
		// (or with the high bit set), of high by one from 0x7f up; a
		// borrow or carry can set it in the byte after such a byte,
		// which only sends the word to the exact check.
		low := (w - 0x20*loBits) | w
		high := w + (0x80-0x7f)*loBits | w
		if (low|high)&hiBits != 0 && !plainBytes(text[i:i+8]) {
			return false
		}
	}
	return plainBytes(text[i:])
}

// plainBytes is plainASCII a byte at a time.
func plainBytes(text string) bool {
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c >= 0x7f || c < ' ' && (c < '\t' || c > '\r') {
			return false
		}
	}
	return true
}

func isSpaceASCII(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

func isLetterASCII(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// hasPrefixFold reports whether s starts with prefix, ASCII case folded
// (prefix is lower case).
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lowerTable[s[i]] != prefix[i] {
			return false
		}
	}
	return true
}

// containsFold reports whether s contains sub, ASCII case folded.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) && lowerTable[s[i+j]] == lowerTable[sub[j]] {
			j++
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}

// lineEnd returns the index of the first \n at or after i, len(s) if none.
func lineEnd(s string, i int) int {
	if i >= len(s) {
		return i
	}
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(s)
}

var randHeaderSkip = []string{"accept-language", "authentication-results", "content-", "domainkey-signature", "dkim-", "list-", "mime-", "received-spf", "return-path", "thread-", "user-agent", "tracking-code"}

// screenRandHeader: a match starts a line with a name of letters, one
// hyphen and letters (3 and 4 at least), not one of the excepted names,
// then a colon, white space, a digit and 6 more non-space characters.
func screenRandHeader(text string) bool {
	if !plainASCII(text) {
		return true
	}
	for p := 0; p < len(text); p = lineEnd(text, p) + 1 {
		j := p
		for j < len(text) && isLetterASCII(text[j]) {
			j++
		}
		a := j - p
		if a < 3 || j >= len(text) || text[j] != '-' {
			continue
		}
		j++
		k := j
		for j < len(text) && isLetterASCII(text[j]) {
			j++
		}
		b := j - k
		if b < 3 || a < 4 && b < 4 || j >= len(text) || text[j] != ':' {
			continue
		}
		skip := false
		for _, s := range randHeaderSkip {
			if hasPrefixFold(text[p:], s) {
				skip = true
				break
			}
		}
		if skip {
			continue
		}
		j++
		k = j
		for j < len(text) && isSpaceASCII(text[j]) {
			j++
		}
		if j == k || j >= len(text) || text[j] < '0' || text[j] > '9' {
			continue
		}
		j++
		if j+6 > len(text) {
			continue
		}
		ok := true
		for _, c := range []byte(text[j : j+6]) {
			if isSpaceASCII(c) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// screenRandomLocal: a match needs, somewhere in the text, five
// consonants of the class in a row, five vowels (y counts), or one or two
// letters four times over, in any case (\1 under /i); the lookahead and
// the place of the @ are not checked.
func screenRandomLocal(text string) bool {
	if !plainASCII(text) {
		return true
	}
	cons, vows := 0, 0
	for i := 0; i < len(text); i++ {
		c := lowerTable[text[i]]
		cons, vows = cons+1, vows+1
		if strings.IndexByte("bcdfgjklmnpqrtvwxz", c) < 0 {
			cons = 0
		}
		if strings.IndexByte("aeiouy", c) < 0 {
			vows = 0
		}
		if cons == 5 || vows == 5 || repeatsAt(text, i, 1) || repeatsAt(text, i, 2) {
			return true
		}
	}
	return false
}

// repeatsAt reports whether text holds at i n letters and then the same
// letters (ASCII case folded) three more times.
func repeatsAt(text string, i, n int) bool {
	if i+4*n > len(text) {
		return false
	}
	for k := range n {
		if !isLetterASCII(text[i+k]) {
			return false
		}
	}
	for k := n; k < 4*n; k++ {
		if lowerTable[text[i+k]] != lowerTable[text[i+k-n]] {
			return false
		}
	}
	return true
}

// screenLongRepeat: the capture follows a non-word character (., / or
// @), so it is a whole run of 7 or more word characters and its dot; a
// match needs the same run (any case) and a dot right after that dot.
func screenLongRepeat(text string) bool {
	if !plainASCII(text) {
		return true
	}
	for p := strings.IndexByte(text, '.'); p >= 0; {
		s := p
		for s > 0 && isWordByte(text[s-1]) {
			s--
		}
		if n := p - s; n >= 7 && p+1+n < len(text) && text[p+1+n] == '.' && strings.EqualFold(text[s:p], text[p+1:p+1+n]) {
			return true
		}
		next := strings.IndexByte(text[p+1:], '.')
		if next < 0 {
			break
		}
		p += 1 + next
	}
	return false
}

// pairScreen is the screen of a rule that captures an address on one
// header line (src: "From", "To") and look for it again
// (\1) after another field name (dst). A match needs a capture: a run of
// characters outside excl and white space, starting right after the
// field name, after its white space, or after a < or @ on the line that
// white space ends on; the run is the whole capture (the character after
// it is not in the class). The backreference lies on the line where the first word character after a
// dst field name is. Order and the lines between are not checked.
func pairScreen(text, src, dst, excl string) bool {
	ix := pairIndexOf(text)
	if !ix.plain {
		return true
	}
	regions := ix.regions[pairField(dst)]
	if len(regions) == 0 {
		return false
	}
	found := func(start int) bool {
		e := start
		for e < len(text) && !isSpaceASCII(text[e]) && strings.IndexByte(excl, text[e]) < 0 {
			e++
		}
		c := text[start:e]
		if c == "" {
			return false
		}
		for _, r := range regions {
			if containsFold(r, c) {
				return true
			}
		}
		return false
	}
	for _, k := range ix.starts[pairField(src)] {
		w := k
		for w < len(text) && isSpaceASCII(text[w]) {
			w++
		}
		end := lineEnd(text, w)
		if found(k) || k+1 <= len(text) && found(k+1) || found(w) {
			return true
		}
		for j := k; j < end; j++ {
			if (text[j] == '<' || text[j] == '@') && found(j+1) {
				return true
			}
		}
	}
	return false
}

// screenToNameEqLocal is __PDS_TONAME_EQ_TOLOCAL's regex run by hand: at
// the start, white space, a quote maybe, a run c without quotes, a quote
// maybe, a space, < maybe, c again and @. Long texts go to the engine
// (the search is quadratic).
func screenToNameEqLocal(text string) bool {
	if len(text) > 1000 || !plainASCII(text) {
		return true
	}
	isQuote := func(i int) bool { return i < len(text) && (text[i] == '\'' || text[i] == '"') }
	w := 0
	for w < len(text) && isSpaceASCII(text[w]) {
		w++
	}
	for s := 0; s <= w; s++ {
		for q := 0; q < 2; q++ {
			if q == 1 && !isQuote(s) {
				continue
			}
			st := s + q
			for e := st + 1; e <= len(text) && !isQuote(e-1); e++ {
				c := text[st:e]
				for k := e; k <= e+1; k++ {
					if k == e+1 && !isQuote(e) {
						continue
					}
					if k >= len(text) || text[k] != ' ' {
						continue
					}
					for m := k + 1; m <= k+2; m++ {
						if m == k+2 && (k+1 >= len(text) || text[k+1] != '<') {
							continue
						}
						if strings.HasPrefix(text[m:], c) && m+len(c) < len(text) && text[m+len(c)] == '@' {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// pairFields are the field names pairScreen reads, each ending with its
// colon (pairIndexOf finds them by it), and those whose line starts the
// exact comparisons read (pairRule, subjHasTo2): regions are kept for
// the first pairRegions only.
var pairFields = [...]string{"from:", "to:", "subject:", "received:"}

const pairRegions = 2

func pairField(name string) int {
	for i, f := range pairFields {
		if f == name {
			return i
		}
	}
	panic("pairScreen: field " + name)
}

// pairIndex is what pairScreen reads of a text: ten rules screened the
// same header text (ALL) of a message, and each pass over it took as
// long as the screen's own work. (Nine of them now have exact answers,
// see pairRules; they run on texts the screens passed unread.)
type pairIndex struct {
	text  string
	plain bool // plainASCII(text)
	// regions[f] are the texts after each occurrence of pairFields[f]
	// (anywhere, case folded) to the end of the line its first word
	// character is on; starts[f] the ends of the occurrences that start
	// a line after the first.
	regions [pairRegions][]string
	starts  [len(pairFields)][]int
}

// lastPairIndex is the index of the text screened last: the rules of a
// message run one after the other. Checks running at once replace it in
// turn, which costs time only (a text's index is compared by value).
var lastPairIndex atomic.Pointer[pairIndex]

func pairIndexOf(text string) *pairIndex {
	if ix := lastPairIndex.Load(); ix != nil && ix.text == text {
		return ix
	}
	ix := &pairIndex{text: text, plain: plainASCII(text)}
	if ix.plain {
		// Each name ends with its colon: the colons are few, found
		// with IndexByte, and each is looked behind (occurrences of a
		// name come in order, as a walk over every byte found them).
		for p := strings.IndexByte(text, ':'); p >= 0; {
			for f, name := range pairFields {
				i := p + 1 - len(name)
				if i < 0 || !hasPrefixFold(text[i:], name) {
					continue
				}
				k := i + len(name)
				if f < pairRegions {
					w := k
					for w < len(text) && !isWordByte(text[w]) {
						w++
					}
					ix.regions[f] = append(ix.regions[f], text[k:lineEnd(text, w)])
				}
				if i > 0 && text[i-1] == '\n' {
					ix.starts[f] = append(ix.starts[f], k)
				}
			}
			j := strings.IndexByte(text[p+1:], ':')
			if j < 0 {
				break
			}
			p += 1 + j
		}
	}
	lastPairIndex.Store(ix)
	return ix
}
