package sa

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Native matchers for backtracking rules: Go code that answers exactly
// what the rule's regex answers, keyed like btScreens by the exact
// pattern text (a rule sa-update rewrites loses its matcher and runs on
// the backtracking engine again). ok false means "no answer" (a text the
// code does not reason about, such as invalid UTF-8): the engine decides.
// The backtracking engine reads runes, so do these: \s is
// unicode.IsSpace, \d unicode.IsDigit, as in regexp2.
var btNatives = map[string]func(text string) (match, ok bool){
	`/<(?!FONT|font)[Ff][Oo][Nn][Tt]\s/`:            func(s string) (bool, bool) { return mixedCaseTag(s, "font", 0) },
	`/<(?!IMG|img)[Ii][Mm][Gg]\s/`:                  func(s string) (bool, bool) { return mixedCaseTag(s, "img", 0) },
	`/<(?!AREA|area)[Aa][Rr][Ee][Aa]\s/`:            func(s string) (bool, bool) { return mixedCaseTag(s, "area", 0) },
	`/<(?!CENTER|center)[Cc][Ee][Nn][Tt][Ee][Rr]>/`: func(s string) (bool, bool) { return mixedCaseTag(s, "center", '>') },
	// RCVD_ILLEGAL_IP
	` (?:by|ip)=(?=\d+\.\d+\.\d+\.\d+ )(?:(?:0|2(?:2[4-9]|[3-5]\d)|192\.0\.2|198\.51\.100|203\.0\.113)\.|(?:\d+\.){0,3}(?!(?:2(?:[0-4]\d|5[0-5])|[01]?\d\d?)\b))`: illegalIP,
	// __HELO_NOT_RDNS
	`/^[^\]]+ rdns=(\S+) helo=(?!(?i)\1)\S/`: heloNotRDNS,
	// __FROM_EQ_ORG_1
	`/\nFrom: "?([^\n]+)"? <[^>]+>\n.*Organization: \1\n/ism`: fromEqOrg,
	// __SUBJ_HAS_TO_2
	`/\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]/ism`: subjHasTo2,
	// __PDS_TO_BRAND_SUBJECT
	`/^To:\s+<?[^\@]+\@([^\.]+)\.(?:[^\n]+\n+)*^Subject: \"?\1\b/ism`: toBrandSubject,
	// __IP_IN_RELAY
	`/^\[ ip=(\d+)\.(\d+)\.(\d+)\.(\d+) (?:[^\]]* )?(?:rdns|helo)=\S*(?:\1\D\2\D\3\D\4|\4\D\3\D\2\D\1)/`: ipInRelay,
}

func init() {
	// RCVD_ILLEGAL_IP's pattern is written between slashes in the rules.
	for k, f := range btNatives {
		if k[0] == ' ' {
			delete(btNatives, k)
			btNatives["/"+k+"/"] = f
		}
	}
}

// mixedCaseTag is /<(?!WORD|word)[Ww][Oo]...\s/ (term 0) or the same
// ending in term: a tag name in mixed case.
func mixedCaseTag(s, word string, term byte) (bool, bool) {
	upper := strings.ToUpper(word)
	for i := strings.IndexByte(s, '<'); i >= 0; {
		t := s[i+1:]
		if len(t) > len(word) && hasPrefixFold(t, word) && !strings.HasPrefix(t, word) && !strings.HasPrefix(t, upper) {
			rest := t[len(word):]
			if term != 0 {
				if rest[0] == term {
					return true, true
				}
			} else {
				r, n := utf8.DecodeRuneInString(rest)
				if r == utf8.RuneError && n <= 1 {
					return false, false
				}
				if unicode.IsSpace(r) {
					return true, true
				}
			}
		}
		j := strings.IndexByte(t, '<')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false, true
}

// digitRun returns the end of the run of \d runes at i, and false for a
// rune that is not valid UTF-8.
func digitRun(s string, i int) (int, bool) {
	for i < len(s) {
		c := s[i]
		if c >= '0' && c <= '9' {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			return i, true
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return i, false
		}
		if !unicode.IsDigit(r) {
			return i, true
		}
		i += n
	}
	return i, true
}

// illegalIP is RCVD_ILLEGAL_IP: after " by=" or " ip=", an address
// d.d.d.d and a space, whose first octet is 0 or 224-259, or that starts
// 192.0.2., 198.51.100. or 203.0.113., or with an octet that is not
// 2[0-4]\d, 25[0-5] nor [01]?\d\d? (the negative lookahead, with \b
// after it: the whole octet).
func illegalIP(s string) (bool, bool) {
	for i := 0; i+4 <= len(s); i++ {
		if s[i] != ' ' || !(strings.HasPrefix(s[i+1:], "by=") || strings.HasPrefix(s[i+1:], "ip=")) {
			continue
		}
		var oct [4]string
		p := i + 4
		good := true
		for k := range 4 {
			e, ok := digitRun(s, p)
			if !ok {
				return false, false
			}
			sep := byte('.')
			if k == 3 {
				sep = ' '
			}
			if e == p || e >= len(s) || s[e] != sep {
				good = false
				break
			}
			oct[k] = s[p:e]
			p = e + 1
		}
		if !good {
			continue
		}
		for _, o := range oct {
			if !isASCIIDigits(o) {
				// Other \d runes: the engine decides.
				return false, false
			}
		}
		o1 := oct[0]
		if o1 == "0" || len(o1) == 3 && o1[0] == '2' && (o1[1] == '2' && o1[2] >= '4' || o1[1] >= '3' && o1[1] <= '5') {
			return true, true
		}
		pre := oct[0] + "." + oct[1] + "." + oct[2]
		if pre == "192.0.2" || pre == "198.51.100" || pre == "203.0.113" {
			return true, true
		}
		for _, o := range oct {
			if !octetForm(o) {
				return true, true
			}
		}
	}
	return false, true
}

func isASCIIDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// octetForm reports whether the digits o are 2[0-4]\d, 25[0-5] or
// [01]?\d\d? as a whole.
func octetForm(o string) bool {
	switch len(o) {
	case 1, 2:
		return true
	case 3:
		return o[0] == '0' || o[0] == '1' || o[0] == '2' && (o[1] <= '4' || o[1] == '5' && o[2] <= '5')
	}
	return false
}

// ipInRelay is __IP_IN_RELAY: the first relay's address, its four
// numbers in order or reversed, one non-digit between them, in the rdns=
// or helo= of that relay (a value of non-space runes, the numbers
// anywhere in it).
func ipInRelay(s string) (bool, bool) {
	if !strings.HasPrefix(s, "[ ip=") {
		return false, true
	}
	if !utf8.ValidString(s) {
		return false, false
	}
	var oct [4]string
	p := len("[ ip=")
	for k := range 4 {
		e, _ := digitRun(s, p)
		sep := byte('.')
		if k == 3 {
			sep = ' '
		}
		if e == p || e >= len(s) || s[e] != sep {
			return false, true
		}
		oct[k] = s[p:e]
		p = e + 1
	}
	// (?:[^\]]* )?: rdns= or helo= right there or after a space, with no
	// ] before it.
	for at := p; at < len(s); at++ {
		if at > p && s[at-1] != ' ' || !(strings.HasPrefix(s[at:], "rdns=") || strings.HasPrefix(s[at:], "helo=")) {
			if s[at] == ']' {
				break
			}
			continue
		}
		// \S* then the numbers: they start at any rune of the value or
		// just after it.
		for x := at + 5; ; {
			if seqFoldAt(s, x, oct[0], oct[1], oct[2], oct[3]) || seqFoldAt(s, x, oct[3], oct[2], oct[1], oct[0]) {
				return true, true
			}
			if x >= len(s) {
				break
			}
			r, n := utf8.DecodeRuneInString(s[x:])
			if unicode.IsSpace(r) {
				break
			}
			x += n
		}
		if s[at] == ']' {
			break
		}
	}
	return false, true
}

// heloNotRDNS is __HELO_NOT_RDNS: before the first ], after one
// character at least, " rdns=", a value (the whole run of non-space
// characters: \S+ then a space), " helo=" and a non-space character
// where the value, in any case, does not start. Plain ASCII texts only:
// there \s is [\t\n\v\f\r ] and (?i) folds ASCII letters only.
func heloNotRDNS(s string) (bool, bool) {
	if !plainASCII(s) {
		return false, false
	}
	lim := strings.IndexByte(s, ']')
	if lim < 0 {
		lim = len(s)
	}
	for p := 1; p < lim; p++ {
		if s[p] != ' ' || !strings.HasPrefix(s[p:], " rdns=") {
			continue
		}
		st := p + len(" rdns=")
		e := st
		for e < len(s) && !isSpaceASCII(s[e]) {
			e++
		}
		if e == st || !strings.HasPrefix(s[e:], " helo=") {
			continue
		}
		h := e + len(" helo=")
		if h < len(s) && !isSpaceASCII(s[h]) && !hasPrefixFold(s[h:], asciiLower(s[st:e])) {
			return true, true
		}
	}
	return false, true
}

// fromEqOrg is __FROM_EQ_ORG_1: on a From line, a quote maybe, the
// capture (any part of the line that ends before ` <` or `" <`: the
// choices of [^\n]+ and "?), then <, the text to the first > (one
// character at least, newlines too), > and a line break; anywhere after
// that (/s), "Organization: ", the capture in any case and a line break.
// Plain ASCII texts only: there /i folds ASCII letters only.
func fromEqOrg(s string) (bool, bool) {
	if !plainASCII(s) {
		return false, false
	}
	const org = "organization: "
	orgs := indexesFold(s, org) // where org starts
	if len(orgs) == 0 {
		return false, true
	}
	return afterLinePrefix(s, "from: ", func(k int) bool {
		le := lineEnd(s, k)
		for st := k; st <= k+1 && st < le; st++ {
			if st == k+1 && s[k] != '"' {
				break
			}
			for ce := st + 1; ce < le; ce++ {
				x := ce + 1
				if s[ce] == '"' {
					x++
				}
				if !strings.HasPrefix(s[x-1:], " <") {
					continue
				}
				y := strings.IndexByte(s[x+1:], '>')
				if y <= 0 || x+2+y >= len(s) || s[x+2+y] != '\n' {
					continue
				}
				m := x + 2 + y + 1
				c := asciiLower(s[st:ce])
				for _, o := range orgs {
					if v := o + len(org); o >= m && hasPrefixFold(s[v:], c) && v+len(c) < len(s) && s[v+len(c)] == '\n' {
						return true
					}
				}
			}
		}
		return false
	}), true
}

// subjectTail is where __SUBJ_HAS_TO_2 wants its capture after
// "Subject: ", as __SUBJ_HAS_TO_1 does.
var subjectTail = pairRule{at: pairAtAny, tail: notAlnumASCII}

// subjHasTo2 is __SUBJ_HAS_TO_2: on a Received line, " for " within 200
// characters, < maybe, the capture (the whole run of its class: a
// shorter one is followed by a class character, not > nor ;), > maybe
// and ;. "Subject: " follows the ; at once, or starts any later line
// when the ; does not end its line ([^\n]+ takes the rest of it, \n+
// every line break, each line after is not empty). Plain ASCII texts
// only.
func subjHasTo2(s string) (bool, bool) {
	ix := pairIndexOf(s)
	if !ix.plain {
		return false, false
	}
	const subj = "subject: "
	var subjects []int // where "Subject: " starts a line but the first
	for _, k := range ix.starts[pairField("subject:")] {
		if k < len(s) && s[k] == ' ' {
			subjects = append(subjects, k-len("subject:"))
		}
	}
	for _, b := range ix.starts[pairField("received:")] {
		le := lineEnd(s, b)
		for f := b; f <= b+200 && f < le; f++ {
			if s[f] != ' ' || !hasPrefixFold(s[f:], " for ") {
				continue
			}
			for st := f + len(" for "); st <= f+len(" for <") && st < len(s); st++ {
				if st > f+len(" for ") && s[st-1] != '<' {
					break
				}
				e := st
				for e < len(s) && !isSpaceASCII(s[e]) && s[e] != '>' && s[e] != ';' {
					e++
				}
				if e == st {
					continue
				}
				x := e
				if x < len(s) && s[x] == '>' {
					x++
				}
				if x >= len(s) || s[x] != ';' {
					continue
				}
				m := x + 1
				c := asciiLower(s[st:e])
				if hasPrefixFold(s[m:], subj) && subjectTail.found(s, m+len(subj), c) {
					return true, true
				}
				if m >= len(s) || s[m] == '\n' {
					continue
				}
				for _, q := range subjects {
					if q > m && subjectTail.found(s, q+len(subj), c) {
						return true, true
					}
				}
			}
		}
	}
	return false, true
}

// toBrandSubject is __PDS_TO_BRAND_SUBJECT: a To: that starts a line,
// white space, at least one more character, the first @ after it (the
// white space, < and [^\@]+ cannot pass one), the capture up to the
// first . after that (one character at least, line breaks too: [^\.]+
// cannot stop short of the .), and the . must not end its line
// ([^\n]+ of at least one loop: ^Subject cannot follow a .). Then a
// later line that starts "Subject: ", a quote maybe, the capture in any
// case and a word boundary. Plain ASCII texts only: there \s and \b are
// ASCII's and /i folds ASCII letters only.
func toBrandSubject(s string) (bool, bool) {
	if !plainASCII(s) {
		return false, false
	}
	const subj = "subject: "
	var subjects []int // line starts that start "Subject: "
	for q := 0; q < len(s); q = lineEnd(s, q) + 1 {
		if hasPrefixFold(s[q:], subj) {
			subjects = append(subjects, q)
		}
	}
	if len(subjects) == 0 {
		return false, true
	}
	for l := 0; l < len(s); l = lineEnd(s, l) + 1 {
		w := l + len("to:")
		if !hasPrefixFold(s[l:], "to:") || w >= len(s) || !isSpaceASCII(s[w]) {
			continue
		}
		a := strings.IndexByte(s[w:], '@')
		if a < 0 {
			break // nor after a later To:
		}
		a += w
		if a < w+2 {
			continue
		}
		d := strings.IndexByte(s[a+1:], '.')
		if d <= 0 {
			continue
		}
		d += a + 1
		if d+1 >= len(s) || s[d+1] == '\n' {
			continue
		}
		c := asciiLower(s[a+1 : d])
		for _, q := range subjects {
			if q <= d+1 {
				continue
			}
			v := q + len(subj)
			for x := v; x <= v+1 && x < len(s); x++ {
				if x > v && s[v] != '"' {
					break
				}
				if e := x + len(c); hasPrefixFold(s[x:], c) && isWordByte(s[e-1]) != (e < len(s) && isWordByte(s[e])) {
					return true, true
				}
			}
		}
	}
	return false, true
}

// seqFoldAt reports whether a \D b \D c \D d starts at s[x:].
func seqFoldAt(s string, x int, a, b, c, d string) bool {
	for k, o := range [4]string{a, b, c, d} {
		if !strings.HasPrefix(s[x:], o) {
			return false
		}
		x += len(o)
		if k == 3 {
			return true
		}
		if x >= len(s) {
			return false
		}
		r, n := utf8.DecodeRuneInString(s[x:])
		if unicode.IsDigit(r) {
			return false
		}
		x += n
	}
	return true
}

// fromNameInMsgPattern is __FROM_NAME_IN_MSG's.
const fromNameInMsgPattern = `/^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)/sm`

// screenFromNameInMsg: a match captures, on a line starting "From:", two
// words (the first with the white space rune before it, or less its
// first rune) and needs a later line that is the capture, \r maybe,
// within 2048 runes after it. The capture is found exactly; the window
// in bytes holds the 2048 runes (4 bytes at most each).
func screenFromNameInMsg(text string) bool {
	if !utf8.ValidString(text) {
		return true
	}
	space := func(i int) (bool, int) {
		r, n := utf8.DecodeRuneInString(text[i:])
		return unicode.IsSpace(r), n
	}
	// run returns the end of the run of (non-)space runes at i.
	run := func(i int, sp bool) int {
		for i < len(text) {
			s, n := space(i)
			if s != sp {
				break
			}
			i += n
		}
		return i
	}
	for f := 0; f < len(text); f = lineEnd(text, f) + 1 {
		if !strings.HasPrefix(text[f:], "From:") {
			continue
		}
		p := f + len("From:")
		w := run(p, true)
		if w == p || w >= len(text) {
			continue
		}
		var starts []int
		// [^<] is the run's last white space rune (then \S+ from w)...
		if _, n := space(p); p+n < w {
			last := p
			for q := p; q < w; {
				_, n := space(q)
				last = q
				q += n
			}
			starts = append(starts, last)
		}
		// ...or the first rune of the word.
		if text[w] != '<' {
			starts = append(starts, w)
		}
		for _, a := range starts {
			_, n := space(a)
			s1 := a + n
			e1 := run(s1, false)
			if e1 == s1 || e1 >= len(text) {
				continue
			}
			_, n = space(e1)
			s2 := e1 + n
			e2 := run(s2, false)
			if e2 == s2 || e2 >= len(text) {
				continue
			}
			capture := text[a:e2]
			_, n = space(e2)
			la := e2 + n // the lookahead starts here
			win := text[la:min(len(text), la+4*2048+1)]
			for j := strings.IndexByte(win, '\n'); j >= 0; {
				q := la + j + 1
				if strings.HasPrefix(text[q:], capture) {
					t := text[q+len(capture):]
					t = strings.TrimPrefix(t, "\r")
					if t == "" || t[0] == '\n' {
						return true
					}
				}
				k := strings.IndexByte(win[j+1:], '\n')
				if k < 0 {
					break
				}
				j += 1 + k
			}
		}
	}
	return false
}

// pairRule is one of the rules that capture an address on a header line
// (after src, "\nTo: " say) and look for it again on a later line that
// starts with dst (the From/To/Subject comparisons, see pairScreen):
//
//	\nSRC (?:[^\n<]{0,80}<)?([^\n\s EXCL]+)>?\n+(?:[^\n]{1,GAP}\n+)*DST ...\1[TAIL]
//
// and the variants the fields below describe, all /ism. What the
// backtracking may choose reduces to this: the capture starts right
// after src or after the first < of the line (80 characters on at most);
// it is the whole run of its class there (a shorter one is followed by a
// class character, not > nor \n), and the line ends after it, a > maybe.
// The lines after it up to dst's are empty or of 1 to gap characters
// ([^\n]{1,gap} must reach the \n), and dst starts a line. Only plain
// ASCII texts get an answer: there \s is [\t\n\v\f\r ], \d is [0-9] and
// /i folds ASCII letters only.
type pairRule struct {
	src, dst string // lower case, with their space unless spaces
	// spaces: \s+ after src and dst (they end in their colon). The
	// white space may span lines; the capture (or the < before it)
	// starts where it ends (\1 has no white space, [^\n<] no <).
	spaces bool
	// srcAt: the capture follows the line's first @ ([^\n@]{0,80}@),
	// not src or a <.
	srcAt bool
	excl  string // the capture's class: [^\n\s EXCL]
	// user: the capture is followed by \@[^\n\s]+ and the line's end
	// (no >? : [^\n\s]+ takes it).
	user bool
	// digits: ([^\n\s\@>]{4,80}?)\d*\@ and \1\d*[TAIL]: any 4 to 80
	// characters of the run that leave only digits before the @.
	digits bool
	gap    int
	at     pairAt
	tail   func(c byte) bool // the character after \1
}

// pairAt is where a pairRule wants \1 on dst's line.
type pairAt int

const (
	pairAtAny   pairAt = iota // [^\n]{0,100}\1
	pairAtAngle               // (?:[^\n]{0,80}<)?\1
	pairAtAfter               // [^\n]+@\1
)

func (p *pairRule) match(s string) (bool, bool) {
	ix := pairIndexOf(s)
	if !ix.plain {
		return false, false
	}
	// Where src starts a line but the first: where \nSRC matches.
	name, space := strings.CutSuffix(p.src, " ")
	for _, k := range ix.starts[pairField(name)] {
		if space {
			if k >= len(s) || s[k] != ' ' {
				continue
			}
			k++
		}
		if p.fromLine(s, k) {
			return true, true
		}
	}
	return false, true
}

// afterLinePrefix reports whether f holds at k, just after prefix (lower
// case), on some line but the first that starts with prefix in any ASCII
// case: where the rules' \nPrefix matches.
func afterLinePrefix(s, prefix string, f func(k int) bool) bool {
	for i := strings.IndexByte(s, '\n'); i >= 0; {
		if hasPrefixFold(s[i+1:], prefix) && f(i+1+len(prefix)) {
			return true
		}
		j := strings.IndexByte(s[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// indexesFold returns where lit (lower case) starts in s, in any ASCII
// case.
func indexesFold(s, lit string) []int {
	var at []int
	for i := 0; i+len(lit) <= len(s); i++ {
		if s[i]|0x20 == lit[0]|0x20 && hasPrefixFold(s[i:], lit) {
			at = append(at, i)
		}
	}
	return at
}

// fromLine reports whether a match starts with the src that ends at k.
func (p *pairRule) fromLine(s string, k int) bool {
	if p.spaces {
		w := skipSpaceASCII(s, k)
		if w == k {
			return false
		}
		k = w
	}
	le := lineEnd(s, k)
	starts := [2]int{k, -1}
	if p.srcAt {
		j := strings.IndexByte(s[k:le], '@')
		if j < 0 || j > 80 {
			return false
		}
		starts[0] = k + j + 1
	} else if j := strings.IndexByte(s[k:le], '<'); j >= 0 && j <= 80 {
		starts[1] = k + j + 1
	}
	for _, st := range starts {
		if st < 0 {
			continue
		}
		e := st
		for e < len(s) && !isSpaceASCII(s[e]) && strings.IndexByte(p.excl, s[e]) < 0 {
			e++
		}
		if e == st {
			continue
		}
		n := e
		if p.user {
			if e >= len(s) || s[e] != '@' {
				continue
			}
			n = e + 1
			for n < len(s) && !isSpaceASCII(s[n]) {
				n++
			}
			if n == e+1 {
				continue
			}
		} else if n < len(s) && s[n] == '>' {
			n++
		}
		if n >= len(s) || s[n] != '\n' {
			continue
		}
		if !p.digits {
			if p.later(s, n, asciiLower(s[st:e])) {
				return true
			}
			continue
		}
		d := e
		for d > st && isDigitASCII(s[d-1]) {
			d--
		}
		for l := max(4, d-st); l <= min(80, e-st); l++ {
			if p.later(s, n, asciiLower(s[st:st+l])) {
				return true
			}
		}
	}
	return false
}

func isDigitASCII(c byte) bool { return c >= '0' && c <= '9' }

func skipSpaceASCII(s string, i int) int {
	for i < len(s) && isSpaceASCII(s[i]) {
		i++
	}
	return i
}

// later reports whether a dst line that the lines after the \n at n
// reach holds c as the rule wants it.
func (p *pairRule) later(s string, n int, c string) bool {
	for n < len(s) {
		q := n + 1
		le := lineEnd(s, q)
		if hasPrefixFold(s[q:], p.dst) {
			a := q + len(p.dst)
			if p.spaces {
				a = skipSpaceASCII(s, a)
			}
			if a > q+len(p.dst) || !p.spaces {
				if p.found(s, a, c) {
					return true
				}
			}
		}
		if le-q > p.gap {
			return false
		}
		n = le
	}
	return false
}

// found reports whether c (lower case) is where the rule wants it on the
// line that a starts in, the character after it (and digits) a tail
// one.
func (p *pairRule) found(s string, a int, c string) bool {
	le := lineEnd(s, a)
	at := func(x int) bool {
		if !hasPrefixFold(s[x:], c) {
			return false
		}
		e := x + len(c)
		if p.digits {
			for e < len(s) && isDigitASCII(s[e]) {
				e++
			}
		}
		return e < len(s) && p.tail(s[e])
	}
	switch p.at {
	case pairAtAny:
		for o := 0; o <= 100 && a+o+len(c) <= le; o++ {
			if at(a + o) {
				return true
			}
		}
	case pairAtAngle:
		if at(a) {
			return true
		}
		for j := a; j <= a+80 && j < le; j++ {
			if s[j] == '<' && at(j+1) {
				return true
			}
		}
	case pairAtAfter:
		for j := a + 1; j < le; j++ {
			if s[j] == '@' && at(j+1) {
				return true
			}
		}
	}
	return false
}

func notAlnumASCII(c byte) bool { return !(isDigitASCII(c) || isLetterASCII(c)) }

// tailAddr is [>,\s\n], tailAddrColon [>,:\s\n], tailUser [\@>,\s\n].
func tailAddr(c byte) bool      { return c == '>' || c == ',' || isSpaceASCII(c) }
func tailAddrColon(c byte) bool { return c == ':' || tailAddr(c) }
func tailUser(c byte) bool      { return c == '@' || tailAddr(c) }

// pairRules are the comparisons answered by pairRule, by pattern.
var pairRules = map[string]*pairRule{
	// __SUBJ_HAS_TO_1
	`/\nTo: (?:[^\n<]{0,80}<)?([^\n\s>,]+)>?\n+(?:[^\n]{1,200}\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]/ism`: {src: "to: ", excl: ">,", gap: 200, dst: "subject: ", at: pairAtAny, tail: notAlnumASCII},
	// __SUBJ_HAS_FROM_1
	`/\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*Subject: [^\n]{0,100}\1[>,:\s\n]/ism`: {src: "from: ", excl: ">", gap: 100, dst: "subject: ", at: pairAtAny, tail: tailAddrColon},
	// __TO_EQ_FROM_1, _2
	`/\nFrom: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*To: (?:[^\n]{0,80}<)?\1[>,\s\n]/ism`: {src: "from: ", excl: ">", gap: 100, dst: "to: ", at: pairAtAngle, tail: tailAddr},
	`/\nTo: (?:[^\n<]{0,80}<)?([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*From: (?:[^\n]{0,80}<)?\1[>,\s\n]/ism`: {src: "to: ", excl: ">", gap: 100, dst: "from: ", at: pairAtAngle, tail: tailAddr},
	// __TO_EQ_FROM_DOM_1, _2
	`/\nFrom: [^\n@]{0,80}@([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*To: [^\n]+@\1[>,\s\n]/ism`: {src: "from: ", srcAt: true, excl: ">", gap: 100, dst: "to: ", at: pairAtAfter, tail: tailAddr},
	`/\nTo: [^\n@]{0,80}@([^\n\s>]+)>?\n+(?:[^\n]{1,100}\n+)*From: [^\n]+@\1[>,\s\n]/ism`: {src: "to: ", srcAt: true, excl: ">", gap: 100, dst: "from: ", at: pairAtAfter, tail: tailAddr},
	// __TO_EQ_FROM_USR_1, _2
	`/\nFrom:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]+)\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*To:\s+(?:[^\n]{0,80}<)?\1[\@>,\s\n]/ism`: {src: "from:", spaces: true, excl: "@>", user: true, gap: 100, dst: "to:", at: pairAtAngle, tail: tailUser},
	`/\nTo:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]+)\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*From:\s+(?:[^\n]{0,80}<)?\1[\@>,\s\n]/ism`: {src: "to:", spaces: true, excl: "@>", user: true, gap: 100, dst: "from:", at: pairAtAngle, tail: tailUser},
	// __TO_EQ_FROM_USR_NN_1, _2
	`/\nFrom:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]{4,80}?)\d*\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*To:\s+(?:[^\n]{0,80}<)?\1\d*[\@>,\s\n]/ism`: {src: "from:", spaces: true, excl: "@>", user: true, digits: true, gap: 100, dst: "to:", at: pairAtAngle, tail: tailUser},
	`/\nTo:\s+(?:[^\n<]{0,80}<)?([^\n\s\@>]{4,80}?)\d*\@[^\n\s]+>?\n+(?:[^\n]{1,100}\n+)*From:\s+(?:[^\n]{0,80}<)?\1\d*[\@>,\s\n]/ism`: {src: "to:", spaces: true, excl: "@>", user: true, digits: true, gap: 100, dst: "from:", at: pairAtAngle, tail: tailUser},
}

func init() {
	for pat, p := range pairRules {
		btNatives[pat] = p.match
	}
}
