package sa

import (
	"net/mail"
	"strings"
	"time"
)

// ParseDate returns exactly what net/mail.ParseDate returns for s (RFC 5322
// §3.3 date-time), without its garbage on the common forms. mail.ParseDate
// tries 48 time layouts in turn and every layout that fails allocates an
// error: a date with a day of the week fails 24 before one fits. Here the
// string is cut as mail.ParseDate cuts it, and the one layout that
// mail.ParseDate would find first is tried when it can be told in advance:
//
//   - a date that starts with a letter fails every layout without the day
//     of the week (they start with the day of the month, digits), and one
//     that starts with a digit fails every layout with it;
//   - within each half the first layout has a 4-digit year, seconds and a
//     numeric zone ("-0700"); the second differs only by a zone name
//     ("MST"), and the first fails on any date without '+' or '-' (a
//     numeric zone starts with one of them).
//
// Anything else, and any date that layout does not fit, goes to
// mail.ParseDate itself.
func ParseDate(s string) (time.Time, error) {
	date, ok := cutDate(s)
	if !ok || date == "" {
		return mail.ParseDate(s)
	}
	var layout string
	switch c := date[0]; {
	case '0' <= c && c <= '9':
		layout = "2 Jan 2006 15:04:05 "
	case 'a' <= c|0x20 && c|0x20 <= 'z':
		layout = "Mon, 2 Jan 2006 15:04:05 "
	default:
		return mail.ParseDate(s)
	}
	if strings.ContainsAny(date, "+-") {
		layout += "-0700"
	} else {
		layout += "MST"
	}
	if t, err := time.Parse(layout, date); err == nil {
		return t, nil
	}
	return mail.ParseDate(s)
}

// cutDate is the part of s that mail.ParseDate (Go 1.26) hands to
// time.Parse: the comment or text after the zone cut off. ok is false when
// mail.ParseDate would fail before any layout (a CR, a broken comment) or
// s has a line break (mail.ParseDate's own path decides those).
func cutDate(s string) (date string, ok bool) {
	if strings.ContainsAny(s, "\r\n") {
		return "", false
	}
	date = s
	p := strings.TrimLeft(s, " \t")
	if i := strings.IndexAny(p, "+-"); i != -1 && len(p) >= i+5 {
		date, p = p[:i+5], p[i+5:]
	} else {
		i := strings.Index(p, "T")
		if i == 0 {
			// An obsolete zone such as "MDT" ends with the T searched for.
			i = strings.Index(p[1:], "T")
			if i != -1 {
				i++
			}
		}
		if i != -1 && len(p) >= i+5 {
			date, p = p[:i+1], p[i+1:]
		}
	}
	// What follows must be CFWS (RFC 5322 §3.2.2): comments, nested,
	// with quoted pairs, and blanks.
	p = strings.TrimLeft(p, " \t")
	for len(p) > 0 && p[0] == '(' {
		p = p[1:]
		depth := 1
		for len(p) > 0 && depth > 0 {
			switch {
			case p[0] == '\\' && len(p) > 1:
				p = p[1:]
			case p[0] == '(':
				depth++
			case p[0] == ')':
				depth--
			}
			p = p[1:]
		}
		if depth != 0 {
			return "", false
		}
		p = strings.TrimLeft(p, " \t")
	}
	return date, true
}
