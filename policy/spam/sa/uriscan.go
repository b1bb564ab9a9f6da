package sa

import "unicode/utf8"

// scanURIs appends to out the URLs of a plain text part, at most limit of
// them: exactly what uriRE.FindAllString(text, limit) returns, by a byte
// walk instead of the regexp's machine. uriRE is
//
//	(?i)\b(?:(?:https?|ftp)://[^\s<>"'\x60]+|www\d{0,3}\.[a-z0-9-]+\.[^\s<>"'\x60]+|mailto:[^\s<>"'\x60]+)
//
// Every branch is deterministic (each repetition is followed by a byte it
// cannot take, the tails are greedy runs to the end of their class), so
// the leftmost-first match at a position is the first branch that fits,
// with its runs taken whole, and the next search starts at its end.
// Case folding is Go's: s also matches U+017F (ſ) and k U+212A (K).
func scanURIs(text string, limit int, out []string) []string {
	n := 0
	for i := 0; i < len(text) && n != limit; {
		c := text[i] | 0x20
		if c != 'h' && c != 'f' && c != 'w' && c != 'm' {
			i++
			continue
		}
		// \b before a word byte: the rune before is no ASCII word
		// character (a byte >= 0x80 ends a rune that is not one).
		if i > 0 && isWordByte(text[i-1]) {
			i++
			continue
		}
		end := uriAt(text, i)
		if end < 0 {
			i++
			continue
		}
		out = append(out, text[i:end])
		n++
		i = end
	}
	return out
}

// uriAt returns the end of the uriRE match starting at i, -1 for none.
func uriAt(text string, i int) int {
	switch text[i] | 0x20 {
	case 'h', 'f':
		j := foldPrefix(text, i, "ftp")
		if j < 0 {
			if j = foldPrefix(text, i, "http"); j < 0 {
				return -1
			}
			// s? is greedy: s when there is one.
			if k := foldPrefix(text, j, "s"); k >= 0 {
				j = k
			}
		}
		if j+3 > len(text) || text[j:j+3] != "://" {
			return -1
		}
		return uriTail(text, j+3)
	case 'w':
		j := foldPrefix(text, i, "www")
		if j < 0 {
			return -1
		}
		for d := 0; d < 3 && j < len(text) && text[j] >= '0' && text[j] <= '9'; d++ {
			j++
		}
		if j >= len(text) || text[j] != '.' {
			return -1
		}
		j++
		start := j
		for j < len(text) {
			c := text[j]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
				j++
				continue
			}
			if c >= utf8.RuneSelf {
				if r, w := utf8.DecodeRuneInString(text[j:]); r == 'ſ' || r == 'K' {
					j += w
					continue
				}
			}
			break
		}
		if j == start || j >= len(text) || text[j] != '.' {
			return -1
		}
		return uriTail(text, j+1)
	case 'm':
		j := foldPrefix(text, i, "mailto:")
		if j < 0 {
			return -1
		}
		return uriTail(text, j)
	}
	return -1
}

// uriTail returns the end of the run of [^\s<>"'\x60]+ at i (Go's \s:
// \t \n \f \r and space), -1 when it is empty. All the excluded runes are
// ASCII, and no byte of a multi-byte or invalid sequence is, so bytes
// decide.
func uriTail(text string, i int) int {
	j := i
	for j < len(text) && !uriStop[text[j]] {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

var uriStop = [256]bool{'\t': true, '\n': true, '\f': true, '\r': true, ' ': true,
	'<': true, '>': true, '"': true, '\'': true, '`': true}

// foldPrefix returns the end of lit (lower-case ASCII) at text[i:] under
// Go's simple case folding, -1 when it is not there.
func foldPrefix(text string, i int, lit string) int {
	for k := 0; k < len(lit); k++ {
		if i >= len(text) {
			return -1
		}
		c := text[i]
		if c|0x20 == lit[k] && (lit[k] >= 'a' && lit[k] <= 'z') || c == lit[k] {
			i++
			continue
		}
		if c >= utf8.RuneSelf && (lit[k] == 's' || lit[k] == 'k') {
			r, w := utf8.DecodeRuneInString(text[i:])
			if lit[k] == 's' && r == 'ſ' || lit[k] == 'k' && r == 'K' {
				i += w
				continue
			}
		}
		return -1
	}
	return i
}

// scanTextEmails appends to out the spans of the addresses in a plain
// text, at most limit of them: exactly what
// textEmail.FindAllStringIndex(text, limit) returns, where textEmail is
//
//	(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b
//
// "@" is in none of the classes, so a match's user part is the rest of a
// run of user characters, from the run's first \b on, and whether a
// start in the run matches depends on the run's end alone: a run either
// matches from its first \b or not at all. After the "@", see
// emailDomainEnd. Case folding is Go's: the letters include U+017F (ſ)
// and U+212A (K), which are no word characters for \b.
func scanTextEmails(text string, limit int, out [][2]int) [][2]int {
	n := 0
	for i := 0; i < len(text) && n != limit; {
		r, w := rune(text[i]), 1
		if r >= utf8.RuneSelf {
			r, w = utf8.DecodeRuneInString(text[i:])
		}
		if !emailUserRune(r) {
			i += w
			continue
		}
		start := -1
		prevWord := i > 0 && isWordByte(text[i-1])
		j := i
		for j < len(text) {
			r, w := rune(text[j]), 1
			if r >= utf8.RuneSelf {
				r, w = utf8.DecodeRuneInString(text[j:])
			}
			if !emailUserRune(r) {
				break
			}
			word := r < utf8.RuneSelf && isWordByte(byte(r))
			if start < 0 && word != prevWord {
				start = j
			}
			prevWord = word
			j += w
		}
		if start >= 0 && j < len(text) && text[j] == '@' {
			if e := emailDomainEnd(text, j+1); e >= 0 {
				out = append(out, [2]int{start, e})
				n++
				i = e
				continue
			}
		}
		i = j
	}
	return out
}

// emailDomainEnd returns where textEmail's
// [a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b ends when matched at p, -1
// for no match. Each label run is taken whole (a shorter one leaves a
// label character where "." must follow), so the choices are how many
// labels the greedy (?:...)* takes, most first, and how many letters of
// the label after them [a-z]{2,} takes, most first, until \b holds.
func emailDomainEnd(s string, p int) int {
	q := emailLabelEnd(s, p)
	if q == p {
		return -1
	}
	var buf [8]int
	labels := buf[:0] // the starts of the labels after the first
	for q < len(s) && s[q] == '.' {
		e := emailLabelEnd(s, q+1)
		if e == q+1 {
			break
		}
		labels = append(labels, q+1)
		q = e
	}
	// With (?:...)* taking k labels, labels[k] is [a-z]{2,}'s; taking
	// them all leaves it none.
	for k := len(labels) - 1; k >= 0; k-- {
		e, n := labels[k], 0
		for e < len(s) {
			r, w := rune(s[e]), 1
			if r >= utf8.RuneSelf {
				r, w = utf8.DecodeRuneInString(s[e:])
			}
			if !emailLetter(r) {
				break
			}
			e += w
			n++
		}
		// Give letters back; each is ASCII or one of the two folds,
		// whose last bytes (0xbf, 0xaa) tell their length.
		for ; n >= 2; n-- {
			if isWordByte(s[e-1]) != (e < len(s) && isWordByte(s[e])) {
				return e
			}
			switch s[e-1] {
			case 0xbf: // ſ
				e -= 2
			case 0xaa: // K
				e -= 3
			default:
				e--
			}
		}
	}
	return -1
}

// emailLabelEnd returns the end of the run of [a-z0-9-] (folded) at i.
func emailLabelEnd(s string, i int) int {
	for i < len(s) {
		r, w := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, w = utf8.DecodeRuneInString(s[i:])
		}
		if !emailLetter(r) && !(r >= '0' && r <= '9') && r != '-' {
			break
		}
		i += w
	}
	return i
}

// emailLetter is (?i)[a-z]: the ASCII letters and the non-ASCII runes
// that fold to them.
func emailLetter(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == 0x17f || r == 0x212a
}

// emailUserRune is (?i)[a-z0-9._%+-].
func emailUserRune(r rune) bool {
	switch r {
	case '.', '_', '%', '+', '-':
		return true
	}
	return emailLetter(r) || r >= '0' && r <= '9'
}
