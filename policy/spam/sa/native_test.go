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

func TestPlainNativeExact(t *testing.T) {
	res := nativeOracles(t)
	texts := []string{"", "\x00", "a\x00b", "\n", strings.Repeat("x", 997), strings.Repeat("x", 998),
		strings.Repeat("x", 997) + "\r", strings.Repeat("x", 997) + "\ry", "\n" + strings.Repeat("x", 998) + "\n",
		strings.Repeat("\u00e9", 997), strings.Repeat("\u00e9", 998), "\r" + strings.Repeat("x", 998),
		strings.Repeat("\xff", 998), strings.Repeat("\xff", 997) + "\xc3", strings.Repeat("x", 500) + "\n" + strings.Repeat("x", 500)}
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
			for pat, re := range res {
				checkPlainNative(t, pat, re, full)
				checkPlainNative(t, pat, re, full[:mid]+"\n"+long+full[mid:])
				checkPlainNative(t, pat, re, full[:mid]+"\x00"+full[mid:])
			}
		}
	}
}

// TestScreenNativeSound: a screen in Go (screenNatives) passes every text
// its rule's regex matches: encoded words whole, broken and near misses,
// and the corpus's raw header blocks; and each is bound to a Debian rule.
func TestScreenNativeSound(t *testing.T) {
	var src strings.Builder
	pats := map[string]string{}
	for pat := range screenNatives {
		name := fmt.Sprintf("SCREENED_%d", len(pats))
		pats[name] = pat
		fmt.Fprintf(&src, "header %s ALL:raw =~ %s\n", name, pat)
	}
	e := compile(t, src.String(), Options{MatchTimeout: time.Minute})
	texts := []string{"", "=?", "Subject: =?utf-8?q?caf=C3=A9?= ok\n", "Subject: =?utf-8?q?caf=C3=A9 ok\n",
		"Subject: = ?utf-8?q?x y\n", "Subject: =\n ?utf-8?B?abc def\n", "X: =?iso-8859-1?Q?a b?=\n", "=?x?q? a b c\n"}
	rng := rand.New(rand.NewSource(1))
	pieces := []string{"=", "?", "=?", "?=", " ", "\n", "\t", "utf-8", "q", "B", "abc", "\u00e9"}
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
	for name, pat := range pats {
		r := e.rules[e.byName[name]]
		matched := 0
		for _, s := range texts {
			if r.match(s, isASCII(s), 1) == 0 {
				continue
			}
			matched++
			if !screenNatives[pat](s) {
				t.Errorf("screen of %s rejects a text the rule matches: %q", pat, s)
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
