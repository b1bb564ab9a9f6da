package sa

import (
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The regexps the rfc822date.go find functions implement, and
// parse_rfc822_date as it was written with them: the reference.
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

// cutFirstRE is the former cutFirst: it removes the first match of re from s (replacing it with one
// space, as Util.pm's s/.../ /), returning the submatches.
func cutFirstRE(re *regexp.Regexp, s *string) []string {
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

// parseRFC822DateRE is parseRFC822Date with the regexps.
func parseRFC822DateRE(date string) (int64, bool) {
	s := " " + date + " "
	s = rfc822Comma.ReplaceAllLiteralString(s, " ")
	s = rfc822Spaces.ReplaceAllLiteralString(s, " ")

	var day, year int
	var mon string
	if m := cutFirstRE(rfc822DMY, &s); m != nil {
		day, mon, year = atoiSat(m[1]), m[2], atoiSat(m[3])
	} else if m := cutFirstRE(rfc822MDTY, &s); m != nil {
		day, mon, year = atoiSat(m[2]), m[1], atoiSat(m[3])
	} else if m := cutFirstRE(rfc822DMYY, &s); m != nil {
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
	if m := cutFirstRE(rfc822HMS, &s); m != nil {
		hh, _ = strconv.Atoi(m[1])
		mm, _ = strconv.Atoi(m[2])
		ss, _ = strconv.Atoi(m[4])
	}
	zone := 0
	if m := cutFirstRE(rfc822NumZone, &s); m != nil {
		z, _ := strconv.Atoi(m[1][1:])
		zone = z
		if m[1][0] == '-' {
			zone = -z
		}
	} else if m := cutFirstRE(rfc822Zone, &s); m != nil {
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

// rfc822Pieces are what the random dates are made of: the patterns'
// literals and classes' edges, folds, invalid UTF-8 and white space.
var rfc822Pieces = []string{" ", "  ", "\t", "\n", "\r", "\f", "\v", ",", ", ", ",  ", "1", "12", "123", "2024", "02", "99",
	"12345", ":", "10:11", "10:11:12", "1:2:3", "Jan", "jan", "SEP", "\u017fep", "Sep", "Dec", "Ja", "Mon", "Mon,", "-", "+",
	"+0000", "-0530", "+12345", "PST", "EST", "EST-DST", "-DST", "GMT", "UT", "A", "ABCDE", "Z", "x", "_", "(PST)", "\xff",
	"\xc5", "é", "K", " 29 Sep 2002 ", "29 \u017fep 2002", " Sep  23 22:28:43 2002 ", " 23 Sep 02 ", " 23 Sep 102 ", " 07:03:02 ",
	" 1:02 ", "7:03:", " +0100 ", " EDT ", "Sun, 29 Sep 2002 07:03:02 PDT"}

func randRFC822Text(rng *rand.Rand) string { return randPieces(rng, rfc822Pieces, 20) }

// checkRFC822 checks the find functions against their regexps on s and
// parseRFC822Date against its regexp version.
func checkRFC822(t *testing.T, s string) {
	t.Helper()
	if got, want := replaceRFC822Commas(s), rfc822Comma.ReplaceAllLiteralString(s, " "); got != want {
		t.Fatalf("replaceRFC822Commas(%q) = %q, regexp %q", s, got, want)
	}
	if got, want := collapseRFC822Spaces(s), rfc822Spaces.ReplaceAllLiteralString(s, " "); got != want {
		t.Fatalf("collapseRFC822Spaces(%q) = %q, regexp %q", s, got, want)
	}
	for _, c := range []struct {
		name string
		find func(string) []int
		re   *regexp.Regexp
	}{{"DMY", findDMY, rfc822DMY}, {"MDTY", findMDTY, rfc822MDTY}, {"DMYY", findDMYY, rfc822DMYY},
		{"HMS", findHMS, rfc822HMS}, {"NumZone", findNumZone, rfc822NumZone}, {"Zone", findZone, rfc822Zone}} {
		if got, want := c.find(s), c.re.FindStringSubmatchIndex(s); !slices.Equal(got, want) {
			t.Fatalf("find%s(%q) = %v, regexp %v", c.name, s, got, want)
		}
	}
	gt, gok := parseRFC822Date(s)
	wt, wok := parseRFC822DateRE(s)
	if gt != wt || gok != wok {
		t.Fatalf("parseRFC822Date(%q) = %d %v, with the regexps %d %v", s, gt, gok, wt, wok)
	}
}

// TestRFC822ScansRandom checks them on random dates, which must hold
// each part often enough to say something.
func TestRFC822ScansRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	var parsed, mdty, hms, zone int
	for range randRuns(100000) {
		s := randRFC822Text(rng)
		checkRFC822(t, s)
		checkRFC822(t, " "+collapseRFC822Spaces(replaceRFC822Commas(s))+" ")
		if _, ok := parseRFC822Date(s); ok {
			parsed++
		}
		if findMDTY(s) != nil {
			mdty++
		}
		if findHMS(s) != nil {
			hms++
		}
		if findZone(s) != nil {
			zone++
		}
	}
	if parsed < randRuns(1000) || mdty < randRuns(1000) || hms < randRuns(1000) || zone < randRuns(1000) {
		t.Errorf("too few random matches: dates %d, month-day-time-year %d, times %d, zones %d", parsed, mdty, hms, zone)
	}
}

// TestRFC822ScansCorpus checks them on the Date fields and Received
// dates of the corpus.
func TestRFC822ScansCorpus(t *testing.T) {
	n := 0
	for _, f := range wholeCorpus(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := splitHeader(raw)
		for _, fl := range parseFields(string(h)) {
			var ds []string
			switch strings.ToLower(fl.Name) {
			case "date":
				ds = []string{fl.Value, strings.TrimSpace(unfold(fl.Value))}
			case "received":
				ds = []string{rcvdDate(joinFolds(fl.Value)), fl.Value}
			}
			for _, d := range ds {
				checkRFC822(t, d)
				checkRFC822(t, " "+collapseRFC822Spaces(replaceRFC822Commas(d))+" ")
				n++
			}
		}
	}
	t.Logf("%d dates", n)
}

func FuzzRFC822Scans(f *testing.F) {
	rng := rand.New(rand.NewPCG(19, 20))
	for range 50 {
		f.Add(randRFC822Text(rng))
	}
	f.Add("Sun, 29 Sep 2002 07:03:02 PDT")
	f.Add("Mon Sep 23 22:28:43 2002")
	f.Fuzz(checkRFC822)
}
