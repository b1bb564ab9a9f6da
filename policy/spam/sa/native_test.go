package sa

import (
	"fmt"
	"math/rand"
	"regexp"
	"strings"
	"testing"
	"time"
)

// nativeOracles compiles each plainNatives pattern as the engine
// translates it, with Go's regexp: the answer a native matcher must give.
func nativeOracles(t testing.TB) map[string]*regexp.Regexp {
	t.Helper()
	out := map[string]*regexp.Regexp{}
	for pat := range plainNatives {
		p, flags, err := SplitRegex(pat)
		if err != nil {
			t.Fatal(err)
		}
		re2, err := Translate(p, flags)
		if err != nil {
			t.Fatalf("%s: %v", pat, err)
		}
		out[pat] = regexp.MustCompile(re2)
	}
	return out
}

func checkPlainNative(t testing.TB, pat string, re *regexp.Regexp, text string) bool {
	want := re.MatchString(text)
	if got := plainNatives[pat](text); got != want {
		t.Errorf("native %s = %v, regexp %v, on %.200q (%d bytes)", pat, got, want, text, len(text))
	}
	return want
}

// randomLines builds a text of lines near n runes long, with \r, \n, NUL,
// latin1 runes and invalid bytes here and there.
func randomLines(rng *rand.Rand, n int) string {
	var b strings.Builder
	for range 1 + rng.Intn(4) {
		l := n - 3 + rng.Intn(7)
		if rng.Intn(3) == 0 {
			l = rng.Intn(n)
		}
		for range l {
			switch x := rng.Intn(400); {
			case x == 0:
				b.WriteByte('\r')
			case x == 1:
				b.WriteByte(0)
			case x == 2:
				b.WriteString("\u00e9")
			case x == 3:
				b.WriteByte(0xff)
			case x == 4:
				b.WriteByte(0xc3) // a truncated sequence
			default:
				b.WriteByte(byte('a' + x%26))
			}
		}
		switch rng.Intn(3) {
		case 0:
			b.WriteString("\r\n")
		case 1:
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// randomHeaders builds a header block of a few lines that start, or
// nearly start, with the names the header natives look for, in any case,
// each followed by white space or not.
func randomHeaders(rng *rand.Rand) string {
	names := []string{"Subject:", "subject:", "SUBJECT:", "Subject", "From:", "FROM:", "To:", "tO:", "Reply-To:", "reply-to:",
		"Reply_To:", "Delivered-To:", "X-To:", "Message-Id:", "MESSAGE-ID:", "Message-ID", "Received:", "received:", "Receive:", "x"}
	after := []string{" ", "\t", "\n", "\r", "\f", "\x0b", "x", "\u00e9", "\xff", "<", ""}
	seps := []string{"\n", "\r\n", " ", "\n\t", ""}
	var b strings.Builder
	for range 1 + rng.Intn(6) {
		b.WriteString(names[rng.Intn(len(names))])
		b.WriteString(after[rng.Intn(len(after))])
		for range rng.Intn(4) {
			b.WriteByte(byte('a' + rng.Intn(26)))
		}
		b.WriteString(seps[rng.Intn(len(seps))])
	}
	return b.String()
}

// plainNativeTexts are near misses of the header natives.
var plainNativeTexts = []string{
	"Received: a\nReceived: b", "Received: \nReceived: b", "Received:\n\nReceived: b", "Received:\nx\nReceived: b",
	"Received:\n\n\nReceived:\t", "Received:\n\n\nReceived:\v", "Received:\v\n\n\nReceived: ", "x\nRECEIVED: a\nreceived:\r",
	"xReceived: a\nReceived: b", "Received: a\nxReceived: b", "Received: a\nReceived:", "Received: a\nReceived:b\nReceived: c",
	"Received: a\nReceived:b\n", "Received:a\nReceived: b\nReceived: c", "Received: \u00e9\nReceived: b", "Received: \xff\nReceived: b",
	"Received:\u00a0a\nReceived: b", "Received:\r\nReceived: b", "Received:\r\n\nReceived: b", "Received:  \nReceived: b",
	"date: 12345", "date: 1234", "Date: 12345", "date: 1234\n5", "date: 12\v45", "date: \u00e9\u00e9\u00e9\u00e9", "date: \u00e9\u00e9\u00e9\u00e9\u00e9",
	"date: \xff\xff\xff\xff\xff", "date: \xc3\xa9\xc3", "date:  12345", "to: abc\nto: abcde", "reply-to: <a@b>", "from: x\tyyyy", "from: xyzw\r", "from: a@b.c",
	"[1\n", "[1\r\n", "[1\r\r\n", "[\n", "[12x\n", "[[12\n", "[1[2\r\n", "[\u0661\n", "[12", "[12\r", "x[0099\ny",
}

func TestPlainNativeExact(t *testing.T) {
	res := nativeOracles(t)
	texts := []string{"", "\x00", "a\x00b", "\n", strings.Repeat("x", 997), strings.Repeat("x", 998),
		strings.Repeat("x", 997) + "\r", strings.Repeat("x", 997) + "\ry", "\n" + strings.Repeat("x", 998) + "\n",
		strings.Repeat("\u00e9", 997), strings.Repeat("\u00e9", 998), "\r" + strings.Repeat("x", 998),
		strings.Repeat("\xff", 998), strings.Repeat("\xff", 997) + "\xc3", strings.Repeat("x", 500) + "\n" + strings.Repeat("x", 500)}
	texts = append(texts, plainNativeTexts...)
	rng := rand.New(rand.NewSource(1))
	n := 3000
	if raceOn {
		n = 300
	}
	for range n {
		texts = append(texts, randomLines(rng, 998), randomHeaders(rng))
	}
	hits := map[string]int{}
	for pat, re := range res {
		for _, s := range texts {
			if checkPlainNative(t, pat, re, s) {
				hits[pat]++
			}
			if s2 := latin1(s); s2 != s && checkPlainNative(t, pat, re, s2) {
				hits[pat]++
			}
		}
	}
	for pat := range res {
		if hits[pat] == 0 {
			t.Errorf("no test text matches %s", pat)
		}
	}
}

// TestPlainNativeCorpus compares the native matchers with the regexes on
// the corpus's full texts, as they are and with a long line or a NUL put
// in, and checks that they are bound to the Debian rules.
func TestPlainNativeCorpus(t *testing.T) {
	e, err := Compile(debianRules(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	bound := map[string]bool{}
	for _, r := range e.rules {
		if r != nil && plainNatives[r.def.Pattern] != nil {
			bound[r.def.Pattern] = true
		}
	}
	if len(bound) != len(plainNatives) {
		t.Errorf("%d of %d native matchers bound to Debian rules (a rule changed?)", len(bound), len(plainNatives))
	}
	res := nativeOracles(t)
	n := 200
	if sampled() {
		n = 20
	}
	long := strings.Repeat("y", 998)
	for _, k := range []string{"ham", "spam"} {
		for _, m := range loadMessages(t, sample(corpusFiles(t, k), n)) {
			full := latin1(string(m.Raw))
			mid := len(full) / 2
			c := &msgCtx{e: e, m: m, hcache: map[hkey]hval{}, fields: map[string][]string{}, upper: -1}
			var hdrs []string
			for _, h := range [][2]string{{"ALL", ""}, {"ALL", "raw"}, {"ALL-EXTERNAL", ""}} {
				v, _ := c.header(h[0], h[1])
				hdrs = append(hdrs, v, strings.Replace(v, "\n", "\n[5\r\n", 1), strings.ToLower(v))
				if i := strings.Index(v, "\nReceived:"); i >= 0 {
					// One Received field of the two the rule wants.
					hdrs = append(hdrs, v[i:], v[i:i+min(len(v)-i, 40)])
				}
			}
			for pat, re := range res {
				for _, h := range hdrs {
					checkPlainNative(t, pat, re, h)
				}
				checkPlainNative(t, pat, re, full)
				checkPlainNative(t, pat, re, full[:mid]+"\n"+long+full[mid:])
				checkPlainNative(t, pat, re, full[:mid]+"\x00"+full[mid:])
			}
		}
	}
}

// screenNativeRules compiles each screenNatives pattern as a rule of ALL:raw
// and returns the rules by pattern, their regexes without budget.
func screenNativeRules(t testing.TB) map[string]*rule {
	t.Helper()
	var src strings.Builder
	names := map[string]string{}
	for pat := range screenNatives {
		name := fmt.Sprintf("SCREENED_%d", len(names))
		names[pat] = name
		fmt.Fprintf(&src, "header %s ALL:raw =~ %s\n", name, pat)
	}
	e := compile(t, src.String(), Options{MatchTimeout: time.Minute})
	out := map[string]*rule{}
	for pat, name := range names {
		r := e.rules[e.byName[name]]
		if r.bt != nil {
			r.bt.MatchTimeout = time.Minute // the oracle: no budget
		}
		out[pat] = r
	}
	return out
}

// checkScreenNative fails when a screen in Go rejects a text its rule's
// regex (the backtracking one when there is one: not screened by the
// rule's own screen) matches; it returns the regex's answer.
func checkScreenNative(t testing.TB, pat string, r *rule, s string) bool {
	var m bool
	if r.bt != nil {
		ok, err := r.bt.MatchString(s)
		if err != nil {
			t.Fatalf("%s: %v", pat, err)
		}
		m = ok
	} else {
		m = r.match(s, isASCII(s), 1) > 0
	}
	if m && !screenNatives[pat](s) {
		t.Errorf("screen of %s rejects a text the rule matches: %q", pat, s)
	}
	return m
}

// screenNativeTexts are texts near the screened rules' matches.
var screenNativeTexts = []string{"", "=?", "Subject: =?utf-8?q?caf=C3=A9?= ok\n", "Subject: =?utf-8?q?caf=C3=A9 ok\n",
	"Subject: = ?utf-8?q?x y\n", "Subject: =\n ?utf-8?B?abc def\n", "X: =?iso-8859-1?Q?a b?=\n", "=?x?q? a b c\n",
	"MessageID: x\n", "X-Foo: ab\nxMessage: y\n", "DomainKeyX: y\n", "DomainKey-Signature: aB\n", "x\vaB: y\n", "a\u00a0bC: x\n",
	"a\u0085bC", "\u00e9aB", "a\x00B\n", "\taB\n", "ab:cD\n", "a-bC\n", "X-Mailer: 1\naB", "aBc", "Ab",
	"Abcd-Efg: 1234567\n", "X-Abc-Defg: 1abcdef\n", "abcd-efgh: 9a-b.c_d \n", "Content-Type: 1234567\n", "Abc-Def: 1234567\n",
	"Abcd-Efgh:\t1deadbeef\r\n", "Abcd-Efgh: 12345\n", "abcd-EFGH: 1234567 x\n", "Tracking-Code: 1234567\n", "Xyzw-Abcd: 1\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\n",
}

// TestScreenNativeSound: a screen in Go (screenNatives) passes every text
// its rule's regex matches: encoded words whole, broken and near misses,
// header lines and the corpus's raw header blocks; and each is bound to a
// Debian rule.
func TestScreenNativeSound(t *testing.T) {
	rules := screenNativeRules(t)
	texts := append([]string(nil), screenNativeTexts...)
	rng := rand.New(rand.NewSource(1))
	pieces := []string{"=", "?", "=?", "?=", " ", "\n", "\t", "utf-8", "q", "B", "abc", "\u00e9", "-", ":", "aB", "Abcd-Efgh:", "123456", "\v", "\u00a0"}
	for range 2000 {
		var b strings.Builder
		for range 3 + rng.Intn(10) {
			b.WriteString(pieces[rng.Intn(len(pieces))])
		}
		texts = append(texts, b.String())
	}
	for _, k := range []string{"ham", "spam"} {
		for _, m := range loadMessages(t, sample(corpusFiles(t, k), 100)) {
			var b strings.Builder
			for _, f := range m.Header {
				writeField(&b, f, true)
			}
			texts = append(texts, latin1(b.String()))
		}
	}
	for pat, r := range rules {
		matched := 0
		for _, s := range texts {
			if checkScreenNative(t, pat, r, s) {
				matched++
			}
		}
		if matched == 0 {
			t.Errorf("no test text matches %s", pat)
		}
	}
	bound := map[string]bool{}
	for _, d := range debianRules(t).Defs {
		if screenNatives[d.Pattern] != nil {
			bound[d.Pattern] = true
		}
	}
	if len(bound) != len(screenNatives) {
		t.Errorf("%d of %d native screens bound to Debian rules (a rule changed?)", len(bound), len(screenNatives))
	}
}

func FuzzScreenNative(f *testing.F) {
	for _, s := range screenNativeTexts {
		f.Add(s)
	}
	rules := screenNativeRules(f)
	f.Fuzz(func(t *testing.T, s string) {
		for pat, r := range rules {
			checkScreenNative(t, pat, r, s)
		}
	})
}

// FuzzPlainNative compares the native matchers with the regexes.
func FuzzPlainNative(f *testing.F) {
	for _, s := range plainNativeTexts {
		f.Add(s)
	}
	res := nativeOracles(f)
	f.Fuzz(func(t *testing.T, s string) {
		for pat, re := range res {
			checkPlainNative(t, pat, re, s)
		}
	})
}
