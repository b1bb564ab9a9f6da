package sa

import "unicode/utf8"

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
