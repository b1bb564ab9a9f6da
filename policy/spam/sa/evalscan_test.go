package sa

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The definitions joinFolds and addresses implement.
var (
	foldRE = regexp.MustCompile(`\r?\n[ \t]+`)
	addrRE = regexp.MustCompile(`[^\s<>,;:"()\[\]]+@[^\s<>,;:"()\[\]]+`)
	// endsWithDomain's callers.
	yahooFrom   = regexp.MustCompile(`(?i)\byahoo\.com$`)
	hotmailFrom = regexp.MustCompile(`(?i)\bhotmail\.com$`)
)

// evalPieces are what the random texts for the eval helpers are made of:
// line breaks and folds, the freemail patterns' literals, addresses and
// URLs.
var evalPieces = []string{"\r", "\n", "\r\n", " ", "\t", "  ", "\r\n\t", "\n ", "\r\r\n ", "x", "Received: from a", "by b",
	"http://", "HTTPS://", "<http://", "hTtP://", "://", "@", "%40", "%4", "a@b.com", "bob@yahoo.com", "mailto:", "x.org/?u=a",
	"<", ">", ".", "-", "fax:", " tel:", "\xff", "é", "ſ", "K", "\x00", ",", ";", ":", "\"", "(", ")", "[", "]", "@@",
	"from localhost ", "from localhost\t", "from a b 127.0.0.1", "from a (b [127.0.0.1])", "127.0.0.10", "qmail 123 invoked by uid 0",
	"by localhost with POP3 (fetchmail-6.2.5", "by localhost with  x (fetchmail-", "(fetchmail-", "yahoo.com", "YaHoO.CoM", "@hotmail.com", "_hotmail.com", "xhotmail.com", "hotmail.co"}

func randEvalText(rng *rand.Rand) string { return randPieces(rng, evalPieces, 16) }

// checkEvalScans checks the hand-made eval helpers against the regexps
// they stand for.
func checkEvalScans(t *testing.T, s string) {
	t.Helper()
	if got, want := joinFolds(s), foldRE.ReplaceAllLiteralString(s, " "); got != want {
		t.Fatalf("joinFolds(%q) = %q, regexp %q", s, got, want)
	}
	if got, want := stripURLsWithAt(s), freemailURLWithAt.ReplaceAllString(s, " "); got != want {
		t.Fatalf("stripURLsWithAt(%q) = %q, regexp %q", s, got, want)
	}
	if got, want := addresses(s, nil), addrRE.FindAllString(s, -1); !slices.Equal(got, want) {
		t.Fatalf("addresses(%q) = %q, regexp %q", s, got, want)
	}
	if got, want := rcvdLocal(s), rcvdLocalRE.MatchString(s); got != want {
		t.Fatalf("rcvdLocal(%q) = %v, regexp %v", s, got, want)
	}
	if got, want := rcvdFetchmail(s), rcvdFetchmailRE.MatchString(s); got != want {
		t.Fatalf("rcvdFetchmail(%q) = %v, regexp %v", s, got, want)
	}
	for _, c := range []struct {
		domain string
		re     *regexp.Regexp
	}{{"yahoo.com", yahooFrom}, {"hotmail.com", hotmailFrom}} {
		if got, want := endsWithDomain(s, c.domain), c.re.MatchString(s); got != want {
			t.Fatalf("endsWithDomain(%q, %q) = %v, regexp %v", s, c.domain, got, want)
		}
	}
	// bodyFreemails skips lines without an "@".
	if m := freemailEmail.FindAllStringSubmatchIndex(s, -1); m != nil && !strings.Contains(s, "@") {
		t.Fatalf("freemailEmail matches %q without an @: %v", s, m)
	}
}

// TestEvalScansRandom checks them on random texts, which must also hit
// the patterns often enough to say something.
func TestEvalScansRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	var folds, urls, addrs, local, domains int
	for range randRuns(100000) {
		s := randEvalText(rng)
		checkEvalScans(t, s)
		if foldRE.MatchString(s) {
			folds++
		}
		if freemailURLWithAt.MatchString(s) {
			urls++
		}
		if addrRE.MatchString(s) {
			addrs++
		}
		if rcvdLocalRE.MatchString(s) || rcvdFetchmailRE.MatchString(s) {
			local++
		}
		if yahooFrom.MatchString(s) || hotmailFrom.MatchString(s) {
			domains++
		}
	}
	if folds < randRuns(1000) || urls < randRuns(1000) || addrs < randRuns(1000) || local < randRuns(1000) || domains < randRuns(1000) {
		t.Errorf("too few random matches: folds %d URLs with @ %d addresses %d local or fetchmail %d domains %d", folds, urls, addrs, local, domains)
	}
	for _, s := range []string{"", "\n", "\r\n", "\r\n ", "a\r\n\tb", "\r\r\n x", "\n\n ", "a\n \n b", " \n\r\n\t"} {
		checkEvalScans(t, s)
	}
}

// TestEvalScansCorpus checks them on the header fields and body lines of
// the corpus.
func TestEvalScansCorpus(t *testing.T) {
	files := wholeCorpus(t)
	n := 0
	for _, m := range loadMessages(t, files) {
		for _, f := range m.Header {
			checkEvalScans(t, f.Value)
			n++
		}
		for _, p := range m.Parts {
			for l := range strings.Lines(p.Text) {
				checkEvalScans(t, l)
				n++
			}
		}
	}
	t.Logf("%d fields and lines", n)
}

func FuzzEvalScans(f *testing.F) {
	rng := rand.New(rand.NewPCG(15, 16))
	for range 50 {
		f.Add(randEvalText(rng))
	}
	f.Fuzz(checkEvalScans)
}
