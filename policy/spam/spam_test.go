package spam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/dns/dnstest"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/store"
)

func msg(t testing.TB, raw string) *message.Message {
	t.Helper()
	h, body, err := message.ReadMessage(strings.NewReader(raw), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return &message.Message{Header: h, Body: message.BytesBody(body), Rcpts: []string{"rcpt@example.org"}}
}

const plain = "Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <1@example.com>\nFrom: Alice <alice@example.com>\nTo: bob@example.org\nSubject: lunch\n\nShall we meet at noon?\n"

func signals(r policy.Result) map[string]float64 {
	m := map[string]float64{}
	for _, s := range r.Signals {
		m[s.Name] = s.Score
	}
	return m
}

func newCheck(t testing.TB, mod func(*Config, *Options)) *Check {
	t.Helper()
	cfg := Default()
	// These tests are about the signals and the hand-set weights; the
	// fitted weights have their own (weights_test.go).
	cfg.Weights = WeightsNone
	o := Options{Tokens: bayes.NewMemory()}
	if mod != nil {
		mod(cfg, &o)
	}
	c, err := New(cfg, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHeuristics(t *testing.T) {
	html := func(body string) string {
		return "Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <2@example.com>\nFrom: a@example.com\nTo: b@example.org\nSubject: hi\nMIME-Version: 1.0\nContent-Type: text/html\n\n" + body
	}
	cases := []struct {
		name string
		raw  string
		want []string // signals that must fire
		not  []string // signals that must not
	}{
		{"clean", plain, nil, []string{"missing-date", "missing-message-id", "html-only", "subject-shouting", "from-name-address", "bad-date"}},
		{"no date, no id", "From: a@example.com\nTo: b@example.org\nSubject: x\n\nhello\n", []string{"missing-date", "missing-message-id"}, nil},
		{"bad date and id", "Date: yesterday-ish\nMessage-ID: nonsense\nFrom: a@example.com\nSubject: x\n\nhello\n", []string{"bad-date", "bad-message-id"}, []string{"missing-date"}},
		{"from name address", strings.Replace(plain, "From: Alice <alice@example.com>", `From: "service@paypal.com" <x@evil.example>`, 1), []string{"from-name-address"}, nil},
		{"from name same domain", strings.Replace(plain, "From: Alice <alice@example.com>", `From: "alice@example.com" <alice@example.com>`, 1), nil, []string{"from-name-address"}},
		{"shouting", strings.Replace(plain, "Subject: lunch", "Subject: FREE MONEY FOR YOU NOW!!!", 1), []string{"subject-shouting", "subject-exclaim"}, nil},
		{"encoded ascii subject", strings.Replace(plain, "Subject: lunch", "Subject: =?utf-8?B?RnJlZSBtb25leQ==?=", 1), []string{"subject-encoded-ascii"}, nil},
		{"html only", html("<html><body><p>Hello there friend</p></body></html>"), []string{"html-only"}, []string{"hidden-text", "link-mismatch"}},
		{"hidden text", html(`<p>Buy</p><div style="display:none">ham words here</div>`), []string{"hidden-text"}, nil},
		{"link mismatch", html(`<a href="http://evil.example/login">https://www.paypal.com/</a>`), []string{"link-mismatch"}, nil},
		{"link same domain", html(`<a href="http://www.paypal.com/x">https://paypal.com/</a>`), nil, []string{"link-mismatch"}},
		{"shortener and ip", html(`<a href="http://bit.ly/abc">here</a> <a href="http://192.0.2.7/x">there</a>`), []string{"url-shortener", "url-ip"}, nil},
		{"userinfo", strings.Replace(plain, "noon?", "noon? http://www.bank.example@evil.example/login", 1), []string{"url-userinfo"}, nil},
		{"forged outlook", strings.Replace(plain, "Subject: lunch", "Subject: lunch\nX-Mailer: Microsoft Outlook Express 6.00.2600.0000", 1), []string{"forged-mailer"}, nil},
		{"real outlook", strings.Replace(plain, "Subject: lunch", "Subject: lunch\nX-Mailer: Microsoft Outlook Express 6.00.2600.0000\nX-MimeOLE: Produced By Microsoft MimeOLE V6.00.2600.0000", 1), nil, []string{"forged-mailer"}},
		{"base64 text", strings.Replace(plain, "Subject: lunch\n\nShall we meet at noon?\n", "Subject: lunch\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nU2hhbGwgd2UgbWVldCBhdCBub29uPw==\n", 1), []string{"base64-text"}, nil},
		{"image only", "Date: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <3@x.example>\nFrom: a@example.com\nSubject: hi\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee\n--b\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAACw=\n--b--\n", []string{"image-only"}, nil},
	}
	c := newCheck(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.Check(context.Background(), msg(t, tc.raw), nil)
			if err != nil {
				t.Fatal(err)
			}
			s := signals(r)
			for _, w := range tc.want {
				if _, ok := s[w]; !ok {
					t.Errorf("signal %s missing; got %v", w, s)
				}
			}
			for _, w := range tc.not {
				if _, ok := s[w]; ok {
					t.Errorf("signal %s fired; got %v", w, s)
				}
			}
		})
	}
}

func TestScoreReasonsStatus(t *testing.T) {
	c := newCheck(t, func(cfg *Config, o *Options) {
		cfg.Heuristics["missing-date"] = 6
		cfg.Heuristics["missing-message-id"] = 5
	})
	r, _ := c.Check(context.Background(), msg(t, "From: a@example.com\nTo: b@example.org\nSubject: x\n\nhello\n"), nil)
	if r.Status != StatusSpam || r.Score != 11 {
		t.Fatalf("status %s score %v, want spam 11", r.Status, r.Score)
	}
	if len(r.Signals) != 2 || r.Signals[0].Name != "missing-date" {
		t.Errorf("signals not sorted by contribution: %v", r.Signals)
	}
	if strings.Join(r.Reasons, ",") != "spam-missing-date,spam-missing-message-id" {
		t.Errorf("reasons %v", r.Reasons)
	}
	r, _ = c.Check(context.Background(), msg(t, plain), nil)
	if r.Status != StatusHam || len(r.Reasons) != 0 {
		t.Errorf("clean message: %s %v", r.Status, r.Reasons)
	}
	// A weight of 0 turns a heuristic off.
	c = newCheck(t, func(cfg *Config, o *Options) { cfg.Heuristics["missing-date"] = 0 })
	r, _ = c.Check(context.Background(), msg(t, "From: a@example.com\nSubject: x\n\nhello\n"), nil)
	if _, ok := signals(r)["missing-date"]; ok {
		t.Error("disabled heuristic fired")
	}
}

func TestAuthSignals(t *testing.T) {
	c := newCheck(t, func(cfg *Config, o *Options) { cfg.Auth["spf-fail"], cfg.Auth["dmarc-fail"] = 2, 4 })
	m := msg(t, plain)
	prior := policy.Results{
		"spf":   {Status: "fail"},
		"dkim":  {Status: "none"},
		"dmarc": {Status: "fail"},
	}
	r, _ := c.Check(context.Background(), m, prior)
	s := signals(r)
	if s["auth-spf-fail"] != 2 || s["auth-dmarc-fail"] != 4 || s["auth-unauthenticated"] != 0.5 {
		t.Errorf("signals %v", s)
	}
	if _, ok := s["auth-dkim-none"]; ok {
		t.Error("zero-weight status became a signal")
	}
	prior["dkim"] = policy.Result{Status: "pass"}
	r, _ = c.Check(context.Background(), m, prior)
	if _, ok := signals(r)["auth-unauthenticated"]; ok {
		t.Error("unauthenticated despite dkim=pass")
	}
	// Without any auth check, no auth signal at all.
	r, _ = c.Check(context.Background(), m, nil)
	for n := range signals(r) {
		if strings.HasPrefix(n, "auth-") {
			t.Errorf("auth signal %s without auth checks", n)
		}
	}
}

// trained returns a check whose Bayes learned n spam about pills and n ham
// about meetings; every spam also carries an X-Spam-Flag: YES field.
func trained(t testing.TB, n int) *Check {
	t.Helper()
	c := newCheck(t, func(cfg *Config, o *Options) { cfg.Bayes.MinSpam, cfg.Bayes.MinHam = 20, 20 })
	ts := c.TokenStore()
	for i := 0; i < n; i++ {
		s := msg(t, fmt.Sprintf("From: shop%d@pills.example\nX-Spam-Flag: YES\nSubject: cheap viagra pills %d\n\nbuy cheap viagra pills online pharmacy discount %d\n", i, i, i))
		h := msg(t, fmt.Sprintf("From: colleague%d@example.com\nSubject: meeting notes %d\n\nthe project meeting agenda minutes tomorrow %d\n", i, i, i))
		for _, x := range []struct {
			m *message.Message
			c bayes.Class
		}{{s, bayes.ClassSpam}, {h, bayes.ClassHam}} {
			if _, err := bayes.Learn(context.Background(), ts, MessageID(x.m), Tokens(x.m, c.Ignore()), x.c, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	return c
}

func TestBayes(t *testing.T) {
	c := trained(t, 10)
	r, _ := c.Check(context.Background(), msg(t, plain), nil)
	if !strings.Contains(r.Detail, "bayes not ready (10 spam, 10 ham learned)") {
		t.Errorf("detail %q", r.Detail)
	}
	for n := range signals(r) {
		if strings.HasPrefix(n, "bayes") {
			t.Errorf("bayes signal %s before min learned", n)
		}
	}
	c = trained(t, 30)
	r, _ = c.Check(context.Background(), msg(t, "From: x@y.example\nSubject: discount pills\n\ncheap viagra online pharmacy\n"), nil)
	if s := signals(r); s["bayes-999"] != 11 {
		t.Errorf("spam: %v %s", s, r.Detail)
	}
	r, _ = c.Check(context.Background(), msg(t, "From: x@y.example\nSubject: meeting\n\nagenda for the project meeting tomorrow\n"), nil)
	if s := signals(r); s["bayes-00"] != -4 {
		t.Errorf("ham: %v %s", s, r.Detail)
	}
}

func TestSpamHeadersAreNoEvidence(t *testing.T) {
	m := msg(t, "From: a@example.com\nX-Spam-Flag: YES\nX-Spam-Status: Yes, score=99\nX-Mailwarden-Spam: yes\nX-Custom-Verdict: spam\nSubject: hello\n\nhi\n")
	cfg := Default()
	cfg.IgnoreHeaders = append(cfg.IgnoreHeaders, "x-custom-*")
	c, err := New(&Config{}, nil, Options{})
	_ = c
	if err == nil {
		t.Fatal("empty config (min_spam 0) validated")
	}
	c, err = New(cfg, nil, Options{Tokens: bayes.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range Tokens(m, c.Ignore()) {
		if strings.Contains(tok, "spam") || strings.Contains(tok, "verdict") || strings.Contains(tok, "score") {
			t.Errorf("token %q comes from a spam-status field", tok)
		}
	}
	// Bayes trained with X-Spam-Flag on every spam: a ham message with
	// that field must not turn spammy.
	tc := trained(t, 30)
	r, _ := tc.Check(context.Background(), msg(t, "From: x@y.example\nX-Spam-Flag: YES\nSubject: meeting\n\nagenda for the project meeting tomorrow\n"), nil)
	if s := signals(r); s["bayes-00"] != -4 {
		t.Errorf("X-Spam-Flag moved the verdict: %v %s", s, r.Detail)
	}
}

func TestURIRules(t *testing.T) {
	c := newCheck(t, func(cfg *Config, o *Options) {
		cfg.URIRules = []URIRule{{Name: "pharma", Pattern: `(?i)pharma`, Score: 3}}
	})
	r, _ := c.Check(context.Background(), msg(t, strings.Replace(plain, "noon?", "noon? http://www.PHARMA.example/buy and http://pharma2.example/", 1)), nil)
	if signals(r)["uri-pharma"] != 3 {
		t.Errorf("signals %v", r.Signals)
	}
	if r.Score < 3 || r.Score > 3.5 {
		t.Errorf("a URI rule counts once per message: score %v", r.Score)
	}
}

func TestDNSLists(t *testing.T) {
	srv := dnstest.Start(t,
		"7.2.0.192.bl.test. A 127.0.0.2",
		"8.2.0.192.bl.test. A 127.255.255.254", // "query refused"
		"listed.example.uribl.test. A 127.0.0.2",
	)
	srv.SetServFail("broken.test.")
	dcfg := dns.DefaultConfig()
	dcfg.Servers = []string{srv.Addr}
	res, err := dns.New(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newCheck(t, func(cfg *Config, o *Options) {
		o.Resolver = res
		cfg.DNSBL = []Zone{{Zone: "bl.test", Weight: 5}, {Zone: "broken.test", Weight: 5}}
		cfg.URIBL = []Zone{{Zone: "uribl.test.", Weight: 4}}
	})
	m := msg(t, strings.Replace(plain, "noon?", "noon? see http://www.listed.example/x and http://clean.example/", 1))
	m.Client.Addr = netip.MustParseAddr("192.0.2.7")
	r, err := c.Check(context.Background(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := signals(r)
	if s["dnsbl-bl.test"] != 5 || s["uribl-uribl.test"] != 4 || len(s) != 2 {
		t.Errorf("signals %v (%s)", s, r.Detail)
	}
	if !strings.Contains(r.Detail, "dnsbl-broken.test lookup failed") {
		t.Errorf("a failing list is not noted: %s", r.Detail)
	}
	// Not listed, and the "refused" answer does not count.
	for _, ip := range []string{"192.0.2.9", "192.0.2.8"} {
		m = msg(t, plain)
		m.Client.Addr = netip.MustParseAddr(ip)
		r, _ = c.Check(context.Background(), m, nil)
		if _, ok := signals(r)["dnsbl-bl.test"]; ok {
			t.Errorf("%s counted as listed", ip)
		}
	}
	// Trusted and private clients are never looked up.
	n := srv.QueryCount("1.0.0.127.bl.test", 1)
	m = msg(t, plain)
	m.Client.Addr = netip.MustParseAddr("127.0.0.1")
	c.Check(context.Background(), m, nil)
	if srv.QueryCount("1.0.0.127.bl.test", 1) != n {
		t.Error("loopback client looked up")
	}
}

func TestReverseIP(t *testing.T) {
	if got := reverseIP(netip.MustParseAddr("192.0.2.99")); got != "99.2.0.192" {
		t.Error(got)
	}
	// RFC 5782 §2.4 example.
	if got := reverseIP(netip.MustParseAddr("2001:db8:1:2:3:4:567:89ab")); got != "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2" {
		t.Error(got)
	}
}

func TestConfig(t *testing.T) {
	toml := `
[spam]
skip_directions = ["outbound"]
[spam.heuristics]
html-only = 3.0
[spam.bayes.weights]
999 = 12.0
[[spam.uri_rule]]
name = "x"
pattern = "evil"
score = 2
`
	cfg, err := policy.Load("t.toml", []byte(toml), []policy.Module{Module(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Sections["spam"].(*Config)
	if sc.Heuristics["html-only"] != 3 || sc.Heuristics["url-ip"] != 2 {
		t.Errorf("heuristic weights do not merge with defaults: %v", sc.Heuristics)
	}
	if sc.Bayes.Weights["999"] != 12 || sc.Bayes.Weights["00"] != -4 {
		t.Errorf("bayes weights do not merge with defaults: %v", sc.Bayes.Weights)
	}
	bad := `
[spam.heuristics]
no-such-test = 1.0
[spam.auth]
"spf fail" = 1
[spam.bayes.weights]
42 = 1
[[spam.uri_rule]]
name = "y"
pattern = "("
score = 1
`
	_, err = policy.Load("bad.toml", []byte(bad), []policy.Module{Module(nil, nil)})
	for _, want := range []string{"spam.heuristics.no-such-test", "spam.auth.spf fail", "spam.bayes.weights.42", "spam.uri_rule[1].pattern"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestPipelineExplain(t *testing.T) {
	cfg, err := policy.Load("t.toml", []byte("[spam]\nweights = \"none\"\n[spam.heuristics]\nmissing-date = 6.0\nmissing-message-id = 5.0\n[spam.bayes]\nenabled = false\n"), []policy.Module{Module(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(cfg, []policy.Module{Module(nil, nil)}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	v := p.Run(context.Background(), msg(t, "From: a@example.com\nTo: b@example.org\nSubject: x\n\nhello\n"))
	if v.Score != 11 || v.WouldBe != policy.ActionQuarantine {
		t.Fatalf("score %v action %v", v.Score, v.WouldBe)
	}
	for _, want := range []string{"spam-missing-date", "spam-score"} {
		found := false
		for _, r := range v.Reasons {
			found = found || r == want
		}
		if !found {
			t.Errorf("reasons %v lack %s", v.Reasons, want)
		}
	}
	for _, c := range v.Checks {
		if c.Name == "spam" && (len(c.Signals) != 2 || c.Status != StatusSpam) {
			t.Errorf("spam report %+v", c)
		}
	}
}

func TestStoreBackedBayes(t *testing.T) {
	st, err := store.Open(&store.Config{Backend: store.BackendMemory})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := Default()
	cfg.Bayes.MinSpam, cfg.Bayes.MinHam = 1, 1
	c, err := New(cfg, policy.DefaultConfig(), Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	// An embedded store: the in-memory table, over a cache of the store
	// (reads until the table is loaded, and every write).
	tb, ok := c.TokenStore().(*bayes.Table)
	if !ok {
		t.Fatalf("token store %T, want the in-memory table", c.TokenStore())
	}
	if cs, ok := tb.Fallback.(*bayes.Cache); !ok {
		t.Fatalf("table fallback %T, want a cache over the shared store", tb.Fallback)
	} else if _, ok := cs.Inner.(*bayes.Store); !ok {
		t.Fatalf("cached store %T, want the shared store", cs.Inner)
	}
	ts := c.TokenStore()
	s := msg(t, "From: a@spam.example\nSubject: pills\n\nviagra pills\n")
	h := msg(t, "From: b@example.com\nSubject: agenda\n\nmeeting agenda\n")
	bayes.Learn(context.Background(), ts, MessageID(s), Tokens(s, c.Ignore()), bayes.ClassSpam, false)
	bayes.Learn(context.Background(), ts, MessageID(h), Tokens(h, c.Ignore()), bayes.ClassHam, false)
	r, _ := c.Check(context.Background(), msg(t, "From: c@spam.example\nSubject: pills\n\nviagra pills\n"), nil)
	if !strings.Contains(r.Detail, "bayes p=") {
		t.Errorf("no bayes verdict through the store: %s", r.Detail)
	}
	// And the same verdict once the table is in memory.
	if err := tb.Load(context.Background()); err != nil || !tb.Warm() {
		t.Fatalf("table load: %v", err)
	}
	r2, _ := c.Check(context.Background(), msg(t, "From: c@spam.example\nSubject: pills\n\nviagra pills\n"), nil)
	if r2.Detail != r.Detail || r2.Score != r.Score {
		t.Errorf("warm table verdict %q (%v), store verdict %q (%v)", r2.Detail, r2.Score, r.Detail, r.Score)
	}
	// memory_tokens = 0 keeps the cache alone (as Redis, which is no Scanner).
	cfg2 := Default()
	cfg2.Bayes.MemoryTokens = 0
	c2, err := New(cfg2, policy.DefaultConfig(), Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.TokenStore().(*bayes.Cache); !ok {
		t.Fatalf("memory_tokens = 0: token store %T, want the cache", c2.TokenStore())
	}
}

func TestFindURLs(t *testing.T) {
	got := findURLs("see http://a.example/x, HTTPS://B.example/y?q=1. and www.c.example/z\nnot xhttp://d.example nor http:// nor www.e", 10)
	want := []string{"http://a.example/x", "HTTPS://B.example/y?q=1", "www.c.example/z"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("findURLs = %q, want %q", got, want)
	}
	if got := findURLs(strings.Repeat("http://x.example/ ", 50), 5); len(got) != 5 {
		t.Errorf("limit: %d", len(got))
	}
	for _, c := range []struct{ url, host string }{
		{"http://user:pw@Evil.Example:8080/path", "evil.example"},
		{"https://[2001:db8::1]/x", "2001:db8::1"},
		{"www.example.com/a", "www.example.com"},
		{"http://example.com./", "example.com"},
	} {
		if h := urlHost(c.url); h != c.host {
			t.Errorf("urlHost(%q) = %q, want %q", c.url, h, c.host)
		}
	}
}

func TestAttrValues(t *testing.T) {
	got := attrValues(`<a HREF = "http://a.example/x">x</a><img src=http://b.example/i.gif><a data-href="no" xhref="no" href='http://c.example'>`, 10)
	want := "http://a.example/x http://b.example/i.gif http://c.example"
	if strings.Join(got, " ") != want {
		t.Errorf("attrValues = %q", got)
	}
}

// TestConcurrent scores and learns from several goroutines at once (run
// with -race): the pipeline shares one Check between sessions.
func TestConcurrent(t *testing.T) {
	st, err := store.Open(&store.Config{Backend: store.BackendMemory})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := Default()
	cfg.Bayes.MinSpam, cfg.Bayes.MinHam = 1, 1
	c, err := New(cfg, policy.DefaultConfig(), Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				m := msg(t, fmt.Sprintf("From: a%d@example.com\nSubject: s%d\n\nword%d cheap pills http://x%d.example/\n", g, i, i, i))
				cl := bayes.ClassHam
				if i%2 == 0 {
					cl = bayes.ClassSpam
				}
				if _, err := bayes.Learn(context.Background(), c.TokenStore(), MessageID(m), Tokens(m, c.Ignore()), cl, false); err != nil {
					done <- err
					return
				}
				if _, err := c.Check(context.Background(), m, nil); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	_, total, _ := c.TokenStore().Counts(context.Background(), nil)
	if total.Spam+total.Ham != 200 {
		t.Errorf("learned %v, want 200 messages", total)
	}
}

// The spam status follows the recipients' thresholds, per-domain overrides
// included, as the core applies them to the total.
func TestStatusUsesRecipientDomainThresholds(t *testing.T) {
	core, err := policy.Load("t", []byte("[score.domain.\"lenient.example\"]\nquarantine = 50\nreject = 60\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Heuristics["missing-date"] = 6
	cfg.Heuristics["missing-message-id"] = 5
	c, err := New(cfg, core, Options{Tokens: bayes.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	m := msg(t, "From: a@example.com\nTo: b@example.org\nSubject: x\n\nhello\n")
	if r, _ := c.Check(context.Background(), m, nil); r.Status != StatusSpam {
		t.Errorf("default thresholds: status %s (score %v), want spam", r.Status, r.Score)
	}
	m.Rcpts = []string{"b@lenient.example"}
	if r, _ := c.Check(context.Background(), m, nil); r.Status != StatusUnsure {
		t.Errorf("lenient domain: status %s (score %v), want unsure", r.Status, r.Score)
	}
}

// TestHeaderTokens: the fields a message has are tokens, routing fields
// aside; a Message-Id gives its shape and domain, not itself.
func TestHeaderTokens(t *testing.T) {
	m := msg(t, "Received: from a (a [192.0.2.1]) by b\nList-Id: <l.example.org>\nFrom: a@example.com\n"+
		"X-MimeOLE: Produced By Microsoft MimeOLE\nMessage-Id: <20020823151203.GA1234@mail.example.co.uk>\nSubject: hello\n\nhi there\n")
	c, err := New(Default(), nil, Options{Tokens: bayes.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, tok := range Tokens(m, c.Ignore()) {
		got[tok] = true
	}
	for _, w := range []string{"H*x-mimeole", "H*from", "H*subject", "mid-shape:<D.AD@a.a.a.a>", "mid:example.co.uk"} {
		if !got[w] {
			t.Errorf("no token %q", w)
		}
	}
	for tok := range got {
		if tok == "H*received" || tok == "H*list-id" || strings.Contains(tok, "20020823") {
			t.Errorf("token %q", tok)
		}
	}
}

// TestScannersNonASCIICase: lowering a non-ASCII rune can change its
// length (the Kelvin sign's 3 bytes become k's 1); the link and attribute
// scanners must not cut the original text at offsets of the lowered one
// (they ran past its end and panicked) and must find what they find
// without those runes.
func TestScannersNonASCIICase(t *testing.T) {
	kelvin := strings.Repeat("\u212a", 100)
	for _, h := range []string{
		`<a ` + kelvin + `>x</a>`,
		`<a href="http://evil.example/">` + kelvin + ` https://bank.example/</a>`,
		kelvin + `<A HREF="http://evil.example/">https://bank.example/</A>` + kelvin,
		`ẞ<img src=http://b.example/i.gif>` + kelvin + `<a href='http://c.example'>Ⱥ`,
	} {
		lower := strings.ToLower(h)
		ascii := strings.NewReplacer("\u212a", "", "ẞ", "", "Ⱥ", "").Replace(h)
		gotV := attrValuesLower(h, lower, 10)
		wantV := attrValues(ascii, 10)
		if !slices.Equal(gotV, wantV) {
			t.Errorf("attrValues(%.40q) = %q, want %q", h, gotV, wantV)
		}
		gotD, gotOK := linkMismatch(h, lower)
		wantD, wantOK := linkMismatch(ascii, strings.ToLower(ascii))
		if gotD != wantD || gotOK != wantOK {
			t.Errorf("linkMismatch(%.40q) = %q %v, want %q %v", h, gotD, gotOK, wantD, wantOK)
		}
	}
	if _, ok := linkMismatch(`<a href="http://evil.example/">https://bank.example/</a>`, `<a href="http://evil.example/">https://bank.example/</a>`); !ok {
		t.Fatal("the plain mismatch is not found")
	}
}
