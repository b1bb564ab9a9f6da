package sa

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The regexes the hand-made Received matchers implement.
var (
	rcvdByRE      = regexp.MustCompile(`\sby\s+([^\s;()]+)`)
	rcvdIDRE      = regexp.MustCompile(`\sid\s+([^\s;()]+)`)
	rcvdDateRE    = regexp.MustCompile(`\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+`)
	rcvdPostfixRE = regexp.MustCompile(`^from\s+(\S+)\s+\(([^\s\[\]()]*)\s*\[(?:IPv6:)?([0-9A-Fa-f.:]+)\]`)
	rcvdFetchRE   = regexp.MustCompile(`with (?:POP3|IMAP)`)
	rcvdEnvFromRE = regexp.MustCompile(`(?i)(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)\b`)
)

var rcvdPieces = []string{" ", "  ", "\t", "\n", "\r", "\f", "\v", "by", "id", " by ", " id\t", "\nby\n", "b", "y", "i", "d", ";", "(", ")",
	"mx.example.org", "1", "12", "2024", "0", ":", "Mon,", "Jan", "Ja", "é", "\xff", "\xc3", "+0000", "x", "(PST)",
	" 1 Jan 2024 10:11:12 +0000", ", 1 Jan 2024 10:11:12 -0500 (EST)", "7 Feb 99 1:2:3 Z",
	"return-path", "Return-Path:", "RETURN-PATH: ", "envelope-", "Envelope-From", "envelope-from=", "envelope-sender ", "ENVELOPE-\u017fENDER ",
	"\u017f", "\u212a", "S", "from", "from ", "from\t", "from mx.example.org", "(", "([", " [", "[", "]", "IPv6:", "IPv6", "with", " with POP3", "with IMAP", "POP", "IMA",
	"1.2.3.4", "::1", "fe80::a", "G", "from a (b [1.2.3.4])", "from a ([1.2.3.4]", "from x (unknown [10.0.0.1]) by y", "<a@b.example>", "a@b.example>", "<", ">", "=", "-", ".", "_", "@", "é."}

func randRcvdText(rng *rand.Rand) string { return randPieces(rng, rcvdPieces, 20) }

func checkRcvd(t *testing.T, v string) {
	t.Helper()
	for _, c := range []struct {
		word string
		re   *regexp.Regexp
	}{{"by", rcvdByRE}, {"id", rcvdIDRE}} {
		got, ok := rcvdClause(v, c.word)
		m := c.re.FindStringSubmatch(v)
		if ok != (m != nil) || ok && got != m[1] {
			t.Fatalf("%s clause of %q: %q %v, regexp %q", c.word, v, got, ok, m)
		}
	}
	helo, rdns, ip, ok := rcvdPostfixShape(v)
	if m := rcvdPostfixRE.FindStringSubmatch(v); ok != (m != nil) || ok && (helo != m[1] || rdns != m[2] || ip != m[3]) {
		t.Fatalf("Postfix shape of %q: %q %q %q %v, regexp %q", v, helo, rdns, ip, ok, m)
	}
	if got, want := strings.Contains(v, "with POP3") || strings.Contains(v, "with IMAP"), rcvdFetchRE.MatchString(v); got != want {
		t.Fatalf("fetcher handover in %q: %v, regexp %v", v, got, want)
	}
	got, ok := rcvdEnvFromValue(v)
	if m := rcvdEnvFromRE.FindStringSubmatch(v); ok != (m != nil) || ok && got != m[1] {
		t.Fatalf("envelope sender of %q: %q %v, regexp %q", v, got, ok, m)
	}
	if got, want := rcvdDate(v), rcvdDateRE.FindString(v); got != want {
		t.Fatalf("date of %q: %q, regexp %q", v, got, want)
	}
}

// TestRcvdScanRandom checks the Received matchers against their regexes
// on random texts made of the fields' pieces.
func TestRcvdScanRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var by, id, date, env, postfix int
	for range randRuns(100000) {
		v := randRcvdText(rng)
		checkRcvd(t, v)
		if _, ok := rcvdClause(v, "by"); ok {
			by++
		}
		if _, ok := rcvdClause(v, "id"); ok {
			id++
		}
		if rcvdDate(v) != "" {
			date++
		}
		if _, ok := rcvdEnvFromValue(v); ok {
			env++
		}
		if _, _, _, ok := rcvdPostfixShape(v); ok {
			postfix++
		}
	}
	if by < randRuns(1000) || id < randRuns(1000) || date < randRuns(1000) || env < randRuns(1000) || postfix < randRuns(200) {
		t.Errorf("too few random matches: by %d id %d date %d envelope sender %d Postfix shape %d", by, id, date, env, postfix)
	}
}

// TestRcvdScanCorpus checks them on every Received field of the corpus.
func TestRcvdScanCorpus(t *testing.T) {
	files := wholeCorpus(t)
	n := 0
	for _, m := range loadMessages(t, files) {
		for _, fl := range m.Header {
			if !strings.EqualFold(fl.Name, "received") {
				continue
			}
			v := fl.Value
			for _, s := range []string{v, unfold(v), strings.TrimSpace(unfold(v)), collapseSpace(v)} {
				checkRcvd(t, s)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no Received fields read")
	}
	t.Logf("%d Received fields", n)
}

func FuzzRcvdScan(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 40 {
		f.Add(randRcvdText(rng))
	}
	f.Fuzz(checkRcvd)
}
