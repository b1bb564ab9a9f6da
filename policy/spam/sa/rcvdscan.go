package sa

import (
	"strings"
	"unicode/utf8"
)

// Hand-made matchers for the Received field regexes read on every
// message: each returns exactly what the regexp in its comment returns
// (rcvdscan_test.go cross-checks them), by a byte walk instead of the
// regexp's machine. Go's \s is [\t\n\f\r ], \d [0-9]; all the classes
// are ASCII, and no byte of a multi-byte or invalid UTF-8 sequence is,
// so bytes decide except where a rune is consumed whole (. and \S).

func isSpaceRE(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// rcvdClause returns the submatch of \s<word>\s+([^\s;()]+) (the by and
// id clauses: word is "by" or "id"), ok false when there is none. Every
// part after the leading \s is deterministic (\s+ is followed by a byte
// it cannot take), so the first position where the whole fits is the
// leftmost match and its run is the submatch.
func rcvdClause(v, word string) (string, bool) {
	for i := 0; i+len(word)+2 < len(v); i++ {
		if !isSpaceRE(v[i]) || v[i+1:i+1+len(word)] != word {
			continue
		}
		j := i + 1 + len(word)
		k := j
		for k < len(v) && isSpaceRE(v[k]) {
			k++
		}
		if k == j {
			continue
		}
		e := k
		for e < len(v) && !isSpaceRE(v[e]) && v[e] != ';' && v[e] != '(' && v[e] != ')' {
			e++
		}
		if e > k {
			return v[k:e], true
		}
	}
	return "", false
}

// rcvdDate returns what rcvdDateRE
//
//	\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+
//
// finds in v (the date of a Received field), "" for none. At a start,
// .? takes a rune (not \n) or nothing and \d+ the digits after: both
// choices end where the run of digits after the first digit ends, so
// the position after \s.?\d+ is fixed; the rest is deterministic.
func rcvdDate(v string) string {
	for i := 0; i < len(v); i++ {
		if !isSpaceRE(v[i]) {
			continue
		}
		if end := rcvdDateAt(v, i+1); end >= 0 {
			return v[i:end]
		}
	}
	return ""
}

// rcvdDateAt matches .?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+ at j, returning
// its end, -1 for no match.
func rcvdDateAt(v string, j int) int {
	if j >= len(v) {
		return -1
	}
	d := j // where \d+ starts
	if !isDigit(v[j]) {
		if v[j] == '\n' {
			return -1
		}
		_, w := utf8.DecodeRuneInString(v[j:])
		d = j + w
	}
	k := digits(v, d)
	if k < 0 || k >= len(v) || v[k] != ' ' {
		return -1
	}
	k++
	for range 3 {
		if k >= len(v) || isSpaceRE(v[k]) {
			return -1
		}
		_, w := utf8.DecodeRuneInString(v[k:])
		k += w
	}
	for _, sep := range []byte{' ', ' ', ':', ':'} {
		if k >= len(v) || v[k] != sep {
			return -1
		}
		if k = digits(v, k+1); k < 0 {
			return -1
		}
	}
	if k >= len(v) || v[k] != ' ' {
		return -1
	}
	k++
	e := k
	for e < len(v) && !isSpaceRE(v[e]) {
		e++
	}
	if e == k {
		return -1
	}
	return e
}

// digits returns the end of the run of ASCII digits at i, -1 when empty.
func digits(v string, i int) int {
	j := i
	for j < len(v) && isDigit(v[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// rcvdEnvFromValue returns the submatch of Received.pm's envelope sender
// clause
//
//	(?i)(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)\b
//
// in v, ok false when there is none. The prefix is deterministic (its
// alternatives and :? exclude each other); \S+ takes the run of non-space
// bytes after it and gives back until \b holds, and a \b position always
// has an ASCII byte on one side, so it is a rune boundary. Under (?i),
// "s" also matches U+017F (ſ); no other letter of the prefix has a
// non-ASCII fold.
func rcvdEnvFromValue(v string) (string, bool) {
	for i := 0; i < len(v); i++ {
		var p int // where \S+ starts
		switch v[i] | 0x20 {
		case 'r':
			if !hasPrefixFoldASCII(v[i:], "return-path") {
				continue
			}
			p = i + len("return-path")
			if p < len(v) && v[p] == ':' {
				p++
			}
			if p >= len(v) || v[p] != ' ' {
				continue
			}
			p++
		case 'e':
			if !hasPrefixFoldASCII(v[i:], "envelope-") {
				continue
			}
			p = i + len("envelope-")
			if n := prefixSender(v[p:]); n > 0 {
				p += n
			} else if hasPrefixFoldASCII(v[p:], "from") {
				p += len("from")
			} else {
				continue
			}
			if p >= len(v) || v[p] != ' ' && v[p] != '=' {
				continue
			}
			p++
		default:
			continue
		}
		q := p
		for q < len(v) && !isSpaceRE(v[q]) {
			q++
		}
		for e := q; e > p; e-- {
			if isWordByte(v[e-1]) != (e < len(v) && isWordByte(v[e])) {
				return v[p:e], true
			}
		}
	}
	return "", false
}

// hasPrefixFoldASCII reports whether s starts with the lower-case ASCII
// word w in any ASCII case.
func hasPrefixFoldASCII(s, w string) bool {
	if len(s) < len(w) {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// prefixSender returns the length of (?i)sender at the start of s, 0 for
// none: each s may also be U+017F, which folds to it.
func prefixSender(s string) int {
	n := 0
	for i := 0; i < len("sender"); i++ {
		w := "sender"[i]
		switch {
		case n < len(s) && s[n]|0x20 == w: // only S and s give s
			n++
		case w == 's' && strings.HasPrefix(s[n:], "\u017f"):
			n += len("\u017f")
		default:
			return 0
		}
	}
	return n
}

// rcvdPostfixShape returns the submatches of the Postfix and Sendmail
// shape of a Received field,
//
//	^from\s+(\S+)\s+\(([^\s\[\]()]*)\s*\[(?:IPv6:)?([0-9A-Fa-f.:]+)\]
//
// ok false when v does not have it. Every part is deterministic: each run
// is followed by a byte it cannot take, and without "IPv6:" the address
// class cannot start on its "I".
func rcvdPostfixShape(v string) (helo, rdns, ip string, ok bool) {
	if !strings.HasPrefix(v, "from") {
		return "", "", "", false
	}
	i := spacesAt(v, len("from"))
	if i == len("from") {
		return "", "", "", false
	}
	j := i
	for j < len(v) && !isSpaceRE(v[j]) {
		j++
	}
	k := spacesAt(v, j)
	if j == i || k == j || k >= len(v) || v[k] != '(' {
		return "", "", "", false
	}
	k++
	l := k
	for l < len(v) && !isSpaceRE(v[l]) && v[l] != '[' && v[l] != ']' && v[l] != '(' && v[l] != ')' {
		l++
	}
	m := spacesAt(v, l)
	if m >= len(v) || v[m] != '[' {
		return "", "", "", false
	}
	m++
	if strings.HasPrefix(v[m:], "IPv6:") {
		m += len("IPv6:")
	}
	n := m
	for n < len(v) && (isDigit(v[n]) || v[n] >= 'a' && v[n] <= 'f' || v[n] >= 'A' && v[n] <= 'F' || v[n] == '.' || v[n] == ':') {
		n++
	}
	if n == m || n >= len(v) || v[n] != ']' {
		return "", "", "", false
	}
	return v[i:j], v[k:l], v[m:n], true
}

// spacesAt returns the end of the run of \s at i.
func spacesAt(v string, i int) int {
	for i < len(v) && isSpaceRE(v[i]) {
		i++
	}
	return i
}
