package sa

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"time"
)

func screenOfPattern(t *testing.T, pat string) litScreen {
	t.Helper()
	tree, err := syntax.Parse(pat, syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	return screenOf(tree.Simplify())
}

// countedSet is the set a screen counts, nil for none.
func (ls litScreen) countedSet() []string {
	switch {
	case ls.count < 2:
		return nil
	case ls.countSet == 0:
		return ls.lits
	}
	return ls.more[ls.countSet-1]
}

// TestRepeatCount: the occurrences a screen requires of a literal set are
// those of the repetitions (and concatenations) that each need one.
func TestRepeatCount(t *testing.T) {
	for _, c := range []struct {
		pat   string
		count int
		set   string
	}{
		{`(?i)(?:<br>\s*){30}`, 30, `["<br>"]`},
		{`(?:foo\d){2,}`, 2, `["foo"]`},
		{`(?:foo\d){2,5}`, 2, `["foo"]`},
		{`(?:foo|bar){3}`, 3, `["foo" "bar"]`},
		{`(?:(?:foo|bar)\s+){3}bazz`, 3, `["foo" "bar"]`},
		{`(?:foo\d){2}x(?:foo\d){3}`, 5, `["foo"]`},
		{`foo(?:bar)?foo`, 2, `["foo"]`},
		{`(?:x(?:foo\d){2}){3}`, 6, `["foo"]`},
		{`(?:foo\s)+(?:foo\s)+`, 2, `["foo"]`},
		// What does not repeat a required set counts nothing.
		{`(?:foo\d)+`, 0, `[]`},
		{`(?:foo\d){0,3}`, 0, `[]`},
		{`(?:foo\d)*(?:foo\d)?`, 0, `[]`},
		{`(?:foo|bar(?:foo\d){2})`, 0, `[]`},
		{`(?:foo|ab){3}`, 0, `[]`}, // a string shorter than a screen's
		{`foobar`, 0, `[]`},
	} {
		ls := screenOfPattern(t, c.pat)
		if got := fmt.Sprintf("%q", ls.countedSet()); ls.count != c.count || got != c.set {
			t.Errorf("%q: count %d of %s, want %d of %s", c.pat, ls.count, got, c.count, c.set)
		}
	}
}

// disjointCount is the screen's count of set's occurrences in text, as
// the prefilters take it: every occurrence the automaton reports, the
// pairwise disjoint ones counted by occ.
func disjointCount(set []string, text string) int {
	a := newAutomaton(set)
	var o occ
	a.scan(text, func(p int32, end int) { o.add(end-a.lengths[p], end) })
	return int(o.n)
}

// TestRepeatCountSound: a text a regex matches holds the occurrences its
// screen requires (random regexes of repeated words, texts built from
// the regex, then mutated, and random texts of those words), and the
// screens reject texts.
func TestRepeatCountSound(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	words := []string{"foo", "oof", "fo", "bar", "BAR", "ar", "o", " ", "x"}
	word := func() string { return words[rng.IntN(len(words))] }
	// A part is a small regex needing some of the words, and a text it
	// matches.
	type part struct {
		re     string
		sample func() string
	}
	newPart := func() part {
		a, b := word(), word()
		q := func(s string) string { return regexp.QuoteMeta(s) }
		switch rng.IntN(4) {
		case 0:
			return part{"(?:" + q(a) + "|" + q(b) + ")", func() string { return []string{a, b}[rng.IntN(2)] }}
		case 1:
			return part{q(a) + `\s?`, func() string { return a + []string{"", " "}[rng.IntN(2)] }}
		case 2:
			return part{"(?:" + q(a) + ")?" + q(b), func() string { return []string{"", a}[rng.IntN(2)] + b }}
		}
		return part{"(?:" + q(a) + ")+", func() string { return strings.Repeat(a, 1+rng.IntN(2)) }}
	}
	checked, rejected := 0, 0
	for range 600 {
		var re strings.Builder
		var parts []part
		var times [][2]int
		if rng.IntN(2) == 0 {
			re.WriteString("(?i)")
		}
		for range 1 + rng.IntN(3) {
			p, q := newPart(), newPart()
			lo, hi := 1, 1
			switch rng.IntN(3) {
			case 0:
				lo = 2 + rng.IntN(3)
				hi = lo
				fmt.Fprintf(&re, "(?:%s%s){%d}", p.re, q.re, lo)
			case 1:
				lo = 1 + rng.IntN(3)
				hi = lo + 2
				fmt.Fprintf(&re, "(?:%s%s){%d,}", p.re, q.re, lo)
			default:
				fmt.Fprintf(&re, "(?:%s%s)", p.re, q.re)
			}
			parts = append(parts, p, q)
			times = append(times, [2]int{lo, hi})
		}
		pat := re.String()
		rx, err := regexp.Compile(pat)
		if err != nil {
			t.Fatal(pat, err)
		}
		ls := screenOfPattern(t, pat)
		set := ls.countedSet()
		if set == nil {
			continue
		}
		sample := func() string {
			var b strings.Builder
			for i, tm := range times {
				for range tm[0] + rng.IntN(tm[1]-tm[0]+1) {
					b.WriteString(parts[2*i].sample())
					b.WriteString(parts[2*i+1].sample())
				}
			}
			return b.String()
		}
		for range 300 {
			var text string
			switch rng.IntN(3) {
			case 0:
				text = word() + sample() + word()
			case 1:
				// A sample with a piece cut out: often a near miss.
				s := sample()
				i := rng.IntN(len(s) + 1)
				j := i + rng.IntN(len(s)-i+1)
				text = s[:i] + s[j:]
			default:
				for range rng.IntN(14) {
					text += word()
				}
			}
			n := disjointCount(set, strings.ToLower(text))
			if n < ls.count {
				rejected++
			}
			if !rx.MatchString(text) {
				continue
			}
			checked++
			if n < ls.count {
				t.Fatalf("%q matches %q, which holds %d of %q, not %d", pat, text, n, set, ls.count)
			}
		}
	}
	t.Logf("%d matching texts checked, %d texts rejected", checked, rejected)
	if checked < 5000 || rejected < 5000 {
		t.Errorf("%d matching texts checked, %d texts rejected", checked, rejected)
	}
}

// TestCountScreenRules: the count screens in the rules' prefilters, for
// the line kinds and the headers: a text with the rule's literals but
// fewer (disjoint) occurrences than its repetitions need is not run, one
// with as many is.
func TestCountScreenRules(t *testing.T) {
	e := compile(t, `
body     BODY_BR   /(?:<br>\s*){3}/i
score    BODY_BR   1
rawbody  RAW_BR    /(?:abc(?:de)?\s){3}/i
score    RAW_BR    1
header   SUBJ_REP  Subject =~ /(?:(?:aaa|aab)-){3}/
score    SUBJ_REP  1
full     FULL_REP  /(?:zzz\d){4}/
score    FULL_REP  1
`, Options{})
	rules := []string{"BODY_BR", "RAW_BR", "SUBJ_REP"}
	for _, name := range append(rules, "FULL_REP") {
		if v := e.rules[e.byName[name]].v[1]; v.count < 3 {
			t.Fatalf("%s: count %d", name, v.count)
		}
	}
	ran := map[string]bool{}
	costHook = func(i, _ int, _ time.Duration) { ran[e.rules[i].name] = true }
	defer func() { costHook = nil }()
	msg := func(subject, body string) *Message {
		return FromRaw([]byte("Subject: " + subject + "\r\nContent-Type: text/plain\r\n\r\n" + body + "\r\n"))
	}
	for _, c := range []struct {
		subject, body string
		hit           bool
	}{
		{"aaa-aab-aaa-", "<br><BR> <br>\nabc abcde ABC zzz1zzz2zzz3zzz4", true},
		{"aaa-aab-", "<br> <br> x\nabc abcde zzz1zzz2zzz3", false},
		// Overlapping occurrences count once: aaab holds aaa and aab,
		// and <br><br><br holds two.
		{"aaab aaab", "<br><br><br\nabc abc", false},
	} {
		clear(ran)
		h := hits(e.Check(msg(c.subject, c.body), Input{}))
		for _, name := range rules {
			if _, ok := h[name]; ok != c.hit || ran[name] != c.hit {
				t.Errorf("%q %q: %s hit %v, ran %v", c.subject, c.body, name, ok, ran[name])
			}
		}
		if _, ok := h["FULL_REP"]; ok != c.hit {
			t.Errorf("%q %q: FULL_REP hit %v", c.subject, c.body, ok)
		}
	}
}

// TestRareFactors: a set of short strings screens when each holds a rare
// byte (as a set beyond the first), and such sets are needed by every
// match (random regexes and texts of words with rare bytes).
func TestRareFactors(t *testing.T) {
	for _, c := range []struct {
		pat  string
		want string
	}{
		{`(?i)\d\d\s?(?:%|percent)\s(?:for|to)\syour?`, `[["you" "your"] ["%" "percent"]]`},
		{`(?:out|abuse)[a-z]{0,9}\@[a-z]+`, `[["out" "abuse"] ["@"]]`},
		{`(?:ab|%)\s*foo`, `[["foo"]]`}, // ab is short without a rare byte
		{`\$\d+`, `[]`},                 // the first set needs long strings
		{`(?:a\$|b%)+\s*zzz`, `[["zzz"] ["a$" "b%"]]`},
	} {
		tree, err := syntax.Parse(c.pat, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprintf("%q", factorsOf(tree.Simplify())); s != c.want {
			t.Errorf("factorsOf(%q) = %s, want %s", c.pat, s, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(9, 10))
	words := []string{"foo", "bar", "%", "@", "a@", "ab", " ", "x"}
	word := func() string { return words[rng.IntN(len(words))] }
	some := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(word())
		}
		return b.String()
	}
	q := regexp.QuoteMeta
	checked, rejected := 0, 0
	for range 400 {
		// The regex and a text it matches.
		a, b, c, d := some(1+rng.IntN(2)), some(1), some(1+rng.IntN(2)), some(1)
		var pat string
		var sample func() string
		switch rng.IntN(3) {
		case 0:
			pat = "(?:" + q(a) + `\s*|` + q(b) + `)\s*` + q(c) + q(d)
			sample = func() string { return []string{a, b}[rng.IntN(2)] + []string{"", " "}[rng.IntN(2)] + c + d }
		case 1:
			pat = q(a) + "(?:" + q(b) + ")+" + q(c) + ".*" + q(d)
			sample = func() string { return a + strings.Repeat(b, 1+rng.IntN(2)) + c + some(rng.IntN(3)) + d }
		default:
			pat = q(a) + "(?:" + q(b) + "|" + q(c) + ")?" + q(d)
			sample = func() string { return a + []string{"", b, c}[rng.IntN(3)] + d }
		}
		re := regexp.MustCompile(pat)
		tree, _ := syntax.Parse(pat, syntax.Perl)
		sets := factorsOf(tree.Simplify())
		if len(sets) < 2 {
			continue
		}
		for range 200 {
			text := some(rng.IntN(3)) + sample() + some(rng.IntN(3))
			if rng.IntN(2) == 0 {
				// A piece cut out: often a near miss.
				i := rng.IntN(len(text) + 1)
				j := i + rng.IntN(len(text)-i+1)
				text = text[:i] + text[j:]
			}
			ok := true
			for _, set := range sets {
				ok = ok && slices.ContainsFunc(set, func(l string) bool { return strings.Contains(text, l) })
			}
			if !ok {
				rejected++
			}
			if !re.MatchString(text) {
				continue
			}
			checked++
			if !ok {
				t.Fatalf("%q matches %q, which misses one of %q", pat, text, sets)
			}
		}
	}
	t.Logf("%d matching texts checked, %d texts rejected", checked, rejected)
	if checked < 1000 || rejected < 1000 {
		t.Errorf("%d matching texts checked, %d texts rejected", checked, rejected)
	}
}

// TestMaxRunes: the bound on a match's length, none where a part repeats
// without one.
func TestMaxRunes(t *testing.T) {
	for pat, want := range map[string]int{
		`abc`:              3,
		`\bab(?:cd|e)?\s$`: 5,
		`(?:ab){2,4}x`:     9,
		`a[^x]{0,80}b`:     82,
		`(?i)(?:foo|ba)r?`: 4,
		`ab+`:              -1,
		`a.*b`:             -1,
		`(?:ab){3,}`:       -1,
		`a\s*`:             -1,
		`x(?:)*y`:          2,
	} {
		tree, err := syntax.Parse(pat, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got := maxRunes(tree.Simplify()); got != want {
			t.Errorf("maxRunes(%q) = %d, want %d", pat, got, want)
		}
	}
}

// TestWindowRules: rules whose matches are short run only around their
// literals' occurrences in a line (prefilter.width), and hit exactly
// where their regex matches a line (random paragraphs of the words the
// rules need, some beyond ASCII).
func TestWindowRules(t *testing.T) {
	pats := map[string]string{
		// No prefixes: the windows bound the automata's scans.
		"W_GAP":   `\b(?:e?-?foo|bar)\s(?:x\s?y|zz)\b`,
		"W_PCT":   `[a-z]?(?:abc|de%)[a-z ]{0,6}q`,
		"W_FOLD":  `(?i)[a-z-]?foo.{0,5}bar\b`,
		"W_LATIN": `[^q]?foo[^x]{0,8}bar`,
		"W_END":   `[a-z]?(?:de%|abc)[ a-z]{0,3}$`,
	}
	var src strings.Builder
	for name, p := range pats {
		fmt.Fprintf(&src, "body %s /%s/\nscore %s 1\n", name, p, name)
	}
	e := compile(t, src.String(), Options{})
	for name := range pats {
		pos := slices.Index(e.kinds[KindBody], e.byName[name])
		for vi := range 2 {
			if pf := &e.pf[KindBody][vi]; pf.width == nil || pf.width[pos] == 0 {
				t.Fatalf("%s: no window (variant %d)", name, vi)
			}
			if v := e.rules[e.byName[name]].v[vi]; v.adfa != nil {
				t.Fatalf("%s: starts at prefixes (variant %d)", name, vi)
			}
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	words := []string{"foo", "bar", "FOO", "x", "y", "zz", "abc", "de%", "q", " ", " ", "\n", "\xe9", "\xe9\xe9\xe9", "ab", "-", "word", "bar zz", "foo x y",
		// As wide as W_LATIN's matches get: four letters, eight runes
		// (latin1 of their UTF-8), sixteen bytes.
		"foo\xe9\xe9\xe9\xe9bar"}
	hitsSeen := map[string]int{}
	for i := range 1500 {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(words[rng.IntN(len(words))])
		}
		body := b.String()
		m := FromRaw([]byte("Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + "\r\n"))
		c := &msgCtx{e: e, m: m, fields: map[string][]string{}, upper: -1}
		lines := c.bodyLines()
		h := hits(e.Check(m, Input{}))
		for name, p := range pats {
			re := regexp.MustCompile(p)
			// Perl's $ also matches before a line's final line break.
			want := slices.ContainsFunc(lines, func(l string) bool {
				return re.MatchString(l) || strings.HasSuffix(l, "\n") && re.MatchString(l[:len(l)-1])
			})
			if _, got := h[name]; got != want {
				t.Fatalf("message %d: %s hit %v, regexp %v on %q", i, name, got, want, lines)
			}
			if want {
				hitsSeen[name]++
			}
		}
	}
	for name := range pats {
		if hitsSeen[name] < 50 {
			t.Errorf("%s hit %d messages only", name, hitsSeen[name])
		}
	}
}
