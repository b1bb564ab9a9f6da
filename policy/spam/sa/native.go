package sa

import (
	"strings"
	"unicode/utf8"
)

// Native matchers for plain (RE2) rules that read a long text and have no
// literal to screen them by, so that a group automaton would walk all of
// it: Go code that answers exactly what the regex answers, keyed by the
// exact pattern text (a rule sa-update rewrites loses its matcher). They
// stand in for the rule's screen and its regex; a rule with tflags
// multiple keeps its regex, which counts.
var plainNatives = map[string]func(text string) bool{
	// NULL_IN_BODY (full)
	`/\x00/`: func(s string) bool { return strings.IndexByte(s, 0) >= 0 },
	// __LONGLINE (full)
	`/^[^\r\n]{998}/m`: func(s string) bool { return longLine(s, 998) },
	// __MSGID_BEFORE_RECEIVED (ALL): its automaton, anchored at each
	// Message-Id, scanned the rest of the header block.
	`/^Message-Id:.*?^Received:/msi`: msgidBeforeReceived,
	// __HDRS_MISSP (ALL:raw): the literals (to: in every Delivered-To)
	// passed every header block to its automaton.
	`/^(?:Subject|From|To|Reply-To):\S/ism`: missingSpace,
	// __DOS_RELAYED_EXT (ALL-EXTERNAL): its literal, received:, is in
	// nearly every text, so the Aho-Corasick pass over it was all cost.
	`/(?:^|\n)[Rr][eE][cC][eE][iI][vV][eE][dD]:\s.+\n[Rr][eE][cC][eE][iI][vV][eE][dD]:\s/s`: twoReceived,
	// UNCLOSED_BRACKET (ALL): one of three rules whose group automaton
	// read every header block.
	`/\[\d+\r?\n/s`: unclosedBracket,
	// __DATE_LOWER, __FROM_LOWER, __TO___LOWER (ALL): their literals,
	// found in any case, are in every header block; the automaton then
	// read it from the first.
	`/date: \S{5}/`: func(s string) bool { return nonSpaceAfter(s, "date: ", 5) },
	`/from: \S{5}/`: func(s string) bool { return nonSpaceAfter(s, "from: ", 5) },
	`/to: \S{5}/`:   func(s string) bool { return nonSpaceAfter(s, "to: ", 5) },
}

// The natives below fold case as ASCII: the texts are latin1 (text.go),
// where no rune but an ASCII letter folds to one (ſ and the Kelvin sign
// are past U+00FF).

// lineStartFold returns the first place at or after i where a line (^ in
// multi-line mode) starts with prefix, ASCII case folded, or -1.
func lineStartFold(s string, i int, prefix string) int {
	for i < len(s) {
		if (i == 0 || s[i-1] == '\n') && hasPrefixFold(s[i:], prefix) {
			return i
		}
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
	}
	return -1
}

// msgidBeforeReceived is /^Message-Id:.*?^Received:/msi: a line starting
// Message-Id: and a later one starting Received: (the first Message-Id
// leaves the most room for it).
func msgidBeforeReceived(s string) bool {
	i := lineStartFold(s, 0, "message-id:")
	return i >= 0 && lineStartFold(s, i+1, "received:") >= 0
}

// missingSpace is /^(?:Subject|From|To|Reply-To):\S/ism: a line starting
// with one of the names, a colon and a character that is not RE2's \s
// (a byte past ASCII starts a rune that is not).
func missingSpace(s string) bool {
	for i := 0; i < len(s); {
		t := s[i:]
		for _, name := range [...]string{"subject:", "from:", "to:", "reply-to:"} {
			if len(t) > len(name) && hasPrefixFold(t, name) {
				switch t[len(name)] {
				case '\t', '\n', '\f', '\r', ' ':
				default:
					return true
				}
			}
		}
		j := strings.IndexByte(t, '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return false
}

// twoReceived is /(?:^|\n)Received:\s.+\nReceived:\s/s with the
// name in any ASCII case: two lines that start with the name, a colon and
// RE2's \s, the second starting past the first's \s and one character
// more (.+ with /s is any run of one rune at least; no rune holds a \n
// byte). The first such line leaves the most room for the second.
func twoReceived(s string) bool {
	const name = "received:"
	at := func(i int) bool {
		if !hasPrefixFold(s[i:], name) || i+len(name) >= len(s) {
			return false
		}
		switch s[i+len(name)] {
		case '\t', '\n', '\f', '\r', ' ':
			return true
		}
		return false
	}
	first := -1
	for i := 0; i < len(s); {
		if first < 0 && at(i) {
			first = i
		} else if first >= 0 && i >= first+len(name)+3 && at(i) {
			return true
		}
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return false
}

// nonSpaceAfter is /LIT\S{n}/: lit (in its case) and n runes that are
// not RE2's \s ([\t\n\f\r ]: \v is \S), an invalid byte one rune.
func nonSpaceAfter(s, lit string, n int) bool {
	for i := strings.Index(s, lit); i >= 0; {
		j := i + len(lit)
		k := 0
		for ; k < n && j < len(s); k++ {
			c := s[j]
			if c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ' {
				break
			}
			_, w := utf8.DecodeRuneInString(s[j:])
			j += w
		}
		if k == n {
			return true
		}
		x := strings.Index(s[i+1:], lit)
		if x < 0 {
			break
		}
		i += 1 + x
	}
	return false
}

// unclosedBracket is /\[\d+\r?\n/: a [, ASCII digits (RE2's \d), \r
// maybe and \n.
func unclosedBracket(s string) bool {
	for i := strings.IndexByte(s, '['); i >= 0; {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j > i+1 {
			if j < len(s) && s[j] == '\r' {
				j++
			}
			if j < len(s) && s[j] == '\n' {
				return true
			}
		}
		k := strings.IndexByte(s[i+1:], '[')
		if k < 0 {
			break
		}
		i += 1 + k
	}
	return false
}

// longLine reports whether a line of s (^ in multi-line mode: the start,
// or just after \n) begins with n runes none of which is \r or \n. An
// invalid byte is one rune, as to the regexp engine.
func longLine(s string, n int) bool {
	for len(s) >= n {
		end := strings.IndexByte(s, '\n')
		line := s
		if end >= 0 {
			line, s = s[:end], s[end+1:]
		} else {
			s = ""
		}
		if len(line) < n {
			continue
		}
		if cr := strings.IndexByte(line, '\r'); cr >= 0 {
			line = line[:cr]
		}
		if len(line) >= n && utf8.RuneCountInString(line) >= n {
			return true
		}
	}
	return false
}

// screenNatives are screens in Go for rules of whole texts (headers,
// full) that have neither a literal for the Aho-Corasick pass nor
// anything better than a group automaton to screen them by: a text they
// reject cannot match the regex, one they pass runs it. Keyed like
// plainNatives by the exact pattern text.
var screenNatives = map[string]func(text string) bool{
	// BAD_ENC_HEADER (ALL:raw): backtracking (a lookahead) and its one
	// literal, =?, too short for the screen; its group automaton read
	// every header block.
	`/=\?[^?\s]+\?[^?\s]\?\s*[^?]+\s(?!\?=)/`: func(s string) bool { return strings.Contains(s, "=?") },
	// __HDR_CASE_REVERSED and __RAND_HEADER (ALL): the two rules left in
	// a group automaton that read every header block; these read the
	// start of each line.
	caseReversedPattern: screenCaseReversed,
	randHeaderPattern:   screenRandHeader,
}

// caseReversedPattern is __HDR_CASE_REVERSED's.
const caseReversedPattern = `/^(?!DomainKey)[^-:\s]*[a-z][A-Z]/m`

// screenCaseReversed passes a text with a line that starts with a run of
// bytes other than -, :, space, \t, \n, \f and \r in which a lower case
// ASCII letter comes right before an upper case one. The regex's run
// ends at the first \s rune (this one reads on past \v and white space
// beyond ASCII: it passes more texts, never fewer), and its lookahead is
// left to the engine.
func screenCaseReversed(s string) bool {
	for i := 0; i < len(s); {
		lower := false
		for ; i < len(s); i++ {
			c := s[i]
			if c == '-' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' {
				break
			}
			if lower && c >= 'A' && c <= 'Z' {
				return true
			}
			lower = c >= 'a' && c <= 'z'
		}
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return false
}

// nativeRule is a rule of a prefilter answered by its native matcher,
// or, with screen, screened by it (screenNatives).
type nativeRule struct {
	pos    int32
	match  func(text string) bool
	screen bool
}
