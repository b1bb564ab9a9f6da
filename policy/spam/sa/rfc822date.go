package sa

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The parts of a date that SpamAssassin's parse_rfc822_date (Util.pm)
// takes out one after the other, each the first (leftmost) match in what
// the previous left.
var (
	rfc822Spaces  = regexp.MustCompile(`\s+`)
	rfc822Comma   = regexp.MustCompile(`, *`)
	rfc822DMY     = regexp.MustCompile(`(?i) (\d+) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) `)
	rfc822MDTY    = regexp.MustCompile(`(?i) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d+) \d+:\d+:\d+ (\d{4}) `)
	rfc822DMYY    = regexp.MustCompile(`(?i) (\d+) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{2,3}) `)
	rfc822HMS     = regexp.MustCompile(` (\d?\d):(\d\d)(:(\d\d))? `)
	rfc822NumZone = regexp.MustCompile(` ([-+]\d{4}) `)
	rfc822Zone    = regexp.MustCompile(`\b([A-Z]{2,4}(?:-DST)?)\b`)
)

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

// cutFirst removes the first match of re from s (replacing it with one
// space, as Util.pm's s/.../ /), returning the submatches.
func cutFirst(re *regexp.Regexp, s *string) []string {
	loc := re.FindStringSubmatchIndex(*s)
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
	s = rfc822Comma.ReplaceAllLiteralString(s, " ")
	s = rfc822Spaces.ReplaceAllLiteralString(s, " ")

	var day, year int
	var mon string
	if m := cutFirst(rfc822DMY, &s); m != nil {
		day, mon, year = atoiSat(m[1]), m[2], atoiSat(m[3])
	} else if m := cutFirst(rfc822MDTY, &s); m != nil {
		day, mon, year = atoiSat(m[2]), m[1], atoiSat(m[3])
	} else if m := cutFirst(rfc822DMYY, &s); m != nil {
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
	if m := cutFirst(rfc822HMS, &s); m != nil {
		hh, _ = strconv.Atoi(m[1])
		mm, _ = strconv.Atoi(m[2])
		ss, _ = strconv.Atoi(m[4])
	}
	zone := 0
	if m := cutFirst(rfc822NumZone, &s); m != nil {
		z, _ := strconv.Atoi(m[1][1:])
		zone = z
		if m[1][0] == '-' {
			zone = -z
		}
	} else if m := cutFirst(rfc822Zone, &s); m != nil {
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
