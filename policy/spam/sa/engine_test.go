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
	"unicode/utf8"
)

func compile(t testing.TB, src string, opt Options) *Engine {
	t.Helper()
	rs := parse(t, src)
	if len(rs.Errors) > 0 {
		t.Fatalf("parse: %v", rs.Errors)
	}
	e, err := Compile(rs, opt)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func hits(r Result) map[string]Hit {
	m := map[string]Hit{}
	for _, h := range r.Hits {
		m[h.Rule] = h
	}
	return m
}

// wantHits fails the test unless every rule of want hit and none of not.
func wantHits(t *testing.T, name string, r Result, want, not []string) {
	t.Helper()
	h := hits(r)
	for _, w := range want {
		if _, ok := h[w]; !ok {
			t.Errorf("%s: %s did not hit", name, w)
		}
	}
	for _, n := range not {
		if _, ok := h[n]; ok {
			t.Errorf("%s: %s hit", name, n)
		}
	}
}

const sampleMsg = "Received: from mx.example.org (mx.example.org [192.0.2.7]) by in.example.net (Postfix) with ESMTP id ABC; Mon, 2 Dec 2002 10:00:00 +0000\r\n" +
	"From: \"Big Bank\" <alerts@bank.example>\r\n" +
	"To: bob@example.net\r\n" +
	"Subject: =?utf-8?q?Verify_your_acc=C3=B6unt?=\r\n" +
	"Date: Mon, 2 Dec 2002 04:30:00 +0000\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=b\r\n" +
	"\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease verify your password now.\r\nCLICK HERE: http://phish.example/login\r\n\r\nFree money free money.\r\n" +
	"--b\r\nContent-Type: text/html\r\n\r\n<html><body><p>Please <a href=\"http://phish.example/login\"><img src=x.gif width=10 height=10></a></p></body></html>\r\n--b--\r\n"

func TestEngineKinds(t *testing.T) {
	e := compile(t, `
header SUBJ_VERIFY   Subject =~ /verify your acc\xc3\xb6unt/i
header FROM_BANK     From:addr =~ /\@bank\.example$/
header FROM_NAME     From:name =~ /^Big Bank$/
header NO_XMAILER    X-Mailer !~ /./
header UNSET_X       X-Foo =~ /dflt/ [if-unset: dflt]
header HAS_DATE      exists:Date
header RDNS          X-Spam-Relays-Untrusted =~ /^\[ ip=192\.0\.2\.7 rdns=mx\.example\.org helo=mx\.example\.org /
body   PASSWORD      /verify your password/
body   PARA_ANCHOR   /^Free money/
body   NOT_PARA      /^CLICK HERE/
body   FREE_MONEY    /free money/i
tflags FREE_MONEY    multiple maxhits=5
rawbody RAW_HTML     /<img src=x\.gif/
uri    PHISH_URI     m{^https?://phish\.example/}
full   FULL_BOUNDARY /boundary=b/
mimeheader MIME_HTML Content-Type =~ /text\/html/
body   __SUB1        /password/
body   __SUB2        /nothing here/
meta   META_AND      __SUB1 && !__SUB2
meta   META_ARITH    (__SUB1 + FREE_MONEY) >= 3
body   NEVER         /not in this message/
score  NEVER         5
body   ZERO          /password/
score  ZERO          0
`, Options{})
	r := e.Check(FromRaw([]byte(sampleMsg)), Input{})
	h := hits(r)
	for _, name := range []string{"SUBJ_VERIFY", "FROM_BANK", "FROM_NAME", "NO_XMAILER", "UNSET_X", "HAS_DATE", "RDNS",
		"PASSWORD", "PARA_ANCHOR", "FREE_MONEY", "RAW_HTML", "PHISH_URI", "FULL_BOUNDARY", "MIME_HTML", "META_AND", "META_ARITH"} {
		if _, ok := h[name]; !ok {
			t.Errorf("%s did not hit", name)
		}
	}
	// NOT_PARA: body rules see paragraphs, lines joined by spaces.
	for _, name := range []string{"NEVER", "ZERO", "__SUB1", "NOT_PARA"} {
		if _, ok := h[name]; ok {
			t.Errorf("%s reported", name)
		}
	}
	if h["FREE_MONEY"].Count != 2 {
		t.Errorf("FREE_MONEY count %d, want 2", h["FREE_MONEY"].Count)
	}
	if r.Score != float64(len(r.Hits)) {
		t.Errorf("score %v with %d hits of default score 1", r.Score, len(r.Hits))
	}
	if h["PHISH_URI"].Signal() != "sa-PHISH_URI" {
		t.Errorf("signal %q", h["PHISH_URI"].Signal())
	}
}

func TestScoreSetsAndOverrides(t *testing.T) {
	src := "body A /password/\nscore A 1 2 3 4\nbody B /password/\nscore B 1\n"
	for _, tc := range []struct {
		opt  Options
		want float64
	}{
		{Options{}, 1 + 1},
		{Options{Net: true}, 2 + 1},
		{Options{Bayes: true}, 3 + 1},
		{Options{Bayes: true, Net: true}, 4 + 1},
		{Options{Overrides: map[string]float64{"sa-A": 0.5}}, 0.5 + 1},
		{Options{Overrides: map[string]float64{"B": 0}}, 1},
	} {
		r := compile(t, src, tc.opt).Check(FromRaw([]byte(sampleMsg)), Input{})
		if r.Score != tc.want {
			t.Errorf("%+v: score %v, want %v", tc.opt, r.Score, tc.want)
		}
	}
}

// TestScoreNoBayes: each hit carries its score without Bayes too (set 0
// or 1), and a rule scored only without Bayes runs and is reported.
func TestScoreNoBayes(t *testing.T) {
	src := "body A /password/\nscore A 1 2 3 4\nbody B /password/\nscore B 2 2 0 0\nbody C /password/\nscore C 0 0 0 0\n"
	for _, tc := range []struct {
		opt    Options
		a, aNB float64
		b, bNB float64
	}{
		{Options{Bayes: true}, 3, 1, 0, 2},
		{Options{Bayes: true, Net: true}, 4, 2, 0, 2},
		{Options{}, 1, 1, 2, 2},
		{Options{Bayes: true, Overrides: map[string]float64{"A": 0.5}}, 0.5, 0.5, 0, 2},
	} {
		r := compile(t, src, tc.opt).Check(FromRaw([]byte(sampleMsg)), Input{})
		h := hits(r)
		if a := h["A"]; a.Score != tc.a || a.ScoreNoBayes != tc.aNB {
			t.Errorf("%+v: A scores %v / %v without Bayes, want %v / %v", tc.opt, a.Score, a.ScoreNoBayes, tc.a, tc.aNB)
		}
		if b, ok := h["B"]; !ok || b.Score != tc.b || b.ScoreNoBayes != tc.bNB {
			t.Errorf("%+v: B hit %v, scores %v / %v without Bayes, want %v / %v", tc.opt, ok, b.Score, b.ScoreNoBayes, tc.b, tc.bNB)
		}
		if _, ok := h["C"]; ok {
			t.Errorf("%+v: C, scored 0 in every set, was reported", tc.opt)
		}
	}
}

func TestMetaSkippedWhereAbsenceCounts(t *testing.T) {
	e := compile(t, `
header __UNIMPL eval:no_such_eval()
body   __PW     /password/
meta   POS      __PW && __UNIMPL
meta   NEG      __PW && !__UNIMPL
meta   UNDEF    __PW && !NOT_DEFINED_ANYWHERE
`, Options{})
	st := e.Stats()
	skipped := map[string]string{}
	for _, s := range st.Skipped {
		skipped[s.Rule] = s.Reason
	}
	if _, ok := skipped["NEG"]; !ok {
		t.Error("NEG should be skipped: it would fire where SpamAssassin's eval says 1")
	}
	if _, ok := skipped["POS"]; ok {
		t.Error("POS can only fire less: it runs")
	}
	if st.MissingEvals["no_such_eval"].Rules != 1 {
		t.Errorf("missing evals %v", st.MissingEvals)
	}
	h := hits(e.Check(FromRaw([]byte(sampleMsg)), Input{}))
	if _, ok := h["UNDEF"]; !ok {
		t.Error("an undefined name reads 0, as in SpamAssassin")
	}
}

func TestBacktrackingRules(t *testing.T) {
	src := "body BT_LOOK /(?!pass)p[a@]ssword/i\nbody BT_BACKREF /(e)\\1/\nbody BT_NEG /(?<!your )password/\n"
	e := compile(t, src, Options{})
	h := hits(e.Check(FromRaw([]byte(sampleMsg)), Input{}))
	if _, ok := h["BT_LOOK"]; ok {
		t.Error("BT_LOOK: lookahead excludes the plain word")
	}
	if _, ok := h["BT_BACKREF"]; !ok {
		t.Error("BT_BACKREF: 'free' has a double e")
	}
	if _, ok := h["BT_NEG"]; ok {
		t.Error("BT_NEG: the only password follows 'your '")
	}
	if e.Stats().Backtracking != 3 {
		t.Errorf("backtracking %d", e.Stats().Backtracking)
	}
	e = compile(t, src+"body PLAIN /password/\n", Options{NoBacktrack: true})
	if len(e.Stats().Skipped) != 3 {
		t.Errorf("NoBacktrack: skipped %v", e.Stats().Skipped)
	}
}

func TestEvals(t *testing.T) {
	e := compile(t, `
header DATE_PAST      eval:check_for_shifted_date('-6', '-3')
header DATE_FUTURE    eval:check_for_shifted_date('3', '6')
header MISSING_TO     eval:check_for_missing_to_header()
header TWO_SUBJECTS   eval:check_header_count_range('Subject','2','999')
header CAPS           eval:subject_is_all_caps()
body   HTML           eval:html_test('html')
body   IMG_ONLY       eval:html_image_only('0', '400')
body   TAG_A          eval:html_tag_exists('a')
body   MIME_HTML      eval:check_for_mime_html()
body   HTML_ONLY      eval:check_for_mime_html_only()
body   UPPER          eval:check_for_uppercase('50', '100')
header BAYES_99       eval:check_bayes('0.99', '1.00')
header BAYES_00       eval:check_bayes('0', '0.01')
header NO_RELAYS      eval:check_no_relays()
header ALL_TRUSTED    eval:check_all_trusted()
`, Options{Bayes: true})
	h := hits(e.Check(FromRaw([]byte(sampleMsg)), Input{Bayes: 0.995, HasBayes: true}))
	for _, want := range []string{"DATE_PAST", "HTML", "IMG_ONLY", "TAG_A", "MIME_HTML", "BAYES_99"} {
		if _, ok := h[want]; !ok {
			t.Errorf("%s did not hit", want)
		}
	}
	for _, not := range []string{"DATE_FUTURE", "MISSING_TO", "TWO_SUBJECTS", "CAPS", "HTML_ONLY", "UPPER", "BAYES_00", "NO_RELAYS", "ALL_TRUSTED"} {
		if _, ok := h[not]; ok {
			t.Errorf("%s hit", not)
		}
	}
	caps := "Received: from a (a [10.0.0.1]) by b; Mon, 2 Dec 2002 10:00:00 +0000\r\nSubject: FREE MONEY FOR YOU\r\nSubject: again\r\n\r\n" + strings.Repeat("THIS IS ALL SHOUTING TEXT ", 20) + "\r\n"
	h = hits(e.Check(FromRaw([]byte(caps)), Input{}))
	for _, want := range []string{"MISSING_TO", "TWO_SUBJECTS", "UPPER", "ALL_TRUSTED"} {
		if _, ok := h[want]; !ok {
			t.Errorf("caps message: %s did not hit", want)
		}
	}
	if _, ok := h["BAYES_99"]; ok {
		t.Error("BAYES_99 without a Bayes probability")
	}
}

func TestBudget(t *testing.T) {
	e := compile(t, "body A /password/\nbody B /(?:a|b)+c/\n", Options{Budget: time.Nanosecond})
	r := e.Check(FromRaw([]byte(sampleMsg)), Input{})
	if !r.Truncated {
		t.Error("a spent budget is reported")
	}
}

func TestHostileMessages(t *testing.T) {
	e := compile(t, "body A /a/\nheader B ALL =~ /x/\nuri C /http/\nfull D /\\x00/\nmimeheader E Content-Type =~ /y/\n", Options{})
	for _, raw := range []string{"", "\r\n", "From ", "Subject: \xff\xfe\r\n\r\n\xff", "Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
		"Content-Type: text/html\r\n\r\n<a href=\"" + strings.Repeat("<", 10000)} {
		e.Check(FromRaw([]byte(raw)), Input{})
	}
}

// TestConcurrentChecks: one engine serves many messages at once (the
// automata are built lazily under a lock and read without one).
func TestConcurrentChecks(t *testing.T) {
	e := compile(t, `
body   A /(?:^|\s)[pP][aA@4][yY]\s+me\b/
body   B /verify your (?:password|account)/i
uri    C /phish\.example/
header D Subject =~ /\bacc\S+unt\b/i
`, Options{})
	m := FromRaw([]byte(sampleMsg))
	want := e.Check(m, Input{})
	done := make(chan Result, 8)
	for range 8 {
		go func() { done <- e.Check(FromRaw([]byte(sampleMsg)), Input{}) }()
	}
	for range 8 {
		if got := <-done; len(got.Hits) != len(want.Hits) || got.Score != want.Score {
			t.Errorf("concurrent result %+v, want %+v", got, want)
		}
	}
}

// TestRelaxGroupCounts: only counted groups past the limit are relaxed,
// and the result matches every text the pattern does.
func TestRelaxGroupCounts(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`(?:a<[^>]{1,10}>){0,99}b`, `(?:a<[^>]{1,10}>){0,}b`},
		{`(x){40}`, `(x){30,}`},
		{`(x){2,20}y{0,99}`, `(x){2,20}y{0,99}`},
		{`\){0,99}[)]{0,99}`, `\){0,99}[)]{0,99}`},
	} {
		if got := relaxGroupCounts(c.in, 30); got != c.want {
			t.Errorf("relaxGroupCounts(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	orig := regexp.MustCompile(`^(?:[^<]{0,5}<[^>]{1,4}>){0,40}z$`)
	relaxed := regexp.MustCompile(relaxGroupCounts(orig.String(), 30))
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var b strings.Builder
		for range rnd.IntN(60) {
			b.WriteString([]string{"<a>", "x", "<bb>", "<", ">", "yy"}[rnd.IntN(6)])
		}
		b.WriteString("z")
		if s := b.String(); orig.MatchString(s) && !relaxed.MatchString(s) {
			t.Fatalf("relaxed misses %q", s)
		}
	}
}

func TestLowerName(t *testing.T) {
	names := []string{"", "from", "From", "X-Spam-Flag", "MESSAGE-ID", "x-ünï", "Ünï", "K\u212a"}
	for range 2 { // the second round reads the cache
		for _, s := range names {
			if got := lowerName(s); got != strings.ToLower(s) {
				t.Errorf("lowerName(%q) = %q", s, got)
			}
		}
	}
	// Concurrent readers and writers, past the bound: still right.
	inGoroutines(t, 4, func(g int) string {
		for i := range maxLowerNames + 100 {
			s := fmt.Sprintf("X-Name-%d-%d", g, i)
			if got := lowerName(s); got != strings.ToLower(s) {
				return fmt.Sprintf("lowerName(%q) = %q", s, got)
			}
		}
		return ""
	})
	if m := lowerNames.Load(); m == nil {
		t.Error("no name cached")
	} else if len(*m) > maxLowerNames {
		t.Errorf("cache holds %d names, bound %d", len(*m), maxLowerNames)
	}
}

// TestMetaProgAgrees: the metas' flat code computes what their trees
// do, on random expressions and counts.
func TestMetaProgAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	ops := []metaOp{metaNot, metaNeg, metaAnd, metaOr, metaAdd, metaSub, metaMul, metaDiv,
		metaEq, metaNe, metaLt, metaLe, metaGt, metaGe}
	var gen func(depth int) *metaExpr
	gen = func(depth int) *metaExpr {
		if depth == 0 || rng.IntN(4) == 0 {
			if rng.IntN(3) == 0 {
				return &metaExpr{op: metaNum, num: float64(rng.IntN(5) - 1)}
			}
			return &metaExpr{op: metaRule, rule: int32(rng.IntN(8))}
		}
		m := &metaExpr{op: ops[rng.IntN(len(ops))], l: gen(depth - 1)}
		if m.op != metaNot && m.op != metaNeg {
			m.r = gen(depth - 1)
		}
		return m
	}
	var rules []*rule
	var metas []int
	for range 3000 {
		metas = append(metas, len(rules))
		rules = append(rules, &rule{mexpr: gen(6)})
	}
	p := newMetaProg(rules, metas)
	stack := make([]float64, p.depth)
	counts := make([]int32, 8)
	nonzero := 0
	for range 20 {
		for i := range counts {
			counts[i] = int32(rng.IntN(3))
		}
		for k, i := range metas {
			want := rules[i].mexpr.eval(counts)
			if got := p.eval(k, counts, stack); got != want {
				t.Fatalf("meta %d: %v, tree %v", k, got, want)
			}
			nonzero += b2i(want != 0)
		}
	}
	if nonzero == 0 {
		t.Error("every meta is 0")
	}
}

func TestCountWeight(t *testing.T) {
	for _, c := range []struct {
		re   string
		want int
	}{{`abc`, 0}, {`a{3}`, 3}, {`\b4[0-9AB][1-9A-HJ-NP-Za-km-z]{93,104}\b`, 104}, {`(?:x{2,5}|[A-Z]{16,})y*`, 16}, {`(?:a{1,3}){2}`, 3}} {
		tree, err := syntax.Parse(c.re, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got := countWeight(tree); got != c.want {
			t.Errorf("countWeight(%q) = %d, want %d", c.re, got, c.want)
		}
	}
}

// TestCutPairNoRegexp: a long paragraph of non-ASCII text is cut into
// chunks between byte-runes, never inside a latin1 pair (an octet of the
// message, which SpamAssassin never splits); the rules' automata answer
// for every chunk, so no rule compiles its regexp, and the hits are the
// regexp's. (Halves of a pair, were a text to hold them, read as U+FFFD:
// TestDFABadRune.)
func TestCutPairNoRegexp(t *testing.T) {
	e := compile(t, `
body CUT_MONEY /m(?:o|\xc3\xb6)ney[^\.]{1,30}now/
body CUT_END /\xc3\xa9e\s*$/
body CUT_NONE /m\xc3\xb6ney\s+later/
`, Options{})
	// One paragraph of é (4 bytes each once latin1 writes the octets of
	// their UTF-8) after an x: a cut at maxChunk bytes would fall inside
	// a pair.
	body := "x" + strings.Repeat("\u00e9", maxChunk) + " m\u00f6ney for you now \u00e9e"
	raw := []byte("From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n")
	lines := (&msgCtx{m: FromRaw(raw)}).bodyLines()
	if len(lines) < 4 || !strings.Contains(lines[len(lines)-1], "now") {
		t.Fatalf("%d lines: the paragraph was not cut", len(lines))
	}
	for i, l := range lines {
		// Lines are cut at maxChunk octets of the message
		// (split_into_array_of_short_lines), each a rune here.
		if !utf8.ValidString(l) || utf8.RuneCountInString(l) > maxChunk {
			t.Fatalf("chunk %d (%d bytes) %.20q...%q: cut inside a byte-rune", i, len(l), l, l[max(0, len(l)-4):])
		}
	}
	wantHits(t, "cut pair", e.Check(FromRaw(raw), Input{}), []string{"CUT_MONEY", "CUT_END"}, []string{"CUT_NONE"})
	for _, r := range e.rules {
		if r == nil {
			continue
		}
		for vi := range 2 {
			if v := &r.v[vi]; v.re != nil && v.re.re.Load() != nil {
				t.Errorf("%s (variant %d) compiled its regexp", r.name, vi)
			}
		}
	}
}

// TestHeaderSlotsFoldCase: rules on one field written in two cases share
// a slot and still each answer; a pseudo-header keeps its case (ALL is
// the whole header, "all" a field of that name).
func TestHeaderSlotsFoldCase(t *testing.T) {
	e := compile(t, `
header A1 Message-ID =~ /abc/
header A2 Message-Id =~ /xyz/
header A3 MESSAGE-ID:raw =~ /abc/
header B1 ALL =~ /Subject: hi/
header B2 all =~ /Subject: hi/
score A1 1
score A2 1
score A3 1
score B1 1
score B2 1
`, Options{})
	if len(e.hslots) != 4 {
		var names []string
		for _, s := range e.hslots {
			names = append(names, s.name+":"+s.mod)
		}
		t.Errorf("slots %v, want 4 (message-id, message-id:raw, ALL, all)", names)
	}
	r := e.Check(FromRaw([]byte("Message-Id: <abc@q>\r\nSubject: hi\r\n\r\nbody\r\n")), Input{})
	wantHits(t, "fold", r, []string{"A1", "A3", "B1"}, []string{"A2", "B2"})
	r = e.Check(FromRaw([]byte("message-id: <xyz@q>\r\nALL: Subject: hi\r\n\r\nbody\r\n")), Input{})
	wantHits(t, "fold", r, []string{"A2", "B1", "B2"}, []string{"A1", "A3"})
}

// TestBodyLineBreakOneSpace: SpamAssassin's body text turns each run of
// white space, a line break with the indentation around it included, into
// one space (Message.pm s/\s+/ /g), in plain text and rendered HTML alike;
// a blank line ends a paragraph, whose line keeps its line break, and the
// CRLF of a CRLF message is a line break like LF.
func TestBodyLineBreakOneSpace(t *testing.T) {
	for raw, want := range map[string][]string{
		"Subject: hi\r\n\r\nPlease Click   \r\n      here for more\r\n\r\nnext  paragraph\r\n":                                                          {"\n", "Please Click here for more\n", "next paragraph "},
		"Subject: hi\r\nContent-Type: text/html\r\n\r\n<p><a href=\"http://x.example/\">Click\r\n      here for more</a></p><p>next  paragraph</p>\r\n": {"\n", "\n", "Click here for more\n", "next paragraph\n"},
	} {
		// (No header fields in this context: the subject line is "\n".)
		lines := (&msgCtx{m: FromRaw([]byte(raw))}).bodyLines()
		if !slices.Equal(lines, want) {
			t.Errorf("%q, want %q", lines, want)
		}
	}
}

// TestHTMLLengthIsSource: SpamAssassin 4's HTML "length" (html_image_only,
// html_range and html_eval 'length') is the size of each HTML part's
// source, not of its rendered text; html_image_ratio reads the rendered
// text's non-space characters per pixel of image area, per part.
func TestHTMLLengthIsSource(t *testing.T) {
	e := compile(t, `
body IMG_ONLY_08  eval:html_image_only('400', '800')
body IMG_ONLY_04  eval:html_image_only('0', '400')
body LEN_0_1024   eval:html_range('length', '0', '1024')
body LEN_GT_600   eval:html_eval('length', '> 600')
body RATIO        eval:html_image_ratio('0.002', '0.004')
`, Options{})
	// ~500 characters of markup around a little text and a 100x100
	// image: 16 non-space characters / 10000 pixels = 0.0016, below the
	// range; 35 of them (0.0035) are in it.
	pad := strings.Repeat(`<span style="x"></span>`, 18)
	msg := func(text string) []byte {
		return []byte("Subject: hi\r\nContent-Type: text/html\r\n\r\n<html><body>" + pad +
			`<img src="http://x.example/a.gif" width="100" height="100">` + text + "</body></html>\r\n")
	}
	wantHits(t, "short text", e.Check(FromRaw(msg("Buy now, best price")), Input{}),
		[]string{"IMG_ONLY_08", "LEN_0_1024"}, []string{"IMG_ONLY_04", "LEN_GT_600", "RATIO"})
	wantHits(t, "35 letters", e.Check(FromRaw(msg(strings.Repeat("abcde ", 7))), Input{}),
		[]string{"IMG_ONLY_08", "RATIO"}, []string{"IMG_ONLY_04", "LEN_GT_600"})
	wantHits(t, "more markup", e.Check(FromRaw(msg(pad+"Buy now")), Input{}),
		[]string{"LEN_GT_600", "LEN_0_1024"}, []string{"IMG_ONLY_04", "IMG_ONLY_08"})
}

// TestHTMLTagBalancePerPart: html_tag_balance reads each HTML part's open
// count, which an extra end tag does not take below 0 (HTML.pm's inside).
func TestHTMLTagBalancePerPart(t *testing.T) {
	e := compile(t, "body BAL_BODY eval:html_tag_balance('body', '!= 0')\n", Options{})
	html := func(parts ...string) []byte {
		s := "Subject: hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
		for _, p := range parts {
			s += "--b\r\nContent-Type: text/html\r\n\r\n" + p + "\r\n"
		}
		return []byte(s + "--b--\r\n")
	}
	for _, c := range []struct {
		name string
		raw  []byte
		hit  bool
	}{
		{"balanced", html("<html><body>hi</body></html>"), false},
		{"extra end tag", html("<html><body>hi</body></body></html>"), false},
		{"one part opens, another closes", html("<html><body>hi</html>", "<html>hi</body></html>"), true},
		{"left open", html("<html><body>hi</html>"), true},
	} {
		_, hit := hits(e.Check(FromRaw(c.raw), Input{}))["BAL_BODY"]
		if hit != c.hit {
			t.Errorf("%s: hit %v, want %v", c.name, hit, c.hit)
		}
	}
}

// TestPlainTextAddressIsMailtoURI: a bare address in plain text is a
// mailto: URI for the uri rules, as SpamAssassin's text URI parser makes
// it (KHOP_UNSUB_EMAIL's !__UNSUB_LINK sees "forteana-unsubscribe@...").
func TestPlainTextAddressIsMailtoURI(t *testing.T) {
	e := compile(t, "uri UNSUB_LINK /\\bunsubscri/i\nuri MAILTO /^mailto:list-unsubscribe\\@example\\.org$/\n", Options{})
	raw := "Subject: hi\r\n\r\nTo leave, send an email to:\r\nlist-unsubscribe@example.org\r\n"
	wantHits(t, "bare address", e.Check(FromRaw([]byte(raw)), Input{}), []string{"UNSUB_LINK", "MAILTO"}, nil)
	raw = "Subject: hi\r\n\r\nWrite to mailto:list-unsubscribe@example.org now\r\n"
	if u := (&msgCtx{m: FromRaw([]byte(raw))}).uriLines(); len(u) != 1 {
		t.Errorf("mailto: link counted twice: %q", u)
	}
}

// TestAbsentFields: a field's exists rule and header rules read it in any
// case of its name; on a message without it, a header rule reads "" (or
// its if-unset text) and a negated one hits.
func TestAbsentFields(t *testing.T) {
	src := `header E_THERE exists:x-MAILER
header E_GONE exists:X-Absent
header T_THERE X-Mailer =~ /mutt/i
header T_NEG X-MAILER !~ /outlook/i
header G_NEG X-Absent !~ /./
header G_EMPTY X-Absent =~ /^$/
header G_UNSET X-Absent =~ /^dflt$/ [if-unset: dflt]
header G_ADDR X-Absent:addr =~ /@/
header G_ADDR_NEG X-Absent:addr !~ /@/
`
	for _, name := range []string{"X-Mailer", "x-mailer", "X-MAILER"} {
		e := compile(t, src, Options{})
		r := e.Check(FromRaw([]byte(name+": Mutt/2.0\nSubject: x\n\nbody\n")), Input{})
		if got, want := hitNames(r), "E_THERE,G_ADDR_NEG,G_EMPTY,G_NEG,G_UNSET,T_NEG,T_THERE"; got != want {
			t.Errorf("%s: hits %s, want %s", name, got, want)
		}
	}
}
