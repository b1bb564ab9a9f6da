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
