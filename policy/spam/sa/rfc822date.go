package sa

import (
	"strconv"
	"strings"
	"time"
)

// The parts of a date that SpamAssassin's parse_rfc822_date (Util.pm)
// takes out one after the other, each the first (leftmost) match in what
// the previous left. Each find function returns what
// FindStringSubmatchIndex returns for the regexp in its comment
// (rfc822date_test.go cross-checks them), by a byte walk: every part is
// deterministic (each run is followed by a byte it cannot take), so the
// first position where the whole fits is the leftmost match. \s is
// [\t\n\f\r ], \d [0-9]; under (?i), "s" also matches U+017F (ſ).

// rfc822Zones is Util.pm's %TZ: the zone names SpamAssassin knows; any
// other name is taken as -0000.
var rfc822Zones = map[string]int{
	"UT": 0, "UTC": 0,
	"NDT": -230, "AST": -400, "ADT": -300, "NST": -330, "EST": -500, "EDT": -400,
	"CST": -600, "CDT": -500, "MST": -700, "MDT": -600, "PST": -800, "PDT": -700,
	"HST": -1000, "AKST": -900, "AKDT": -800, "HADT": -900, "HAST": -1000,
	"GMT": 0, "BST": 100, "IST": 100, "WET": 0, "WEST": 100, "CET": 100, "CEST": 200,
	"EET": 200, "EEST": 300, "MSK": 300, "MSD": 400, "MET": 100, "MEZ": 100,
	"MEST": 200, "MESZ": 200,
	"BRST": -200, "BRT": -300,
	"AEST": 1000, "AEDT": 1100, "ACST": 930, "ACDT": 1030, "AWST": 800,
	"NZST": 1200, "NZDT": 1300,
	"JST": 900, "KST": 900, "HKT": 800, "SGT": 800, "PHT": 800,
	"IDT": 300,
}

var rfc822Months = map[string]time.Month{
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
	"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}

// cutFirst removes the match at loc (a find function's answer) from s,
// replacing it with one space, as Util.pm's s/.../ /, and returns the
// submatches.
func cutFirst(loc []int, s *string) []string {
	if loc == nil {
		return nil
	}
	m := make([]string, len(loc)/2)
	for i := range m {
		if loc[2*i] >= 0 {
			m[i] = (*s)[loc[2*i]:loc[2*i+1]]
		}
	}
	*s = (*s)[:loc[0]] + " " + (*s)[loc[1]:]
	return m
}

// parseRFC822Date is SpamAssassin's parse_rfc822_date (Util.pm): a date
// in any order of day, month, year, time and zone, out-of-range fields
// forced into range, an unknown zone taken as UTC. It returns Unix
// seconds; ok is false where SpamAssassin returns undef (no day, month
// and year, or a day 0). It is not RFC 5322 §3.3: the date rules compare
// times as SpamAssassin computes them, whatever the date says.
func parseRFC822Date(date string) (int64, bool) {
	s := " " + date + " "
	s = collapseRFC822Spaces(replaceRFC822Commas(s))

	var day, year int
	var mon string
	if m := cutFirst(findDMY(s), &s); m != nil {
		day, mon, year = atoiSat(m[1]), m[2], atoiSat(m[3])
	} else if m := cutFirst(findMDTY(s), &s); m != nil {
		day, mon, year = atoiSat(m[2]), m[1], atoiSat(m[3])
	} else if m := cutFirst(findDMYY(s), &s); m != nil {
		day, mon, year = atoiSat(m[1]), m[2], atoiSat(m[3])
		// Two- and three-digit years as RFC 2822 §4.3 reads them.
		if len(m[3]) == 2 && year < 50 {
			year += 2000
		} else {
			year += 1900
		}
	} else {
		return 0, false
	}
	var hh, mm, ss int
	if m := cutFirst(findHMS(s), &s); m != nil {
		hh, _ = strconv.Atoi(m[1])
		mm, _ = strconv.Atoi(m[2])
		ss, _ = strconv.Atoi(m[4])
	}
	zone := 0
	if m := cutFirst(findNumZone(s), &s); m != nil {
		z, _ := strconv.Atoi(m[1][1:])
		zone = z
		if m[1][0] == '-' {
			zone = -z
		}
	} else if m := cutFirst(findZone(s), &s); m != nil {
		zone = rfc822Zones[m[1]]
	}
	month := rfc822Months[strings.ToLower(mon)]

	ss, mm, hh = min(ss, 59), min(mm, 59), min(hh, 23)
	maxDay := 31
	switch month {
	case 4, 6, 9, 11:
		maxDay = 30
	case 2:
		maxDay = 28
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			maxDay = 29
		}
	}
	if day > maxDay {
		day = 1
		month++
		if month > 12 {
			month = 1
			year++
		}
	}
	year = min(max(year, 1970), 2037)
	if day < 1 {
		return 0, false // Time::Local's timegm croaks
	}
	t := time.Date(year, month, day, hh, mm, ss, 0, time.UTC).Unix()
	off := int64((zone/100*60 + zone%100) * 60)
	if off > 0 && t < off {
		return 0, true // "careful with year 1970 and '+' time zones"
	}
	return t - off, true
}

// atoiSat is the value of a string of digits, saturated rather than
// overflowing (a year of 40 digits is forced to 2037 anyway).
func atoiSat(s string) int {
	n := 0
	for _, c := range s {
		n = min(n*10+int(c-'0'), 1<<40)
	}
	return n
}

// replaceRFC822Commas replaces each match of ", *" in s with one space.
func replaceRFC822Commas(s string) string {
	i := strings.IndexByte(s, ',')
	if i < 0 {
		return s
	}
	b := append(make([]byte, 0, len(s)), s[:i]...)
	for ; i < len(s); i++ {
		if s[i] != ',' {
			b = append(b, s[i])
			continue
		}
		b = append(b, ' ')
		for i+1 < len(s) && s[i+1] == ' ' {
			i++
		}
	}
	return string(b)
}

// collapseRFC822Spaces replaces each match of \s+ in s with one space.
func collapseRFC822Spaces(s string) string {
	i := 0
	for ; i < len(s); i++ {
		if isSpaceRE(s[i]) && (s[i] != ' ' || i+1 < len(s) && isSpaceRE(s[i+1])) {
			break
		}
	}
	if i == len(s) {
		return s // every run is a single space already
	}
	b := append(make([]byte, 0, len(s)), s[:i]...)
	for ; i < len(s); i++ {
		if !isSpaceRE(s[i]) {
			b = append(b, s[i])
			continue
		}
		b = append(b, ' ')
		for i+1 < len(s) && isSpaceRE(s[i+1]) {
			i++
		}
	}
	return string(b)
}

// monthAt returns the end of (?i)(Jan|Feb|...|Dec) at i, -1 for none.
func monthAt(s string, i int) int {
	var m [3]byte
	j := i
	for k := range m {
		if j >= len(s) {
			return -1
		}
		if strings.HasPrefix(s[j:], "\u017f") {
			m[k] = 's'
			j += len("\u017f")
			continue
		}
		c := s[j]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		m[k] = c
		j++
	}
	if _, ok := rfc822Months[string(m[:])]; !ok {
		return -1
	}
	return j
}

// digitsAt returns the end of the run of ASCII digits at i (i itself
// when there is none).
func digitsAt(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// spaceAt says s[i] is a space.
func spaceAt(s string, i int) bool { return i < len(s) && s[i] == ' ' }

// findDMY is (?i) (\d+) (Jan|...|Dec) (\d{4}) .
func findDMY(s string) []int { return findDayMonthYear(s, 4, 4) }

// findDMYY is (?i) (\d+) (Jan|...|Dec) (\d{2,3}) .
func findDMYY(s string) []int { return findDayMonthYear(s, 2, 3) }

// findDayMonthYear is (?i) (\d+) (Jan|...|Dec) (\d{lo,hi}) .
func findDayMonthYear(s string, lo, hi int) []int {
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			continue
		}
		d := digitsAt(s, i+1)
		if d == i+1 || !spaceAt(s, d) {
			continue
		}
		m := monthAt(s, d+1)
		if m < 0 || !spaceAt(s, m) {
			continue
		}
		if y := digitsAt(s, m+1); y-(m+1) >= lo && y-(m+1) <= hi && spaceAt(s, y) {
			return []int{i, y + 1, i + 1, d, d + 1, m, m + 1, y}
		}
	}
	return nil
}

// findMDTY is (?i) (Jan|...|Dec) +(\d+) \d+:\d+:\d+ (\d{4}) .
func findMDTY(s string) []int {
next:
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			continue
		}
		m := monthAt(s, i+1)
		if m < 0 || !spaceAt(s, m) {
			continue
		}
		d0 := m + 1
		for spaceAt(s, d0) {
			d0++
		}
		d1 := digitsAt(s, d0)
		if d1 == d0 || !spaceAt(s, d1) {
			continue
		}
		j := d1 + 1
		for _, sep := range []byte{':', ':', ' '} {
			e := digitsAt(s, j)
			if e == j || e >= len(s) || s[e] != sep {
				continue next
			}
			j = e + 1
		}
		if y := digitsAt(s, j); y-j == 4 && spaceAt(s, y) {
			return []int{i, y + 1, i + 1, m, d0, d1, j, y}
		}
	}
	return nil
}

// findHMS is  (\d?\d):(\d\d)(:(\d\d))? . The hour is two digits when
// two stand there (one would leave a digit where ":" must be), the
// optional seconds are taken when a space follows them (else a ":" stands
// where the space must be).
func findHMS(s string) []int {
	two := func(j int) bool { return j+1 < len(s) && isDigit(s[j]) && isDigit(s[j+1]) }
	for i := 0; i+1 < len(s); i++ {
		if s[i] != ' ' || !isDigit(s[i+1]) {
			continue
		}
		h := i + 2
		if h < len(s) && isDigit(s[h]) {
			h++
		}
		if h >= len(s) || s[h] != ':' || !two(h+1) {
			continue
		}
		m := h + 3 // end of the minutes
		if m < len(s) && s[m] == ':' && two(m+1) && spaceAt(s, m+3) {
			return []int{i, m + 4, i + 1, h, h + 1, m, m, m + 3, m + 1, m + 3}
		}
		if spaceAt(s, m) {
			return []int{i, m + 1, i + 1, h, h + 1, m, -1, -1, -1, -1}
		}
	}
	return nil
}

// findNumZone is  ([-+]\d{4}) .
func findNumZone(s string) []int {
	for i := 0; i+6 < len(s); i++ {
		if s[i] == ' ' && (s[i+1] == '-' || s[i+1] == '+') && digitsAt(s, i+2) >= i+6 && s[i+6] == ' ' {
			return []int{i, i + 7, i + 1, i + 6}
		}
	}
	return nil
}

// findZone is \b([A-Z]{2,4}(?:-DST)?)\b. Inside a run of capitals there
// is no \b, and "-DST" can only follow a run's end, so a match is a whole
// run of two to four capitals at a \b, with "-DST" when \b follows that.
func findZone(s string) []int {
	for i := 0; i < len(s); i++ {
		if !isUpper(s[i]) || i > 0 && isWordByte(s[i-1]) {
			continue
		}
		e := i
		for e < len(s) && isUpper(s[e]) {
			e++
		}
		if n := e - i; n >= 2 && n <= 4 {
			if strings.HasPrefix(s[e:], "-DST") && !(e+4 < len(s) && isWordByte(s[e+4])) {
				return []int{i, e + 4, i, e + 4}
			}
			if !(e < len(s) && isWordByte(s[e])) {
				return []int{i, e, i, e}
			}
		}
		i = e - 1
	}
	return nil
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
