package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/quarantine"
	"golang.org/x/crypto/bcrypt"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeReleaser struct {
	mu   sync.Mutex
	got  []string // id:rcpt:by
	msgs []string
}

func (f *fakeReleaser) Release(ctx context.Context, it *quarantine.Item, rcpt string, msg io.Reader, by string) error {
	b, _ := io.ReadAll(msg)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, it.ID+":"+rcpt+":"+by)
	f.msgs = append(f.msgs, string(b))
	return nil
}

func (f *fakeReleaser) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.got) }

type site struct {
	q      *quarantine.Quarantine
	sg     *quarantine.Signer
	clk    *clock
	rel    *fakeReleaser
	srv    *httptest.Server
	h      *Handler
	learnt []bool
}

const password = "correct horse battery staple"

func newSite(t *testing.T) *site {
	t.Helper()
	dir := t.TempDir()
	ix, err := quarantine.OpenBolt(filepath.Join(dir, "index.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	s := &site{clk: &clock{t: t0}, rel: &fakeReleaser{}}
	s.q, err = quarantine.New(quarantine.Config{Dir: filepath.Join(dir, "msg"), Index: ix, Now: s.clk.Now, Releaser: s.rel})
	if err != nil {
		t.Fatal(err)
	}
	s.sg, _ = quarantine.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	hash, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	s.h, err = New(Config{Q: s.q, Signer: s.sg, AdminHash: hash,
		Learn: func(ctx context.Context, msg io.Reader, spam bool) error {
			s.learnt = append(s.learnt, spam)
			return nil
		},
		SenderLists: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(s.h)
	t.Cleanup(s.srv.Close)
	return s
}

const msg = "From: Spammer <s@spam.example>\r\nTo: a@example.org\r\nSubject: Cheap pills\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nBuy now, ch=E8re.\r\n" +
	"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p onclick=\"evil()\">Buy <b>now</b><script>alert(1)</script>" +
	"<img src=\"http://tracker.example/pixel.gif\"><img src=\"data:image/png;base64,iVBORw0KGgo=\"></p>\r\n--b--\r\n"

func (s *site) put(t *testing.T, cat quarantine.Category, rcpts ...string) *quarantine.Item {
	t.Helper()
	it, err := s.q.Put(context.Background(), quarantine.Meta{MailFrom: "s@spam.example", Recipients: rcpts, Category: cat, Score: 9}, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return it
}

type browser struct {
	t *testing.T
	c *http.Client
	s *site
}

func (s *site) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, s: s, c: &http.Client{Jar: jar}}
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.s.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func (b *browser) get(path string) (int, string) { return b.do("GET", path, nil, nil) }
func (b *browser) post(path string, form url.Values) (int, string) {
	return b.do("POST", path, form, nil)
}

func (b *browser) asUser(addr string) {
	b.t.Helper()
	tok := b.s.sg.Link(addr, b.s.clk.Now().Add(7*24*time.Hour))
	if code, body := b.post("/login/"+tok, url.Values{}); code != 200 || !strings.Contains(body, "Quarantine") {
		b.t.Fatalf("user sign-in: %d\n%s", code, body)
	}
}

func (b *browser) asAdmin() {
	b.t.Helper()
	if code, body := b.post("/login", url.Values{"password": {password}}); code != 200 || !strings.Contains(body, "admin (admin)") {
		b.t.Fatalf("admin sign-in: %d\n%s", code, body)
	}
}

func TestLinkSignInIsAPost(t *testing.T) {
	s := newSite(t)
	it := s.put(t, quarantine.CategorySpam, "a@example.org")
	b := s.browser(t)
	tok := s.sg.Link("a@example.org", t0.Add(7*24*time.Hour))
	// A link scanner fetching the URL gets a button, not a session.
	code, body := b.get("/login/" + tok + "?next=item/" + it.ID)
	if code != 200 || !strings.Contains(body, "Continue as a@example.org") {
		t.Fatalf("GET link: %d", code)
	}
	if code, _ := b.get("/"); code != 200 || len(b.c.Jar.Cookies(mustURL(s.srv.URL))) != 0 {
		t.Fatal("GET of the link signed in")
	}
	code, body = b.post("/login/"+tok, url.Values{"next": {"item/" + it.ID}})
	if code != 200 || !strings.Contains(body, "Cheap pills") || !strings.Contains(body, `id="header"`) {
		t.Fatalf("POST link → item page: %d\n%s", code, body)
	}
	// next cannot lead elsewhere
	b2 := s.browser(t)
	b2.c.CheckRedirect = func(req *http.Request, via []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("POST", s.srv.URL+"/login/"+tok, strings.NewReader("next=//evil.example/"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b2.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("open redirect: Location %q", loc)
	}
}

// audited returns the audit entries of act as rcpt<detail.
func (s *site) audited(t *testing.T, act quarantine.Action) []string {
	t.Helper()
	log, err := s.q.Audit(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range log {
		if e.Action == act {
			out = append(out, e.Rcpt+"<"+e.Detail)
		}
	}
	return out
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

func TestExpiredAndTamperedLinksRefused(t *testing.T) {
	s := newSite(t)
	s.put(t, quarantine.CategorySpam, "a@example.org")
	tok := s.sg.Link("a@example.org", t0.Add(7*24*time.Hour))
	parts := strings.Split(tok, ".")
	bob := strings.Split(s.sg.Link("b@example.org", t0.Add(7*24*time.Hour)), ".")[0]
	s.clk.Add(7*24*time.Hour + time.Second)
	for name, bad := range map[string]string{
		"expired":  tok,
		"tampered": bob + "." + parts[1] + "." + parts[2],
		"session":  s.sg.Token("session", "admin", t0.Add(30*24*time.Hour)),
	} {
		b := s.browser(t)
		for _, m := range []string{"GET", "POST"} {
			code, body := b.do(m, "/login/"+bad, url.Values{}, nil)
			if code != http.StatusForbidden {
				t.Errorf("%s link %s: %d", name, m, code)
			}
			if name == "expired" && !strings.Contains(body, "expired") {
				t.Errorf("expired link page does not say so")
			}
		}
		if code, body := b.get("/"); !strings.Contains(body, "Admin password") {
			t.Errorf("%s link signed in: %d", name, code)
		}
	}
}

func TestUserNeverSeesAnothersItem(t *testing.T) {
	s := newSite(t)
	mine := s.put(t, quarantine.CategorySpam, "a@example.org")
	theirs := s.put(t, quarantine.CategorySpam, "b@example.org", "c@example.org")
	shared := s.put(t, quarantine.CategorySpam, "a@example.org", "secret@example.org")
	b := s.browser(t)
	b.asUser("a@example.org")
	_, list := b.get("/?state=all")
	if !strings.Contains(list, mine.ID) || !strings.Contains(list, shared.ID) || strings.Contains(list, theirs.ID) {
		t.Errorf("list: mine %v shared %v theirs %v", strings.Contains(list, mine.ID), strings.Contains(list, shared.ID), strings.Contains(list, theirs.ID))
	}
	if strings.Contains(list, "secret@example.org") {
		t.Error("list shows another recipient's address")
	}
	for _, p := range []string{"/item/" + theirs.ID, "/item/" + theirs.ID + "/html", "/?q=b@example.org"} {
		code, body := b.get(p)
		if strings.Contains(body, theirs.ID) || (code != 404 && !strings.HasPrefix(p, "/?")) {
			t.Errorf("GET %s: %d, leaks the item", p, code)
		}
	}
	if code, _ := b.get("/confirm?action=release&id=" + theirs.ID); code != 400 {
		t.Errorf("confirm of another's item: %d", code)
	}
	for _, act := range []string{"release", "delete", "learn-spam", "allow"} {
		code, _ := b.post("/act", url.Values{"action": {act}, "id": {theirs.ID}})
		if code != 404 {
			t.Errorf("%s of another's item: %d", act, code)
		}
	}
	// a user cannot name another recipient of a shared item
	if code, _ := b.post("/act", url.Values{"action": {"release"}, "id": {shared.ID}, "rcpt": {"secret@example.org"}}); code != 200 {
		t.Errorf("release of shared: %d", code)
	}
	if s.rel.count() != 1 || !strings.HasSuffix(s.rel.got[0], ":a@example.org:a@example.org") {
		t.Errorf("released %v, want only a@example.org's copy", s.rel.got)
	}
	if len(s.learnt) != 0 || len(s.audited(t, quarantine.ActionAllow)) != 0 {
		t.Error("hooks ran for another's item")
	}
	if code, _ := b.get("/audit"); code != 403 {
		t.Errorf("user reads the audit log: %d", code)
	}
}

func TestReleaseFlowAndVirusRule(t *testing.T) {
	s := newSite(t)
	spam := s.put(t, quarantine.CategorySpam, "a@example.org")
	virus := s.put(t, quarantine.CategoryVirus, "a@example.org")
	u := s.browser(t)
	u.asUser("a@example.org")
	// GET is never an action
	if code, _ := u.get("/act?action=release&id=" + spam.ID); code != 405 {
		t.Errorf("GET /act: %d", code)
	}
	code, body := u.get("/confirm?action=release&id=" + spam.ID)
	if code != 200 || !strings.Contains(body, `method="post"`) || s.rel.count() != 0 {
		t.Fatalf("confirm page: %d, released %d", code, s.rel.count())
	}
	code, body = u.post("/act", url.Values{"action": {"release"}, "id": {spam.ID}})
	if code != 200 || !strings.Contains(body, "done") || s.rel.count() != 1 {
		t.Fatalf("release: %d %s", code, body)
	}
	code, body = u.post("/act", url.Values{"action": {"release"}, "id": {spam.ID}})
	if code != 404 {
		t.Errorf("second release: %d", code)
	}
	if code, _ := u.post("/act", url.Values{"action": {"release"}, "id": {virus.ID}}); code != 403 {
		t.Errorf("user releases virus: %d", code)
	}
	if _, body := u.get("/item/" + virus.ID); strings.Contains(body, "Cheap pills\r\n") || strings.Contains(body, `id="text"`) {
		t.Error("user sees a virus item's content")
	}
	a := s.browser(t)
	a.asAdmin()
	if _, body := a.get("/confirm?action=release&id=" + virus.ID); !strings.Contains(body, "contains a virus") {
		t.Error("no warning on a virus release")
	}
	if code, _ := a.post("/act", url.Values{"action": {"release"}, "id": {virus.ID}}); code != 200 {
		t.Errorf("admin releases virus: %d", code)
	}
	_, log := a.get("/audit")
	if !strings.Contains(log, "release") || !strings.Contains(log, "admin (admin)") || !strings.Contains(log, "virus") {
		t.Errorf("audit log:\n%s", log)
	}
}

func TestBulkAndHooks(t *testing.T) {
	s := newSite(t)
	x := s.put(t, quarantine.CategorySpam, "a@example.org")
	y := s.put(t, quarantine.CategorySpam, "b@example.org")
	a := s.browser(t)
	a.asAdmin()
	code, _ := a.post("/act", url.Values{"action": {"learn-spam"}, "id": {x.ID, y.ID}})
	if code != 200 || len(s.learnt) != 2 || !s.learnt[0] {
		t.Errorf("learn: %d %v", code, s.learnt)
	}
	code, _ = a.post("/act", url.Values{"action": {"allow"}, "id": {x.ID, y.ID}})
	if allow := s.audited(t, quarantine.ActionAllow); code != 200 || s.rel.count() != 2 || len(allow) != 2 || !slices.Contains(allow, "a@example.org<s@spam.example") {
		t.Errorf("allow: %d released %d allow %v", code, s.rel.count(), allow)
	}
	admin := quarantine.Actor{Name: "admin", Role: quarantine.RoleAdmin}
	if l, err := s.q.SenderList(context.Background(), admin, "b@example.org"); err != nil || len(l) != 1 || l[0].Kind != quarantine.ListAllow || l[0].Sender != "s@spam.example" || l[0].ID != y.ID {
		t.Errorf("b's list: %+v %v", l, err)
	}
	code, body := a.post("/act", url.Values{"action": {"delete"}, "id": {x.ID}})
	if code != 404 || !strings.Contains(body, "nothing held") {
		t.Errorf("delete of released: %d", code)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	s := newSite(t)
	it := s.put(t, quarantine.CategorySpam, "a@example.org")
	b := s.browser(t)
	b.asUser("a@example.org")
	form := url.Values{"action": {"release"}, "id": {it.ID}}
	for name, hdr := range map[string]map[string]string{
		"sec-fetch-site": {"Sec-Fetch-Site": "cross-site"},
		"origin":         {"Origin": "http://evil.example"},
	} {
		if code, _ := b.do("POST", "/act", form, hdr); code != 403 {
			t.Errorf("%s: %d", name, code)
		}
	}
	if s.rel.count() != 0 {
		t.Fatal("a cross-origin POST released the message")
	}
	if code, _ := b.do("POST", "/act", form, map[string]string{"Sec-Fetch-Site": "same-origin"}); code != 200 || s.rel.count() != 1 {
		t.Errorf("same-origin POST: %d", code)
	}
}

func TestAdminLoginRateLimited(t *testing.T) {
	s := newSite(t)
	b := s.browser(t)
	for i := 0; i < 5; i++ {
		if code, _ := b.post("/login", url.Values{"password": {"guess"}}); code != 401 {
			t.Fatalf("attempt %d: %d", i, code)
		}
	}
	if code, _ := b.post("/login", url.Values{"password": {password}}); code != 429 {
		t.Errorf("6th attempt with the right password: %d, want 429", code)
	}
	s.clk.Add(15 * time.Minute)
	b.asAdmin()
	// the session lasts 12 hours
	s.clk.Add(12 * time.Hour)
	if _, body := b.get("/"); !strings.Contains(body, "Admin password") {
		t.Error("session still valid after 12 hours")
	}
}

func TestHeadersAndSanitisedHTML(t *testing.T) {
	s := newSite(t)
	it := s.put(t, quarantine.CategorySpam, "a@example.org")
	b := s.browser(t)
	b.asUser("a@example.org")
	resp, err := b.c.Get(s.srv.URL + "/item/" + it.ID)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Error("no Referrer-Policy")
	}
	if !strings.Contains(string(page), "Buy now, chère.") {
		t.Errorf("text view not decoded:\n%s", page)
	}
	resp, err = b.c.Get(s.srv.URL + "/item/" + it.ID + "/html")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "img-src data:") {
		t.Errorf("HTML view CSP %q", csp)
	}
	for _, bad := range []string{"<script", "alert(1)", "tracker.example", "onclick"} {
		if strings.Contains(string(html), bad) {
			t.Errorf("sanitised HTML keeps %q:\n%s", bad, html)
		}
	}
	if !strings.Contains(string(html), "<b>now</b>") || !strings.Contains(string(html), "data:image/png") {
		t.Errorf("sanitised HTML lost the formatting or the inline image:\n%s", html)
	}
}

func TestSettings(t *testing.T) {
	s := newSite(t)
	s.put(t, quarantine.CategorySpam, "a@example.org")
	b := s.browser(t)
	b.asUser("a@example.org")
	if code, _ := b.post("/settings", url.Values{"digest": {"weekly"}}); code != 200 {
		t.Fatalf("save: %d", code)
	}
	p, _ := s.q.Index().Pref(context.Background(), "a@example.org")
	if p.Digest != quarantine.FrequencyWeekly {
		t.Errorf("pref %v", p.Digest)
	}
	if code, _ := b.post("/settings", url.Values{"digest": {"hourly"}}); code != 400 {
		t.Errorf("bad frequency: %d", code)
	}
}

func TestServerTimeouts(t *testing.T) {
	srv := NewServer("127.0.0.1:0", http.NotFoundHandler())
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.IdleTimeout == 0 || srv.WriteTimeout == 0 {
		t.Errorf("%+v", srv)
	}
}

func TestParseBrokenMessages(t *testing.T) {
	for _, raw := range []string{"", "no header at all", "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n", "Content-Type: text/plain; charset=x-unknown\r\n\r\nhi"} {
		parse([]byte(raw)) // must not panic
	}
	if p := parse([]byte("Subject: x\r\n\r\nplain body")); p.text != "plain body" || p.header != "Subject: x" {
		t.Errorf("%+v", p)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(msg))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := parse(b)
		if strings.Contains(sanitize(p.html), "<script") {
			t.Error("script survived")
		}
	})
}

var _ = errors.New

// "My lists": a user sees and removes the senders on their own list only;
// an admin reads and changes anyone's. Each change is audited.
func TestSenderListsPage(t *testing.T) {
	s := newSite(t)
	mine := s.put(t, quarantine.CategorySpam, "a@example.org")
	theirs := s.put(t, quarantine.CategorySpam, "b@example.org")
	u := s.browser(t)
	u.asUser("a@example.org")
	if code, _ := u.post("/act", url.Values{"action": {"deny"}, "id": {mine.ID}}); code != 200 {
		t.Fatalf("deny: %d", code)
	}
	code, body := u.get("/lists")
	if code != 200 || !strings.Contains(body, "s@spam.example") || !strings.Contains(body, "deny") || !strings.Contains(body, "My lists") {
		t.Fatalf("my lists: %d\n%s", code, body)
	}
	// deny → allow replaces the entry
	if code, _ := u.post("/act", url.Values{"action": {"allow"}, "id": {mine.ID}}); code != 200 || s.rel.count() != 1 {
		t.Fatalf("allow: %d, released %d", code, s.rel.count())
	}
	l, _ := s.q.SenderList(context.Background(), quarantine.Actor{Role: quarantine.RoleSystem}, "a@example.org")
	if len(l) != 1 || l[0].Kind != quarantine.ListAllow || l[0].By != "a@example.org" {
		t.Errorf("a's list after allow: %+v", l)
	}
	// an admin puts the sender on b's list
	a := s.browser(t)
	a.asAdmin()
	if code, _ := a.post("/act", url.Values{"action": {"deny"}, "id": {theirs.ID}}); code != 200 {
		t.Fatalf("admin deny: %d", code)
	}
	// the user cannot read or change b's list, whatever the form says
	if _, body := u.get("/lists?rcpt=b@example.org"); strings.Contains(body, "b@example.org") {
		t.Error("user reads another's list")
	}
	if code, _ := u.post("/lists/remove", url.Values{"rcpt": {"b@example.org"}, "sender": {"s@spam.example"}}); code != 403 {
		t.Errorf("user removes from another's list: %d", code)
	}
	if _, body := a.get("/lists?rcpt=b@example.org"); !strings.Contains(body, "s@spam.example") {
		t.Errorf("admin view of b's list:\n%s", body)
	}
	// removal from the own list
	code, body = u.post("/lists/remove", url.Values{"sender": {"S@Spam.Example"}})
	if code != 200 || strings.Contains(body, "s@spam.example") {
		t.Errorf("remove: %d\n%s", code, body)
	}
	if code, _ := u.post("/lists/remove", url.Values{"sender": {"s@spam.example"}}); code != 404 {
		t.Errorf("second remove: %d", code)
	}
	if code, _ := a.post("/lists/remove", url.Values{"rcpt": {"b@example.org"}, "sender": {"s@spam.example"}}); code != 200 {
		t.Errorf("admin remove: %d", code)
	}
	if got := s.audited(t, quarantine.ActionUnlist); len(got) != 2 {
		t.Errorf("unlist audit: %v", got)
	}
	if got := s.audited(t, quarantine.ActionDeny); len(got) != 2 || !slices.Contains(got, "b@example.org<s@spam.example") {
		t.Errorf("deny audit: %v", got)
	}
}
