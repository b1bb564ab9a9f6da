package sa

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"
)

// btScreenRules compiles each screened pattern as the engine compiles it
// and returns its rule, with its backtracking regex.
func btScreenRules(t testing.TB) map[string]*rule {
	t.Helper()
	var src strings.Builder
	var names []string
	for pat := range btScreens {
		name := fmt.Sprintf("SCREENED_%d", len(names))
		names = append(names, name)
		fmt.Fprintf(&src, "header %s ALL =~ %s\n", name, pat)
	}
	e := compile(t, src.String(), Options{})
	out := map[string]*rule{}
	for _, n := range names {
		r := e.rules[e.byName[n]]
		if r.bt == nil || r.btScreen == nil {
			t.Fatalf("%s (%s): no backtracking regex or no screen", n, r.def.Pattern)
		}
		// The regex is the oracle: no budget, a timeout is no answer
		// (the engine's 20 ms runs out under -race on a busy machine).
		r.bt.MatchTimeout = time.Minute
		out[r.def.Pattern] = r
	}
	return out
}

// checkScreen fails when a screen says no where the regex matches.
func checkScreen(t testing.TB, r *rule, text string) (rejected bool) {
	ok, err := r.bt.MatchString(text)
	if err != nil {
		t.Fatalf("%s: %v", r.def.Pattern, err)
	}
	if ok && !r.btScreen(text) {
		t.Errorf("screen of %s rejects a text the regex matches: %q", r.def.Pattern, text)
	}
	return !r.btScreen(text)
}

var btScreenTexts = []string{
	"",
	"\nX-Mailer-Id: 1234567abc\n",
	"\nmailer-idx: 1234567\n",
	"mailer-idx: 1234567\n",
	"mailer-idx:  \n 1234567\n",
	"abc-defg: 1abcdef\n",
	"abc-def: 1abcdef\n",
	"Content-Foo: 1234567\n",
	"CONTENT-FOO: 1234567\n",
	"Contentx-Foo: 1234567\n",
	"Spam-Tracker: 9a8b7c6d5e4f\r\n",
	"Spam-Tracker:\t9 8b7c6d5e4f\n",
	"Spam-Tracker: 9abcde",
	"Spam-Tracker: 9abcdef",
	"Spam-Tracker: 9abcdé",
	"Spam-Trac\u212aer: 9abcdef\n",
	"\nReceived: from a by b for <bob@example.org>; Mon\nSubject: hi bob@example.org!\n",
	"\nReceived: from a by b for bob@example.org; Mon\nX: y\nSubject: hi BOB@EXAMPLE.ORG\n",
	"\nReceived: from a by b for <bob@example.org>; Mon\nSubject: hi <bob@example.org>\n",
	"\nReceived: from a by b for <bob@example.org;x>; Mon\nSubject: hi <bob@example.org\n",
	"\nReceived: from a by b for <<bob; Mon\nSubject: <bob \n",
	"\nReceived: from a by b for bob;\nSubject: bob\n",
	"\nReceived: from a by b for bob ;\nSubject: bob\n",
	"\nReceived: from a by b for bob>;\nSubject: xbobx bob.\n",
	"\nreceived: x FOR b>;\nSUBJECT: b\n",
	"\nReCeived: for <0mple.org;SuBjeCt: 00000000mple.org ",
	"\nFrom: Bob <bob@example.org>\nTo: bob@example.org\n",
	"\nFrom: Bob <bob@example.org>\nX: y\nTo: Other <BOB@example.org>\nSubject: bob@example.org:\n",
	"\nFrom:\n  bob1234@example.org\nTo:  \n bob99@x.org\n",
	"\nFrom: bobby12@example.org\nTo: bobby@x.org\n",
	"\nTo: Bob <bob@example.org>\nFrom: bob@example.org <evil@example.com>\n",
	"\nTo: x@example.org\nFrom: \"x@example.org\" <y@z.org>\n",
	"\nFrom: a@example.org\nTo: b@example.org\n",
	"\nFrom: a@dom.example\nTo: b@dom.example\n",
	"\nTo: carol, dave\nSubject: hi carol\n",
	"carol <carol@example.org>", " 'carol' <carol@example.org>", "\"carol\" carol@example.org", "carol x <carol@x",
	"carol <carl@example.org>", "\"a b\" <a b@x>", "  a <a@", "'a' a@", "a' <a@", "a'' <a@", "a <<a@", " \t a <\t a@",
	"\nReceived: from a by b for <bob@example.org>; Mon\nSubject: hi bob@example.orgs\n",
	"\nReceived: from a by b for <b\u00f6b@example.org>; Mon\nSubject: hi B\u00d6B@example.org:\n",
	"From: John Doe <j@x>\n\nJohn Doe\n", "From:  John Doe\nJohn Doe", "From: \t<John Doe\n<John Doe\n",
	"From: <John Doe\n\tJohn Doe\n", "From:  John Doe x\n John Doe\r\n", "From:\n\nJohn Doe\n\nJohn Doe",
	"From:\n\nJohn Doe\n\nJohn Doe\n", "From: J\u00f6hn D\u00a0oe x\nJ\u00f6hn D\u00a0oe\n",
	"From: J\u00f6hn\u00a0Doe x\nJ\u00f6hn\u00a0Doe\n", "From: Ab Cd \n" + strings.Repeat("x", 2100) + "\nAb Cd\n",
	"From: Ab Cd \n" + strings.Repeat("\u00e9", 2040) + "\nAb Cd\n", "From: Ab Cd \nAb Cd\n", "From: Ab Cd \nx\nAb Cd\n",
	"x\nFrom: Ab  Cd \nx\nAb  Cd\n", "From: Ab Cd \nx\nAb Cd \n", "From: A Cd \nx\nA Cd\n", "From:  A Cd \nx\n A Cd\n",
	"bob@example.org", "xkcdz@x", "XKCDZ@x", "xkcd@x", "ab.aeiou@x", "aeio@x", "aaaa@x", "aAaA@x", "aaa@x", "abababab@x",
	"abAbaBAB@x", "ababab@x", "a\naaa@x", "x\nzzbbb", "bob@mail.example", "mail-xkcdz@x", "zzzzz",
	"To: bob@acme.com\nSubject: acme deals\n", "To: bob@acme.com\nX: y\nSubject: \"ACME\" deals\n", "To:bob@acme.com\nSubject: acme\n",
	"X: y\nTO:  <b@acme.co>\nSubject: acmex\n", "To: b@acme.com\nSubject: acm\n", "To: b@@acme.com\nSubject: @acme\n",
	"To: a\n b@acme.com\nSubject: acme\n", "Subject: acme\nTo: b@acme.com\n", "To: b@ac\nme.com\nSubject: ac\nme\n",
	"To: b@acme\nSubject: acme\n", "To: b@.com\nSubject: \n", "To: \nx@y.z\nSubject: y\n",
	"http://example.example.com/", "http://Example.EXAMPLE.com/", "http://a.example.example.com", "http://example.example",
	"http://xexample.example.com", "http://example.examplex.com", "mailto:x@example.example.org", "http://short.short.com",
	"http://www.exam_ple.exam_ple.", "http://www.example.com/example.example.",
}

func TestBTScreenSound(t *testing.T) {
	rules := btScreenRules(t)
	for _, r := range rules {
		for _, s := range btScreenTexts {
			checkScreen(t, r, s)
		}
	}
	// Every screen must bite on some text it is meant for.
	for pat, r := range rules {
		n := 0
		for _, s := range btScreenTexts {
			if checkScreen(t, r, s) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s: screen never rejects", pat)
		}
	}
}

// TestBTScreenCorpus checks the screens on the header text of the corpus
// and that the Debian rules still carry them.
func TestBTScreenCorpus(t *testing.T) {
	rs := debianRules(t)
	e, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	bound := map[string]bool{} // a pattern several rules share binds once
	for _, r := range e.rules {
		if r != nil && r.btScreen != nil {
			bound[r.def.Pattern] = true
		}
	}
	if len(bound) != len(btScreens) {
		t.Errorf("%d of %d screens bound to Debian rules (a rule changed?)", len(bound), len(btScreens))
	}
	rules := btScreenRules(t)
	n := 500
	if sampled() {
		n = 60
	}
	rejected, total := 0, 0
	matched := map[string]int{}
	for _, k := range []string{"ham", "spam"} {
		ms := loadMessages(t, sample(corpusFiles(t, k), n))
		for _, m := range ms {
			c := &msgCtx{e: e, m: m, hcache: map[hkey]hval{}, fields: map[string][]string{}}
			for _, f := range m.Header {
				k := strings.ToLower(f.Name)
				c.fields[k] = append(c.fields[k], f.Value)
			}
			all, _ := c.header("ALL", "")
			for _, r := range rules {
				total++
				if checkScreen(t, r, all) {
					rejected++
				}
			}
			// Texts the comparing rules match: the From and To values
			// again as the other field, and in a Subject.
			from, _ := c.header("From", "")
			to, _ := c.header("To", "")
			rcvd, _ := c.header("Received", "")
			// The To value alone, and made to start with its local part.
			toRaw, _ := c.header("To", "raw")
			local, _, _ := strings.Cut(addrOf(toRaw), "@")
			for _, extra := range []string{toRaw, " \"" + local + "\" <" + addrOf(toRaw) + ">"} {
				for _, r := range rules {
					checkScreen(t, r, extra)
					if ok, _ := r.bt.MatchString(extra); ok {
						matched[r.def.Pattern]++
					}
				}
			}
			// A word of this message for the texts built to match
			// (the sample taken under -race may hold no natural match).
			word := "example"
			if _, dom, ok := strings.Cut(addrOf(from), "@"); ok {
				if lbl, _, _ := strings.Cut(dom, "."); lbl != "" && isASCII(lbl) && !strings.ContainsAny(lbl, " \t\r\n") {
					word = lbl
				}
			}
			for _, extra := range []string{
				"\nTo: <x@" + word + ".example>\nSubject: " + word + " offer\n",
				"\nX-Link: http://www." + word + "wwwwwww." + word + "wwwwwww.example/\n",
				"\nTo: " + from + "\nSubject: " + from + "\n",
				"\nFrom: " + to + "\nSubject: re " + to + ":\n",
				"\nTo: " + to + "\nFrom: " + to + " <spoof@example.com>\n",
				"\nReceived: " + rcvd + "\nSubject: " + strings.ReplaceAll(rcvd, "\n", " ") + "\n",
				// The From name again on a line of its own.
				"\nFrom: " + from + "\n\n" + strings.Join(firstN(strings.Fields(from), 2), " ") + "\r\n",
				"\nFrom:\n " + from + "\nX: y\n " + strings.Join(firstN(strings.Fields(from), 2), " ") + "\n",
			} {
				extra = all + extra
				for _, r := range rules {
					checkScreen(t, r, extra)
					if ok, _ := r.bt.MatchString(extra); ok {
						matched[r.def.Pattern]++
					}
				}
			}
		}
	}
	t.Logf("screens rejected %d of %d texts", rejected, total)
	// The test texts must exercise the screens where the regexes match.
	for pat := range rules {
		if matched[pat] == 0 && pat != randHeaderPattern {
			t.Errorf("no test text matches %s", pat)
		}
	}
}

func FuzzBTScreen(f *testing.F) {
	for _, s := range btScreenTexts {
		f.Add(s)
	}
	rules := btScreenRules(f)
	var rl []*rule
	for _, r := range rules {
		rl = append(rl, r)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range rl {
			checkScreen(t, r, s)
		}
	})
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// TestPairIndexShared: a screen answers the same whether the shared
// index holds its text (the rules before it screened it) or another one.
func TestPairIndexShared(t *testing.T) {
	shared := 0
	for pat, screen := range btScreens {
		for i, a := range btScreenTexts {
			b := btScreenTexts[(i+1)%len(btScreenTexts)]
			lastPairIndex.Store(nil)
			fresh := screen(a)
			screen(b)
			other := screen(a)
			if ix := lastPairIndex.Load(); ix != nil && ix.text == a {
				shared++
			}
			if again := screen(a); fresh != other || fresh != again {
				t.Errorf("%s on %q: %v fresh, %v after another text, %v again", pat, a, fresh, other, again)
			}
		}
	}
	if shared == 0 {
		t.Error("no screen used the shared index")
	}
}

// TestScreensOnTheirTexts holds the HK_RANDOM_* screen to the regex
// on the address texts those rules read, and __URI_LONG_REPEAT's on the
// corpus's URIs.
func TestScreensOnTheirTexts(t *testing.T) {
	rules := btScreenRules(t)
	r := rules[randomLocalPattern]
	ru := rules[`m;(?:://|@)(?:\w+\.)*(\w{7,}\.)\1;i`]
	urisRejected, uris := 0, 0
	e, err := Compile(debianRules(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 300
	if testing.Short() {
		n = 40
	}
	rejected, total := 0, 0
	for _, k := range []string{"ham", "spam"} {
		for _, m := range loadMessages(t, sample(corpusFiles(t, k), n)) {
			c := &msgCtx{e: e, m: m, hcache: map[hkey]hval{}, fields: map[string][]string{}}
			for _, f := range m.Header {
				k := strings.ToLower(f.Name)
				c.fields[k] = append(c.fields[k], f.Value)
			}
			for _, u := range c.uriLines() {
				uris++
				if checkScreen(t, ru, u) {
					urisRejected++
				}
			}
			for _, h := range [][2]string{{"From", "addr"}, {"EnvelopeFrom", ""}, {"Reply-To", "addr"}} {
				if v, ok := c.header(h[0], h[1]); ok {
					total++
					if checkScreen(t, r, v) {
						rejected++
					}
				}
			}
		}
	}
	t.Logf("rejected %d of %d address texts, %d of %d URIs", rejected, total, urisRejected, uris)
	if rejected == 0 || urisRejected == 0 {
		t.Error("a screen rejects no corpus text")
	}
}

// TestASCIIWords: isASCII and plainASCII, which read eight bytes at a
// time, answer as a byte-by-byte reading does, the bytes at the edges of
// their ranges (0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff) next to each other.
func TestASCIIWords(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 100000 {
		b := make([]byte, rng.Intn(40))
		for i := range b {
			switch rng.Intn(4) {
			case 0:
				b[i] = byte(rng.Intn(256))
			case 1:
				b[i] = byte(rng.Intn(0x22))
			case 2:
				b[i] = byte(0x7c + rng.Intn(6))
			default:
				b[i] = byte(0x20 + rng.Intn(0x5f))
			}
		}
		plain, ascii := true, true
		for _, c := range b {
			plain = plain && !(c >= 0x7f || c < ' ' && (c < '\t' || c > '\r'))
			ascii = ascii && c < 0x80
		}
		if got := plainWords(string(b)); got != plain {
			t.Fatalf("plainASCII(%q) = %v", b, got)
		}
		if got := isASCII(string(b)); got != ascii {
			t.Fatalf("isASCII(%q) = %v", b, got)
		}
	}
}
