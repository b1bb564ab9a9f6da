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

// nativeRule is a rule of a prefilter answered by its native matcher.
type nativeRule struct {
	pos   int32
	match func(text string) bool
}
