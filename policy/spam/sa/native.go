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
}

// nativeRule is a rule of a prefilter answered by its native matcher,
// or, with screen, screened by it (screenNatives).
type nativeRule struct {
	pos    int32
	match  func(text string) bool
	screen bool
}
