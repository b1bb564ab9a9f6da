package sa

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// btNativeRules compiles each pattern that has a native matcher as the
// engine compiles it (as a rawbody rule: the natives do not depend on
// the kind) and returns its rule, with its backtracking regex.
func btNativeRules(t testing.TB) []*rule {
	t.Helper()
	var src strings.Builder
	var names []string
	for pat := range btNatives {
		name := fmt.Sprintf("NATIVE_%d", len(names))
		names = append(names, name)
		fmt.Fprintf(&src, "rawbody %s %s\n", name, pat)
	}
	e := compile(t, src.String(), Options{})
	var out []*rule
	for _, n := range names {
		r := e.rules[e.byName[n]]
		if r.bt == nil || r.btNative == nil {
			t.Fatalf("%s (%s): no backtracking regex or no native matcher", n, r.def.Pattern)
		}
		r.bt.MatchTimeout = time.Minute // the oracle: no budget
		out = append(out, r)
	}
	return out
}

// checkNative fails when a native matcher's answer differs from the
// regex's; it returns the regex's.
func checkNative(t testing.TB, r *rule, text string) bool {
	want, err := r.bt.MatchString(text)
	if err != nil {
		t.Fatalf("%s: %v", r.def.Pattern, err)
	}
	got, ok := r.btNative(text)
	if ok && got != want {
		t.Errorf("native %s = %v, regex %v, on %q", r.def.Pattern, got, want, text)
	}
	return want
}

var btNativeTexts = []string{
	"", "<", "<font", "<Font", "<Font ", "<FONT ", "<font ", "<fOnT\t", "<Font\u00a0", "<Font\u0085x", "<Font\u00e9",
	"<Fontx <FoNt\n", "<<Font ", "<Img src", "<IMG src", "<img src", "<iMG\r", "<Area ", "<AREA ", "<Center>", "<CENTER>",
	"<center>", "<Center >", "<CeNtEr>x", "\xff<Font ", "<Font\xc2", "<Font\xc2\xa0",
	" by=1.2.3.4 ", " by=0.2.3.4 ", " ip=224.1.1.1 ", " ip=223.1.1.1 ", " ip=259.1.1.1 ", " ip=260.1.1.1 ",
	" ip=192.0.2.1 ", " ip=192.0.3.1 ", " ip=198.51.100.7 ", " ip=203.0.113.9 ", " ip=1.2.3.256 ", " ip=1.2.3.255 ",
	" ip=1.2.3.4", " ip=1.2.3.4x", " ip=1.2.3.0255 ", " ip=1.2.3.099 ", " ip=1.2.3.199 ", " ip=1.2.300.1 ",
	" ip=1.2.3 ", "[ ip=1.2.3.4 rdns= helo=x by=1.2.3.999 ident=]", " ip=00.1.1.1 ", " ip=01.1.1.1 ", " ip=1234.1.1.1 ",
	" by=1.2.3.4 ip=1.2.3.400 ", " ip=1.2.3.4\u00a0", " ip=\u0661.2.3.4 ", " ip=1.2.3.\u0664\u0664\u0664 ",
	"[ ip=1.2.3.4 rdns=1-2-3-4.example.org helo=x ]", "[ ip=1.2.3.4 rdns=host4.3.2.1.example.org ]",
	"[ ip=1.2.3.4 rdns=x helo=1.2.3.4 ]", "[ ip=1.2.3.4 helo=a1x2x3x4 ]", "[ ip=1.2.3.4 x] rdns=1.2.3.4 ]",
	"[ ip=1.2.3.4 rdns=a 1.2.3.4 ]", "[ ip=1.2.3.4 rdns=1.2.3.45 ]", "[ ip=1.2.3.4 rdns=11.2.3.4 ]",
	"[ ip=1.2.3.4 rdns=1\u00e92\u00e93\u00e94 ]", "[ ip=1.2.3.4 xrdns=1.2.3.4 ]", "[ ip=1.2.3.4  rdns=1.2.3.4 ]",
	"[ ip=12.2.3.4 rdns=12.2.3.4", "[ ip=1.2.3.4 rdns=1.2.3\u0664", "[ ip=1.2.3.4\nrdns=1.2.3.4 ]",
	"[ ip=1.2.3.4 a\nb rdns=1.2.3.4 ]", "[ ip=1.2.3.4 rdns=x\u00a01.2.3.4 ]", "[ ip=1.2.3.4 rdns=12.3.4 ]",
	// The From/To/Subject comparisons (pairRules).
	"\nTo: bob@example.org\nSubject: hi bob@example.org!\n", "\nTo: bob@example.org\nSubject: hi bob@example.orgs\n",
	"\nTo: Bob <bob@example.org>\nX: y\n\nSubject: BOB@EXAMPLE.ORG\n", "\nTo: Bob <bob@example.org>x\nSubject: bob@example.org\n",
	"\nTo: <bob@example.org>\nSubject: <bob@example.org>\n", "\nTo: bob@example.org, amy\nSubject: bob@example.org\n",
	"\nTo: bob@example.org\nSubject: bob@example.org", "\nTo: bob@example.org\nSubject: bob@example.org\r\n",
	"To: bob@example.org\nSubject: bob@example.org.\n", "\nto: bob\nsubject: bob\n", "\nTo:  bob\nSubject: bob\n",
	"\nTo: bob\n" + strings.Repeat("x", 200) + "\nSubject: bob.\n", "\nTo: bob\n" + strings.Repeat("x", 201) + "\nSubject: bob.\n",
	"\nTo: bob\nSubject: " + strings.Repeat("x", 100) + "bob.\n", "\nTo: bob\nSubject: " + strings.Repeat("x", 101) + "bob.\n",
	"\nTo: " + strings.Repeat("n", 80) + "<bob>\nSubject: bob.\n", "\nTo: " + strings.Repeat("n", 81) + "<bob>\nSubject: bob.\n",
	"\nTo: a<b<bob>\nSubject: bob.\n", "\nTo: a<b<bob>\nSubject: b<bob.\n", "\nTo: bob\nX: Subject: bob.\n",
	"\nSubject: bob.\nTo: bob\n", "\nTo: bob\nSubject: bob\u00e9\n", "\nTo: bob>\nSubject: bob \n", "\nTo: bob>>\nSubject: bob \n",
	"\nTo: bob\n\n\nSubject: x\nSubject: bob_\nSubject: bob-\n",
	"\nFrom: a@b.c\nSubject: re a@b.c:\n", "\nFrom: a@b.c\nSubject: re a@b.c.\n", "\nTo: <a@b.c>\nFrom: x <A@B.C>\n",
	"\nTo: a@b.c\nFrom: " + strings.Repeat("<", 80) + "<a@b.c>\n", "\nTo: a@b.c\nFrom: " + strings.Repeat("x", 81) + "<a@b.c>\n",
	"\nFrom: a@b.c\nTo: a@b.c,d\n", "\nFrom: a@b.c\nTo: a@b.cd\n", "\nFrom: a@b.c\nTo:  a@b.c\n",
	"\nFrom: Bob <bob@example.org>\nTo: amy@example.org\n", "\nFrom: x@y\nTo: @y\n", "\nFrom: x@y\nTo: @@y\n",
	"\nFrom: " + strings.Repeat("x", 80) + "@y\nTo: a@y\n", "\nFrom: " + strings.Repeat("x", 81) + "@y\nTo: a@y\n",
	"\nTo: a@b@c\nFrom: x@b@c\n", "\nTo: a@b>\nFrom: x@b>\n",
	"\nFrom:\n\tbob@example.org\nTo:\n <bob@x>\n", "\nFrom: bob@example.org x\nTo: bob@x\n", "\nFrom: bob@example.org\nTo:bob@x\n",
	"\nTo:  <bob@example.org>\nFrom: \"Bob\" <bob@example.org>\n", "\nTo: bob@\nFrom: bob@x\n", "\nTo: bob@x>\nFrom: bob\n",
	"\nFrom: bobby12@example.org\nTo: bobby7@x.y\n", "\nFrom: bob12@x\nTo: bob1@x\n", "\nFrom: bob12@x\nTo: bob@x\n",
	"\nTo: bobby12@example.org\nFrom: x <bobby@x.y>\n", "\nTo: " + strings.Repeat("b", 81) + "@x\nFrom: " + strings.Repeat("b", 80) + "1@x\n",
	"\nTo: " + strings.Repeat("b", 80) + "1@x\nFrom: " + strings.Repeat("b", 80) + "1@x\n",
	"[ ip=1.2.3.4 rdns=mail.example.org helo=MAIL.Example.ORG by=x ]", "[ ip=1.2.3.4 rdns=mail.example.org helo=mail.example.org.uk ]",
	"[ ip=1.2.3.4 rdns=mail.example.org helo=mx.example.org ]", "[ ip=1.2.3.4 rdns=mail.example.org helo=mail.example.or ]",
	"[ ip=1.2.3.4 rdns=mail.example.org helo= ]", "[ ip=1.2.3.4 rdns= helo=x ]", " rdns=a helo=b", "x rdns=a helo=b",
	"x] rdns=a helo=b", "x rdns=a helo=b]", "x rdns=a\thelo=b", "x rdns=a  helo=b", "x\n rdns=a helo=\u00e9",
	"[ ip=1 rdns=a helo=A ] [ ip=2 rdns=b helo=c ]", "x rdns=a helo=a rdns=b helo=c", "x rdns=a rdns=b helo=c",
	"\nFrom: \"Acme Inc\" <a@b>\nOrganization: ACME inc\n", "\nFrom: Acme <a@b>\nX: y\n\nOrganization: Acme\n",
	"\nFrom: Acme <a@b>\nOrganization: Acme", "\nFrom: Acme <a@b>\nOrganization: Acme \n", "\nFrom: Acme <a@b>\nOrganization: Acm\n",
	"\nFrom: Acme <a@b> x\nOrganization: Acme\n", "\nFrom: Acme <>\nOrganization: Acme\n", "\nFrom: Acme <a\nb>\nOrganization: Acme\n",
	"\nFrom: Acme <a@b>\nOrganization: Acme <a@b>\n", "\nOrganization: Acme\nFrom: Acme <a@b>\n", "\nFrom: A <b> <c>\nOrganization: A <b>\n",
	"\nFrom: \"\" <a@b>\nOrganization: \"\n", "\nFrom: \" <a@b>\nOrganization: \"\n", "\nFrom:  <a@b>\nOrganization:  \n",
	"\nFrom: A <b>\nXOrganization: A\n", "\nFrom: A <b>\nOrganization: A\u00e9\n", "\nfrom: a <b>\norganization: A\n",
	"\nReceived: from a by b for <bob@example.org>; Mon\nSubject: hi bob@example.org!\n",
	"\nReceived: from a by b for bob@example.org; Mon\nX: y\n\nSubject: hi BOB@EXAMPLE.ORG\n",
	"\nReceived: from a by b for bob@example.org;\nSubject: hi bob@example.org\n", "\nReceived: x for bob;Subject: bob.\n",
	"\nReceived: x for bob; Subject: bob.\n", "\nReceived: x for <<bob>; y\nSubject: <bob.\n", "\nReceived: x for bob>>; y\nSubject: bob.\n",
	"\nReceived:" + strings.Repeat("x", 200) + " for bob; y\nSubject: bob.\n", "\nReceived:" + strings.Repeat("x", 201) + " for bob; y\nSubject: bob.\n",
	"\nReceived: x for bob ; y\nSubject: bob.\n", "\nReceived: x for bob; y\nSubject: bobs\n", "\nReceived: x FOR Bob; y\nX-Subject: bob.\n",
	"Received: x for bob; y\nSubject: bob.\n", "\nReceived: x for\tbob; y\nSubject: bob.\n",
	"To: <x@acme.example>\nSubject: Acme offer\n", "To: <x@acme.example>\nSubject: \"ACME\" offer\n", "To: <x@acme.example>\nSubject: acmes\n",
	"To: <x@acme.\nSubject: acme\n", "To: <x@acme.x\nSubject: acme\n", "To:<x@acme.x\nSubject: acme\n", "To: @acme.x\nSubject: acme\n",
	"To:\n\nx@acme.x\nSubject: acme\n", "x\nto: a@b@c.d\nsubject: B@C\n", "To: a@ac\nme.x\nSubject: ac\nme-\n", "To: a@.x\nSubject: .\n",
	"To: a@b.x\nSubject:  b\n", "To: a@b-.x\nSubject: b--\n", "To: a@b-.x\nSubject: b-\n", "To: a@b-.x\nSubject: b-c\n",
	"Subject: b\nTo: a@b.x\n", "To: a@b.x\nX-Subject: b\n", "To: a@b.x\nSubject: \"\"b\n", "To: a@\"b.x\nSubject: \"b\n",
	"\nReceived: x for bob; y\n\n\nSubject: " + strings.Repeat("z", 100) + "bob\n",
}

func TestBTNativeExact(t *testing.T) {
	rules := btNativeRules(t)
	hits := map[string]int{}
	for _, r := range rules {
		for _, s := range btNativeTexts {
			if checkNative(t, r, s) {
				hits[r.def.Pattern]++
			}
		}
	}
	for _, r := range rules {
		if hits[r.def.Pattern] == 0 {
			t.Errorf("no test text matches %s", r.def.Pattern)
		}
	}
}

// TestBTNativeCorpus compares the native matchers with the regexes on the
// corpus's rawbody texts and relay lines, as they are and altered to
// match.
func TestBTNativeCorpus(t *testing.T) {
	rs := debianRules(t)
	e, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	bound := 0
	for _, r := range e.rules {
		if r != nil && r.btNative != nil {
			bound++
		}
	}
	if bound != len(btNatives) {
		t.Errorf("%d of %d native matchers bound to Debian rules (a rule changed?)", bound, len(btNatives))
	}
	rules := btNativeRules(t)
	n := 300
	if sampled() {
		n = 40
	}
	alter := strings.NewReplacer("<font", "<Font", "<img", "<iMg", "<center>", "<CenTer>", "<area", "<ARea",
		"ip=", "ip=30", "rdns=", "rdns=x", " helo=", " helo=1.2.3.4")
	matched := map[string]int{}
	for _, k := range []string{"ham", "spam"} {
		for _, m := range loadMessages(t, sample(corpusFiles(t, k), n)) {
			c := &msgCtx{e: e, m: m, hcache: map[hkey]hval{}, fields: map[string][]string{}, upper: -1}
			for _, f := range m.Header {
				k := strings.ToLower(f.Name)
				c.fields[k] = append(c.fields[k], f.Value)
			}
			texts := append([]string(nil), c.rawLines()...)
			all, _ := c.header("ALL", "")
			from, _ := c.header("From", "")
			to, _ := c.header("To", "")
			texts = append(texts, all,
				all+"\nTo: "+from+"\nSubject: "+from+"\n",
				all+"\nFrom: "+to+"\nSubject: re "+to+":\n",
				all+"\nTo: "+to+"\nFrom: "+to+" <spoof@example.com>\n",
				"\nTo: "+to+"\nX-Y: z\nSubject: Re: "+strings.ToUpper(to)+"\n",
				"\nFrom: "+from+"\nTo: "+strings.ToUpper(from)+"\n")
			// The first label of the To domain in the Subject, as
			// __PDS_TO_BRAND_SUBJECT looks for (the CI's sample of 40
			// messages a folder has no such message of its own).
			if _, dom, ok := strings.Cut(to, "@"); ok {
				if label, _, ok := strings.Cut(dom, "."); ok && label != "" {
					texts = append(texts, "To: "+to+"\nX-Y: z\nSubject: "+label+" news\n")
				}
			}
			if name, _, ok := strings.Cut(from, " <"); ok {
				texts = append(texts, all+"\nFrom: "+from+"\nOrganization: "+strings.Trim(name, `"`)+"\n")
			}
			for _, h := range []string{"X-Spam-Relays-Untrusted", "X-Spam-Relays-External"} {
				v, _ := c.header(h, "")
				texts = append(texts, v)
				// The first relay's address in its rdns, as the rule looks for.
				if ip, _, ok := strings.Cut(strings.TrimPrefix(v, "[ ip="), " "); ok && strings.HasPrefix(v, "[ ip=") {
					texts = append(texts, strings.Replace(v, "rdns=", "rdns=mail-"+strings.ReplaceAll(ip, ".", "-")+".", 1))
				}
			}
			for _, s := range texts {
				for _, x := range []string{s, alter.Replace(s)} {
					for _, r := range rules {
						if checkNative(t, r, x) {
							matched[r.def.Pattern]++
						}
					}
				}
			}
		}
	}
	for _, r := range rules {
		if matched[r.def.Pattern] == 0 {
			t.Errorf("no corpus text matches %s", r.def.Pattern)
		}
	}
}

// btNativeFields and btNativePieces are what TestBTNativeRandom builds
// header-like texts of: field names, addresses, brackets, quotes, line
// breaks, latin1 and invalid bytes.
var (
	btNativeFields = []string{"To: ", "To: ", "From: ", "From: ", "Organization: ", "From: \"", "Subject: ", "Subject: ", "To: ", "To:", "To:\t", "To:  ", "From: ", "From:", "From:\n ", "Subject: ", "Subject:", "Received: from a by b for ",
		"Organization: ", "Reply-To: ", "X-Foo: ", "", " ", "[ ip=1.2.3.4 rdns=", " helo=", " rdns=", "[ ip=1.2.3.4 rdns= helo="}
	btNativePieces = []string{
		"bob@example.org", "bob", "amy@x.y", "@", ".", "x", "-", "_", "2", "<", ">", "\"", "'", ",", ";", ":", "!", "]", "[",
		" ", " ", " ", "\t", "\n", "\n\n", "\r", "\u00e9", "\u00c9", "\u00a0", "\u0085", "\xff", "\xc3",
		"1.2.3.4", " rdns=", " helo=", "mail.example.org", "\u212a", "\u017f", strings.Repeat("w", 79), strings.Repeat("w", 100), strings.Repeat("w", 198),
	}
	btNativeWords = []string{"bob@example.org", "Bob", "b", "x.y", "bob2", "mail.example.org", "ke\u00e9", "bobby12@example.org", "Bob.Smith99", "bob1"}
)

// randomHeader returns a text of header-like lines that share a word.
func randomHeader(rng *rand.Rand) string {
	word := btNativeWords[rng.IntN(len(btNativeWords))]
	var b strings.Builder
	if rng.IntN(4) > 0 {
		b.WriteByte('\n')
	}
	for range 1 + rng.IntN(5) {
		if rng.IntN(8) == 0 {
			// Lines that compare a field with another.
			q := [...]string{"", `"`}[rng.IntN(2)]
			b.WriteString([...]string{"From: " + q + word + q + " <a@b>\n", "Organization: " + randomCase(word, rng) + "\n",
				"Received: from a by b for <" + word + ">;" + q + "\n", "Subject: re " + randomCase(word, rng) + q + "\n",
				"To: <x@" + word + ".example>\n", "Subject: " + q + randomCase(word, rng) + q + "\n"}[rng.IntN(6)])
			continue
		}
		f := btNativeFields[rng.IntN(len(btNativeFields))]
		if rng.IntN(4) == 0 {
			f = randomCase(f, rng)
		}
		b.WriteString(f)
		if rng.IntN(3) == 0 {
			// The word alone, as an address.
			b.WriteString([...]string{"", "<", "Bob <", "\"b\" <"}[rng.IntN(4)] + word)
		}
		for range rng.IntN(4) {
			switch rng.IntN(2) {
			case 0:
				w := word
				if rng.IntN(3) == 0 {
					w = randomCase(w, rng)
				}
				b.WriteString(w)
			default:
				b.WriteString(btNativePieces[rng.IntN(len(btNativePieces))])
			}
		}
		b.WriteString([...]string{"\n", "\n", "\n\n", "\r\n", ">\n", "", " <a@b>\n", "\" <a@b>\n", "; Mon\n", ">;\n", ";"}[rng.IntN(11)])
	}
	return b.String()
}

// TestBTNativeRandom compares the native matchers with the regexes on
// header-like texts.
func TestBTNativeRandom(t *testing.T) {
	rules := btNativeRules(t)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 100000
	if sampled() {
		n = 10000
	}
	matched, answered := map[string]int{}, map[string]int{}
	for range n {
		s := randomHeader(rng)
		for _, r := range rules {
			if checkNative(t, r, s) {
				matched[r.def.Pattern]++
			}
			if _, ok := r.btNative(s); ok {
				answered[r.def.Pattern]++
			}
		}
	}
	for _, r := range rules {
		t.Logf("%5d matched %5d answered %.60s", matched[r.def.Pattern], answered[r.def.Pattern], r.def.Pattern)
	}
}

func FuzzBTNative(f *testing.F) {
	for _, s := range btNativeTexts {
		f.Add(s)
	}
	rules := btNativeRules(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range rules {
			checkNative(t, r, s)
		}
	})
}
