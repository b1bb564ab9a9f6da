package sa

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Errors of the regex translation.
var (
	ErrRegexSyntax = errors.New("sa: bad regex")
	// ErrBacktrack marks a Perl regex that RE2 cannot run (backreferences,
	// lookaround, \G, conditionals, recursion).
	ErrBacktrack = errors.New("sa: regex needs a backtracking engine")
)

// SplitRegex splits a rule's regex as written: /re/flags, m{re}flags,
// m!re!flags (any delimiter after m). The escaped delimiter inside the
// pattern is unescaped.
func SplitRegex(s string) (pattern, flags string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", fmt.Errorf("%w: empty", ErrRegexSyntax)
	}
	open := s[0]
	start := 1
	if open == 'm' && len(s) > 1 {
		open = s[1]
		start = 2
	} else if open != '/' {
		return "", "", fmt.Errorf("%w: %q does not start with / or m", ErrRegexSyntax, truncate(s, 40))
	}
	if open == ' ' || open == '\t' || open >= 'a' && open <= 'z' || open >= 'A' && open <= 'Z' || open >= '0' && open <= '9' || open == '\\' {
		return "", "", fmt.Errorf("%w: bad delimiter %q", ErrRegexSyntax, open)
	}
	closeDelim := open
	switch open {
	case '{':
		closeDelim = '}'
	case '(':
		closeDelim = ')'
	case '[':
		closeDelim = ']'
	case '<':
		closeDelim = '>'
	}
	end := -1
	if closeDelim != open {
		// Bracketing delimiters nest; find the last closing one followed
		// only by flag letters.
		for i := len(s) - 1; i >= start; i-- {
			if s[i] == closeDelim {
				end = i
				break
			}
		}
	} else {
		for i := start; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == open {
				end = i
				break
			}
		}
	}
	if end < 0 {
		return "", "", fmt.Errorf("%w: unterminated %q", ErrRegexSyntax, truncate(s, 40))
	}
	pattern, flags = s[start:end], s[end+1:]
	for _, c := range flags {
		if !strings.ContainsRune("imsxgoaulpdn", c) {
			return "", "", fmt.Errorf("%w: flag %q", ErrRegexSyntax, c)
		}
	}
	if closeDelim == open && open != '/' || open == '/' {
		// \/ is the delimiter, not an escape of anything: keep it as a
		// plain character (safe in both engines).
		pattern = strings.ReplaceAll(pattern, `\`+string(open), `\`+string(open))
	}
	return pattern, flags, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

type target int

const (
	targetRE2 target = iota
	targetBT
	// targetSuperset is RE2 syntax for a regex that matches at least what
	// the Perl one matches: lookarounds dropped, backreferences as .*; it
	// screens the regexes that run on the backtracking engine.
	targetSuperset
)

// Translate turns a Perl regex and its flags into Go RE2 syntax. Text is
// matched as bytes, each byte one rune (see latin1): a byte above 0x7f in
// the pattern, or \xHH, is that rune, and \x{HHHH} above 0xff becomes its
// UTF-8 bytes, as Perl matches rule regexes against UTF-8 octets.
// ErrBacktrack says the regex needs backtracking.
func Translate(pattern, flags string) (string, error) {
	return translate(pattern, flags, targetRE2)
}

// posixClasses are the POSIX bracket classes, spelled out for both engines.
var posixClasses = map[string]string{
	"alpha": `a-zA-Z`, "digit": `0-9`, "alnum": `a-zA-Z0-9`, "upper": `A-Z`, "lower": `a-z`,
	"space": `\t\n\x0b\f\r `, "blank": `\t `, "punct": `!-/:-@\[-` + "`" + `{-~`,
	"xdigit": `0-9A-Fa-f`, "word": `0-9A-Za-z_`, "cntrl": `\x00-\x1f\x7f`, "print": `\x20-\x7e`,
	"graph": `\x21-\x7e`, "ascii": `\x00-\x7f`,
}

func translate(p, flags string, tgt target) (string, error) {
	x := strings.ContainsRune(flags, 'x')
	var b strings.Builder
	if tgt != targetBT {
		var f string
		for _, c := range "ims" {
			if strings.ContainsRune(flags, c) {
				f += string(c)
			}
		}
		if f != "" {
			b.WriteString("(?" + f + ")")
		}
	}
	mflag := strings.ContainsRune(flags, 'm')
	hex := func(r rune) string {
		if tgt == targetBT {
			return fmt.Sprintf(`\u%04x`, r)
		}
		return fmt.Sprintf(`\x{%x}`, r)
	}
	// byteSeq writes a code point as Perl would match it against UTF-8
	// octets: itself up to 0xff, else its UTF-8 bytes.
	byteSeq := func(r rune, inClass bool) (string, error) {
		if r <= 0xff {
			return hex(r), nil
		}
		if inClass {
			return "", fmt.Errorf("%w: wide character in class", ErrBacktrack)
		}
		var buf [4]byte
		n := utf8.EncodeRune(buf[:], r)
		s := "(?:"
		for _, c := range buf[:n] {
			s += hex(rune(c))
		}
		return s + ")", nil
	}
	inClass := false
	classItems := 0     // items written in the current class
	lastWasSet := false // last class item was \w-like (so a following - is literal)
	groups := 0
	depth := 0 // open groups, for the superset's lookahead rule
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c >= 0x80 {
			b.WriteString(hex(rune(c)))
			classItems++
			lastWasSet = false
			continue
		}
		if x && !inClass {
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' {
				continue
			}
			if c == '#' {
				for i < len(p) && p[i] != '\n' {
					i++
				}
				continue
			}
		}
		switch {
		case c == '\\':
			if i+1 >= len(p) {
				return "", fmt.Errorf("%w: trailing backslash", ErrRegexSyntax)
			}
			i++
			e := p[i]
			s, n, err := translateEscape(p[i:], inClass, tgt, byteSeq)
			if err != nil {
				return "", err
			}
			i += n - 1
			b.WriteString(s)
			if inClass {
				classItems++
				lastWasSet = strings.ContainsRune("dDwWsShHvV", rune(e))
			}
			continue
		case inClass:
			switch c {
			case ']':
				if classItems == 0 {
					b.WriteString(`\]`)
					classItems++
					continue
				}
				inClass = false
				b.WriteByte(']')
				continue
			case '[':
				if i+1 < len(p) && p[i+1] == ':' {
					if j := strings.Index(p[i+2:], ":]"); j >= 0 {
						name := p[i+2 : i+2+j]
						neg := strings.HasPrefix(name, "^")
						if cls, ok := posixClasses[strings.TrimPrefix(name, "^")]; ok && !neg {
							b.WriteString(cls)
							i += j + 3
							classItems++
							lastWasSet = true
							continue
						}
						return "", fmt.Errorf("%w: POSIX class %q", ErrBacktrack, name)
					}
				}
				b.WriteString(`\[`)
			case '-':
				if lastWasSet || classItems == 0 || i+1 < len(p) && p[i+1] == ']' {
					b.WriteString(`\-`)
				} else {
					b.WriteByte('-')
					classItems--
				}
			case '^':
				if classItems == 0 && p[i-1] == '[' {
					b.WriteByte('^')
					continue
				}
				b.WriteString(`\^`)
			case '&', '~', '|':
				b.WriteString(`\` + string(c))
			default:
				b.WriteByte(c)
			}
			classItems++
			lastWasSet = false
			continue
		}
		switch c {
		case '[':
			inClass = true
			classItems = 0
			lastWasSet = false
			b.WriteByte('[')
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
		case '(':
			depth++
			if i+1 < len(p) && p[i+1] == '?' {
				rest := p[i+2:]
				switch {
				case strings.HasPrefix(rest, "#"):
					j := strings.IndexByte(rest, ')')
					if j < 0 {
						return "", fmt.Errorf("%w: unterminated comment", ErrRegexSyntax)
					}
					i += 2 + j
					depth--
					continue
				case strings.HasPrefix(rest, ":"):
					b.WriteString("(?:")
					i += 2
				case strings.HasPrefix(rest, ">"):
					// Atomic group: RE2 never backtracks, so a plain group
					// matches the same texts except where atomicity makes a
					// match fail; rules use it for speed only.
					b.WriteString("(?:")
					i += 2
				case strings.HasPrefix(rest, "="), strings.HasPrefix(rest, "!"),
					strings.HasPrefix(rest, "<="), strings.HasPrefix(rest, "<!"):
					if tgt == targetRE2 {
						return "", fmt.Errorf("%w: lookaround", ErrBacktrack)
					}
					if tgt == targetSuperset {
						end := groupEnd(p, i)
						if end < 0 {
							return "", fmt.Errorf("%w: unterminated group", ErrRegexSyntax)
						}
						if depth == 1 && rest[0] == '=' {
							// A(?=X)B at the top: every match of it contains
							// a match of AX; the screen is AX.
							inner, err := translate(p[i+3:end], flags, targetSuperset)
							if err != nil {
								return "", err
							}
							b.WriteString("(?:" + strings.TrimPrefix(inner, flagPrefix(flags)) + ")")
							return b.String(), nil
						}
						i = end
						depth--
						continue
					}
					b.WriteByte('(')
					continue
				case strings.HasPrefix(rest, "<"), strings.HasPrefix(rest, "P<"), strings.HasPrefix(rest, "'"):
					// Named group.
					k := 0
					if rest[0] == 'P' {
						k = 1
					}
					closeCh := byte('>')
					if rest[k] == '\'' {
						closeCh = '\''
					}
					j := strings.IndexByte(rest[k+1:], closeCh)
					if j < 0 {
						return "", fmt.Errorf("%w: bad group name", ErrRegexSyntax)
					}
					name := rest[k+1 : k+1+j]
					if tgt != targetBT {
						b.WriteString("(?P<" + name + ">")
					} else {
						b.WriteString("(?<" + name + ">")
					}
					groups++
					i += 2 + k + 1 + j
				default:
					// Inline flags: (?imsx-imsx) or (?imsx-imsx:...) or (?^...).
					j := 0
					var on, off strings.Builder
					neg := false
					for j < len(rest) && strings.IndexByte("imsxnpadlu^-", rest[j]) >= 0 {
						switch ch := rest[j]; ch {
						case '-':
							neg = true
						case '^':
							off.WriteString("ims")
						case 'i', 'm', 's':
							if neg {
								off.WriteByte(ch)
							} else {
								on.WriteByte(ch)
							}
						case 'x':
							if !neg {
								x = true
							}
						}
						j++
					}
					if j >= len(rest) || (rest[j] != ')' && rest[j] != ':') {
						return "", fmt.Errorf("%w: group (?%s", ErrBacktrack, truncate(rest, 8))
					}
					fl := on.String()
					offs := ""
					for _, c := range off.String() {
						if !strings.ContainsRune(fl, c) && !strings.ContainsRune(offs, c) {
							offs += string(c)
						}
					}
					if offs != "" {
						fl += "-" + offs
					}
					if strings.Contains(fl, "m") && !strings.Contains(off.String(), "m") {
						mflag = true
					}
					if rest[j] == ')' {
						depth--
					}
					if fl == "" {
						if rest[j] == ')' {
							i += 2 + j
							continue
						}
						b.WriteString("(?:")
					} else {
						b.WriteString("(?" + fl + string(rest[j]))
					}
					i += 2 + j
				}
				continue
			}
			groups++
			b.WriteByte('(')
		case '$':
			if tgt != targetBT && !mflag {
				// Perl's $ matches at the end or before a final newline.
				b.WriteString(`(?:\n?\z)`)
			} else {
				b.WriteByte('$')
			}
		case '*', '+', '?':
			b.WriteByte(c)
			// Possessive (x*+) drops its +; a lazy ? stays.
			if i+1 < len(p) && p[i+1] == '+' {
				i++
			}
		case '{':
			j := quantifierEnd(p[i:])
			if j < 0 {
				b.WriteString(`\{`)
				continue
			}
			b.WriteString(p[i : i+j])
			i += j - 1
			if i+1 < len(p) && p[i+1] == '+' {
				i++
			}
		case ')':
			depth--
			b.WriteByte(')')
		case '}':
			b.WriteString(`\}`)
		default:
			b.WriteByte(c)
		}
	}
	if inClass {
		return "", fmt.Errorf("%w: unterminated class", ErrRegexSyntax)
	}
	return b.String(), nil
}

// quantifierEnd returns the length of {n}, {n,} or {n,m} at the start of
// s, or -1 when the brace is a literal (Perl before 5.34 reads {,n} so).
func quantifierEnd(s string) int {
	i := 1
	digits := func() int {
		k := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - k
	}
	if digits() == 0 {
		return -1
	}
	if i < len(s) && s[i] == ',' {
		i++
		digits()
	}
	if i < len(s) && s[i] == '}' {
		return i + 1
	}
	return -1
}

// translateEscape translates the escape at the start of s (after the
// backslash) and says how many bytes of s it used.
func translateEscape(s string, inClass bool, tgt target, byteSeq func(rune, bool) (string, error)) (string, int, error) {
	e := s[0]
	lit := func(r rune) (string, int, error) {
		out, err := byteSeq(r, inClass)
		return out, 1, err
	}
	switch e {
	case 'd', 'D', 'w', 'W', 's', 'S', 't', 'n', 'r', 'f':
		return `\` + string(e), 1, nil
	case 'a':
		return lit(7)
	case 'e':
		return lit(0x1b)
	case 'b':
		if inClass {
			return lit(8)
		}
		return `\b`, 1, nil
	case 'B':
		return `\B`, 1, nil
	case 'A', 'z':
		return `\` + string(e), 1, nil
	case 'Z':
		if tgt == targetBT {
			return `\Z`, 1, nil
		}
		return `(?:\n?\z)`, 1, nil
	case 'h':
		if inClass {
			return `\t `, 1, nil
		}
		return `[\t ]`, 1, nil
	case 'H':
		if inClass {
			return "", 0, fmt.Errorf("%w: \\H in class", ErrBacktrack)
		}
		return `[^\t ]`, 1, nil
	case 'v':
		if inClass {
			return `\n\x0b\f\r`, 1, nil
		}
		return `[\n\x0b\f\r]`, 1, nil
	case 'V':
		if inClass {
			return "", 0, fmt.Errorf("%w: \\V in class", ErrBacktrack)
		}
		return `[^\n\x0b\f\r]`, 1, nil
	case 'R':
		return `(?:\r\n|[\n\x0b\f\r])`, 1, nil
	case 'N':
		if len(s) > 1 && s[1] == '{' {
			return "", 0, fmt.Errorf("%w: \\N{...}", ErrBacktrack)
		}
		return `[^\n]`, 1, nil
	case 'Q':
		// Quote up to \E.
		end := strings.Index(s, `\E`)
		q := s[1:]
		n := len(s)
		if end >= 0 {
			q = s[1:end]
			n = end + 2
		}
		var b strings.Builder
		for i := 0; i < len(q); i++ {
			c := q[i]
			if c >= 0x80 {
				out, err := byteSeq(rune(c), inClass)
				if err != nil {
					return "", 0, err
				}
				b.WriteString(out)
				continue
			}
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
		return b.String(), n, nil
	case 'E':
		return "", 1, nil
	case 'x':
		if len(s) > 1 && s[1] == '{' {
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return "", 0, fmt.Errorf("%w: unterminated \\x{", ErrRegexSyntax)
			}
			v, err := strconv.ParseUint(strings.TrimSpace(s[2:end]), 16, 32)
			if err != nil || v > utf8.MaxRune {
				return "", 0, fmt.Errorf("%w: bad \\x{%s}", ErrRegexSyntax, s[2:end])
			}
			out, err := byteSeq(rune(v), inClass)
			return out, end + 1, err
		}
		n := 1
		for n < 3 && n < len(s) && isHex(s[n]) {
			n++
		}
		v := uint64(0)
		if n > 1 {
			v, _ = strconv.ParseUint(s[1:n], 16, 8)
		}
		out, err := byteSeq(rune(v), inClass)
		return out, n, err
	case 'c':
		if len(s) < 2 {
			return "", 0, fmt.Errorf("%w: \\c at end", ErrRegexSyntax)
		}
		r := rune(s[1]&^0x20) ^ 0x40
		out, err := byteSeq(r, inClass)
		return out, 2, err
	case '0':
		n := 1
		for n < 4 && n < len(s) && s[n] >= '0' && s[n] <= '7' {
			n++
		}
		v, _ := strconv.ParseUint("0"+s[1:n], 8, 16)
		out, err := byteSeq(rune(v), inClass)
		return out, n, err
	case '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if inClass {
			// Octal in a class.
			n := 0
			for n < 3 && n < len(s) && s[n] >= '0' && s[n] <= '7' {
				n++
			}
			if n == 0 {
				return string(e), 1, nil
			}
			v, _ := strconv.ParseUint(s[:n], 8, 16)
			out, err := byteSeq(rune(v), inClass)
			return out, n, err
		}
		if len(s) >= 3 && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && e <= '7' {
			// Three octal digits: a character (rules have fewer groups).
			v, _ := strconv.ParseUint(s[:3], 8, 16)
			out, err := byteSeq(rune(v), inClass)
			return out, 3, err
		}
		if tgt == targetBT {
			return `\` + string(e), 1, nil
		}
		if tgt == targetSuperset {
			return `(?s:.*)`, 1, nil
		}
		return "", 0, fmt.Errorf("%w: backreference \\%c", ErrBacktrack, e)
	case 'G', 'K', 'X', 'C', 'l', 'u', 'L', 'U', 'g', 'k':
		if tgt == targetBT && (e == 'G' || e == 'k') {
			return `\` + string(e), 1, nil
		}
		if tgt == targetSuperset && e == 'G' {
			return "", 1, nil
		}
		return "", 0, fmt.Errorf("%w: \\%c", ErrBacktrack, e)
	case 'p', 'P':
		if len(s) > 1 && s[1] == '{' {
			end := strings.IndexByte(s, '}')
			if end > 0 {
				return `\` + s[:end+1], end + 1, nil
			}
		}
		if len(s) > 1 {
			return `\` + s[:2], 2, nil
		}
		return "", 0, fmt.Errorf("%w: \\%c", ErrRegexSyntax, e)
	}
	if e >= 0x80 {
		out, err := byteSeq(rune(e), inClass)
		return out, 1, err
	}
	if e >= 'a' && e <= 'z' || e >= 'A' && e <= 'Z' {
		// Perl reads an unknown letter escape as the letter.
		return string(e), 1, nil
	}
	if e == ' ' || e == '\t' {
		return string(e), 1, nil
	}
	if e == '\n' {
		return `\n`, 1, nil
	}
	return `\` + string(e), 1, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// groupEnd returns the index of the ) closing the group opened at p[i].
func groupEnd(p string, i int) int {
	depth := 0
	inClass := false
	for ; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			if i+1 < len(p) && p[i+1] == ']' {
				i++
			} else if i+2 < len(p) && p[i+1] == '^' && p[i+2] == ']' {
				i += 2
			}
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// flagPrefix is the flag group translate writes first for flags.
func flagPrefix(flags string) string {
	var f string
	for _, c := range "ims" {
		if strings.ContainsRune(flags, c) {
			f += string(c)
		}
	}
	if f == "" {
		return ""
	}
	return "(?" + f + ")"
}
