package sa

import (
	"net/mail"
	"reflect"
	"strings"
	"testing"
)

var dateSeeds = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 +0000",
	"Thu, 20 Nov 1997 09:55:06 MDT",
	"Thu, 20 Nov 1997 09:55:06 MDT (MDT)",
	"Thu, 20 Nov 1997 09:55:06 GMT (comment (nested) \\) x)",
	"Thu, 20 Nov 1997 09:55:06 -0600 (MDT",
	"Fri, 21 Nov 97 09:55:06 -0600",
	"Fri, 21 Nov 1997 09:55 UT",
	"  21 Nov 1997 09:55:06 +0100",
	"21 nov 1997 09:55:06 +0100 trailing text",
	"Tue, 1 Jul 2003 10:52:37 +0200\r\n",
	"Tue, 1 Jul 2003\r\n 10:52:37 +0200",
	"Tue, 1 Jul 2003 10:52:37 +02",
	"Wed, 31 Feb 2003 10:52:37 EST",
	"wed, 01 Jan 2003 10:52:37 CET",
	"Sat, 1 Jan 2000 25:00:00 +0000",
	"1 Jan 2000 00:00:00 -2400",
	"Mon, 2 Jan 2006 15:04:05 GMT+0100",
	"Mon, 2 Jan 2006 15:04:05 UTC",
	"",
	"garbage",
	"T",
	"-",
}

// checkDate fails t when ParseDate and mail.ParseDate differ on s: the
// same time (instant, zone name and offset, location) or the same error.
func checkDate(t *testing.T, s string) {
	t.Helper()
	got, gerr := ParseDate(s)
	want, werr := mail.ParseDate(s)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("ParseDate(%q): error %v, mail.ParseDate: %v", s, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseDate(%q) = %v (%v), mail.ParseDate: %v (%v)", s, got, got.Location(), want, want.Location())
	}
}

// Every Date and Received date of the corpus, as the rules and the
// heuristics read them, parses as mail.ParseDate parses it.
func TestParseDateCorpus(t *testing.T) {
	for _, s := range dateSeeds {
		checkDate(t, s)
	}
	n := 0
	eachCorpusMessage(t, func(_ string, raw []byte) {
		h, _ := splitHeader(raw)
		for _, fl := range parseFields(string(h)) {
			var ds []string
			switch strings.ToLower(fl.Name) {
			case "date":
				ds = []string{fl.Value, unfold(fl.Value), strings.TrimSpace(unfold(fl.Value))}
			case "received":
				v := unfold(fl.Value)
				ds = []string{strings.TrimSpace(rcvdDate(v))}
				if _, after, ok := strings.Cut(v, ";"); ok {
					ds = append(ds, after, strings.TrimSpace(after))
				}
			}
			for _, d := range ds {
				checkDate(t, d)
				n++
			}
		}
	})
	t.Logf("%d dates", n)
}

func FuzzParseDate(f *testing.F) {
	for _, s := range dateSeeds {
		f.Add(s)
	}
	f.Fuzz(checkDate)
}
