package sa

import (
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"testing"
)

// uriRE is the definition scanURIs implements.
var uriRE = regexp.MustCompile(`(?i)\b(?:(?:https?|ftp)://[^\s<>"'\x60]+|www\d{0,3}\.[a-z0-9-]+\.[^\s<>"'\x60]+|mailto:[^\s<>"'\x60]+)`)

// uriPieces are what the random texts are made of: the regex's literals
// and classes' edges, Go's extra case folds (ſ for s, K for k), invalid
// UTF-8 and the bytes that stop a URL.
var uriPieces = []string{"http", "HTTP", "hTtPs", "https", "httpſ", "ftp", "FTP", "://", ":/", "/", ":",
	"www", "WWW", "wWw", "1", "12", "1234", ".", "..", "-", "a", "z", "A", "K", "ſ", "k", "s", "_", "x.com",
	"mailto:", "MAILTO:", "mailto", "user@example.org", " ", "\t", "\n", "\r", "\f", "\v", "<", ">", "\"",
	"'", "`", "\xc5", "\xbf", "\xff", "é", "(", ")", ",", "?q=1&b", "\x00", "0"}

// textEmailRE is the definition scanTextEmails implements.
var textEmailRE = regexp.MustCompile(`(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b`)

// emailPieces are what the random address texts are made of.
var emailPieces = []string{"a", "bob", "B.O.B", "_", "%", "+", "-", ".", "..", "@", "@@", "1", "42", "x-y", "com", "C", "org",
	"example.com", "a@b.co", "ſ", "K", "k", "s", "é", "\xc5", "\xbf", "\xaa", "\xe2\x84", "\xff", " ", "\t", "\n", "<", ">",
	":", "/", "mailto:", "(", ")", ",", "!", "#", "=", "\x00", "0"}

func randEmailText(rng *rand.Rand) string { return randPieces(rng, emailPieces, 16) }

func checkTextEmails(t *testing.T, s string, limit int) {
	t.Helper()
	var got [][]int
	for _, m := range scanTextEmails(s, limit, nil) {
		got = append(got, []int{m[0], m[1]})
	}
	want := textEmailRE.FindAllStringIndex(s, limit)
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("%q limit %d: %v, regexp %v", s, limit, got, want)
	}
}

// TestScanTextEmailsRandom checks the address scanner against the regexp
// on random texts built to hit its classes, folds and backtracking.
func TestScanTextEmailsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	matched := 0
	for range randRuns(200000) {
		s := randEmailText(rng)
		checkTextEmails(t, s, -1)
		checkTextEmails(t, s, 1+rng.IntN(2))
		if len(scanTextEmails(s, -1, nil)) > 0 {
			matched++
		}
	}
	if matched < randRuns(10000) {
		t.Errorf("only %d random texts hold an address", matched)
	}
	for _, s := range []string{"", "a@b.co", "a@b.c", "a@b.c1", "a@b.co1", "a@b.coſ1", "a@b.cK", "a@b.com.x@y.org", ".a@b.co",
		"-@b.co", "ſa@b.co", "a@b..co", "a@b.co-", "a@b.co_", "a@1.2.3", "x_a@b.co", "a@b.co.uk.", "a@b.cc.d"} {
		checkTextEmails(t, s, -1)
	}
}

func FuzzScanTextEmails(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 50 {
		f.Add(randEmailText(rng))
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkTextEmails(t, s, -1)
		checkTextEmails(t, s, 2)
	})
}

func randURIText(rng *rand.Rand) string { return randPieces(rng, uriPieces, 24) }

func checkURIs(t *testing.T, s string, limit int) {
	t.Helper()
	got := scanURIs(s, limit, nil)
	want := uriRE.FindAllString(s, limit)
	if !slices.Equal(got, want) {
		t.Fatalf("%q limit %d: %q, regexp %q", s, limit, got, want)
	}
}

// TestScanURIsRandom checks the scanner against the regexp on random
// texts built to hit every branch and edge.
func TestScanURIsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	matched := 0
	for range randRuns(200000) {
		s := randURIText(rng)
		checkURIs(t, s, -1)
		checkURIs(t, s, 1+rng.IntN(3))
		if len(scanURIs(s, -1, nil)) > 0 {
			matched++
		}
	}
	if matched < randRuns(10000) {
		t.Errorf("only %d random texts hold a URL", matched)
	}
	for _, s := range []string{"", "http://", "http://x", "xhttp://x", "_www.a.b", "www123.a.b", "www1234.a.b",
		"www.ſK.x", "www..x", "httpſ://a", "mailto:", "mailto:a b", "é" + "www.a.b", "\xffhttp://a", "ftp://a\"b"} {
		checkURIs(t, s, -1)
	}
}

// TestScanURIsCorpus checks the scanner against the regexp on the text
// parts of the whole corpus and on the raw messages.
func TestScanURIsCorpus(t *testing.T) {
	files := wholeCorpus(t)
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts := []string{string(raw)}
		for _, p := range FromRaw(raw).Parts {
			texts = append(texts, p.Text)
		}
		for _, s := range texts {
			checkURIs(t, s, 500)
			checkTextEmails(t, s, 200)
			n += len(scanURIs(s, 500, nil))
		}
	}
	t.Logf("%d files, %d URLs", len(files), n)
}

func FuzzScanURIs(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		f.Add(randURIText(rng))
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkURIs(t, s, -1)
		checkURIs(t, s, 2)
	})
}
