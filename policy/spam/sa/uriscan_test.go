package sa

import (
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
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

func randURIText(rng *rand.Rand) string {
	var b strings.Builder
	for n := rng.IntN(24); n >= 0; n-- {
		b.WriteString(uriPieces[rng.IntN(len(uriPieces))])
	}
	return b.String()
}

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
	for range 200000 {
		s := randURIText(rng)
		checkURIs(t, s, -1)
		checkURIs(t, s, 1+rng.IntN(3))
		if len(scanURIs(s, -1, nil)) > 0 {
			matched++
		}
	}
	if matched < 10000 {
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
	var files []string
	for _, k := range []string{"ham", "spam"} {
		files = append(files, corpusFiles(t, k)...)
	}
	if sampled() {
		files = sample(files, 300)
	}
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
