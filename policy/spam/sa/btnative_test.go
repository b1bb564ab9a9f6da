package sa

import (
	"fmt"
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
	rs, err := Parse("natives.cf", strings.NewReader(src.String()), Env{})
	if err != nil || len(rs.Errors) > 0 {
		t.Fatalf("parse: %v %v", err, rs.Errors)
	}
	e, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
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
