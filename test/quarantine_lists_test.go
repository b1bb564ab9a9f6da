package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/quarantine"
	"github.com/mailwarden/mailwarden/test/harness"
)

const listsConfig = `
authserv_id = "mx.e2e.test"
local_domains = ["e2e.test"]
[listen]
address = "inet:%s"
` + spammyRule + `[quarantine]
enabled = true
dir = %q
secret_file = %q
release_to = %q
[quarantine.web]
listen = %q
`

// pageClient is a user of the review page: a Go HTTP client with a
// cookie jar, signing in through a digest link and acting through the
// confirmation page as a browser would.
type pageClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (p *pageClient) do(method, path string, form url.Values) (int, string) {
	p.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, p.base+path, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Release and allow sender, from the page, through the daemon and a real
// Postfix delivering to Maildirs: a spam is quarantined for alice; she
// signs in from a digest link, confirms "Release and allow sender"; the
// copy arrives in her Maildir with the release header, and the next spam
// from that sender is delivered straight to her Maildir, not quarantined.
// The list survives a restart of the daemon (bbolt index) and she can
// remove the sender on "My lists", after which its spam is held again.
func TestQuarantineAllowSenderFromPage(t *testing.T) {
	md, mainCF := harness.VirtualMaildirs(t, "alice@e2e.test")
	milter, rel, webAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:" + milter, MainCF: mainCF, MasterCF: releaseService(t, rel)})
	dir := t.TempDir()
	secret := "allow-sender-secret-0123456789abcdef"
	key := filepath.Join(dir, "q.key")
	if err := os.WriteFile(key, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(listsConfig, milter, filepath.Join(dir, "q"), key, rel, webAddr)
	mw := harness.StartMailwarden(t, conf)

	offer := func(k int) func([]byte) bool {
		return func(b []byte) bool { return strings.Contains(string(b), fmt.Sprintf("Offer number %d.", k)) }
	}

	// 1. quarantined for alice (discarded: no recipient left)
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.shop.example", "offers@shop.example", []string{"alice@e2e.test"}, []byte(spamN(1))); err != nil {
		t.Fatalf("send: %v\n%s", err, pf.Log())
	}
	line := mw.WaitLog(t, func(l map[string]any) bool { return l["msg"] == "message" && l["quarantine_id"] != nil }, 30*time.Second)
	id := line["quarantine_id"].(string)
	if md.Wait("alice@e2e.test", offer(1), 2*time.Second) != nil {
		t.Fatal("the first spam was delivered; want it quarantined")
	}

	// 2. alice, from a digest link, releases it and allows the sender
	sg, _ := quarantine.NewSigner([]byte(secret))
	jar, _ := cookiejar.New(nil)
	p := &pageClient{t: t, base: "http://" + webAddr, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	tok := sg.Link("alice@e2e.test", time.Now().Add(time.Hour))
	if code, body := p.do("GET", "/login/"+tok+"?next=item/"+id, nil); code != 200 || !strings.Contains(body, "alice@e2e.test") {
		t.Fatalf("link page: %d\n%s", code, body)
	}
	if code, body := p.do("POST", "/login/"+tok, url.Values{"next": {"item/" + id}}); code != 200 || !strings.Contains(body, "SPAMMY offer 1") || !strings.Contains(body, "Release and allow sender") {
		t.Fatalf("signed in to the item: %d\n%s", code, body)
	}
	if code, body := p.do("GET", "/confirm?action=allow&id="+id, nil); code != 200 || !strings.Contains(body, `method="post"`) {
		t.Fatalf("confirmation page: %d\n%s", code, body)
	}
	if code, body := p.do("POST", "/act", url.Values{"action": {"allow"}, "id": {id}}); code != 200 || !strings.Contains(body, "done") {
		t.Fatalf("release and allow: %d\n%s\n%s", code, body, mw.Stderr())
	}
	got := md.Wait("alice@e2e.test", offer(1), 30*time.Second)
	if got == nil {
		t.Fatalf("the released copy did not arrive:\n%s", pf.Log())
	}
	if h := (&harness.Mail{Data: got}).Get(quarantine.ReleaseHeader); len(h) != 1 || sg.VerifyRelease(h[0], "alice@e2e.test") != nil {
		t.Errorf("release header %q", h)
	}
	if code, body := p.do("GET", "/lists", nil); code != 200 || !strings.Contains(body, "offers@shop.example") || !strings.Contains(body, "allow") {
		t.Errorf("My lists: %d\n%s", code, body)
	}

	// 3. the next spam from that sender goes straight to her Maildir
	nLogs := len(mw.Logs())
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.shop.example", "offers@shop.example", []string{"alice@e2e.test"}, []byte(spamN(2))); err != nil {
		t.Fatalf("send: %v\n%s", err, pf.Log())
	}
	line = mw.WaitLogAfter(t, nLogs, harness.MessageFrom("offers@shop.example"), 30*time.Second)
	if line["action"] != "accept" || line["quarantine_id"] != nil || !strings.Contains(fmt.Sprint(line["reasons"]), quarantine.ReasonSenderAllowed) {
		t.Errorf("second spam: summary %v; want accept with %s", line, quarantine.ReasonSenderAllowed)
	}
	got = md.Wait("alice@e2e.test", offer(2), 30*time.Second)
	if got == nil {
		t.Fatalf("the allowed sender's spam was not delivered:\n%s", pf.Log())
	}
	if h := (&harness.Mail{Data: got}).Get(quarantine.ReleaseHeader); len(h) != 0 {
		t.Errorf("delivered directly, yet it has a release header %q", h)
	}

	// 4. after a restart the list is still there
	mw.Stop(t)
	mw = harness.StartMailwarden(t, conf)
	nLogs = len(mw.Logs())
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.shop.example", "offers@shop.example", []string{"alice@e2e.test"}, []byte(spamN(3))); err != nil {
		t.Fatalf("send after restart: %v\n%s", err, pf.Log())
	}
	if md.Wait("alice@e2e.test", offer(3), 30*time.Second) == nil {
		t.Fatalf("after a restart the allowed sender's spam was not delivered:\n%s\n%s", pf.Log(), mw.Stderr())
	}

	// 5. removed on "My lists" (a new session: the secret is the same),
	// its spam is held again
	jar, _ = cookiejar.New(nil)
	p.c.Jar = jar
	if code, _ := p.do("POST", "/login/"+tok, url.Values{}); code != 200 {
		t.Fatalf("sign-in after restart: %d", code)
	}
	if code, body := p.do("POST", "/lists/remove", url.Values{"sender": {"offers@shop.example"}}); code != 200 || strings.Contains(body, "offers@shop.example") {
		t.Fatalf("remove: %d\n%s", code, body)
	}
	nLogs = len(mw.Logs())
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.shop.example", "offers@shop.example", []string{"alice@e2e.test"}, []byte(spamN(4))); err != nil {
		t.Fatalf("send: %v", err)
	}
	if line := mw.WaitLogAfter(t, nLogs, harness.MessageFrom("offers@shop.example"), 30*time.Second); line["quarantine_id"] == nil {
		t.Errorf("after removal: %v; want it quarantined", line)
	}
	if md.Wait("alice@e2e.test", offer(4), 2*time.Second) != nil {
		t.Error("after removal the spam was delivered")
	}
}

func spamN(k int) string {
	return fmt.Sprintf("From: Shop <offers@shop.example>\r\nTo: alice@e2e.test\r\nSubject: SPAMMY offer %d\r\n"+
		"Message-ID: <allow-%d@shop.example>\r\n\r\nOffer number %d.\r\n", k, k, k)
}

// SIGHUP with a changed [quarantine] and a bbolt index: the reload is
// applied (before, opening the index again hit the daemon's own lock), the
// page keeps answering on its address, and mail is quarantined after it.
func TestQuarantineReloadSIGHUP(t *testing.T) {
	md, mainCF := harness.VirtualMaildirs(t, "alice@e2e.test")
	milter, rel, webAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:" + milter, MainCF: mainCF, MasterCF: releaseService(t, rel)})
	dir := t.TempDir()
	key := filepath.Join(dir, "q.key")
	os.WriteFile(key, []byte("reload-secret-0123456789abcdef"), 0o600)
	conf := fmt.Sprintf(listsConfig, milter, filepath.Join(dir, "q"), key, rel, webAddr)
	mw := harness.StartMailwarden(t, conf)
	changed := strings.Replace(conf, "[quarantine.web]", "retention = { spam = \"3d\" }\ndeny_action = \"reject\"\n[quarantine.web]", 1)
	if line, ok := mw.ReloadWait(t, changed, 20*time.Second); !ok {
		t.Fatalf("reload with a changed [quarantine] refused: %v\n%s", line, mw.Stderr())
	}
	resp, err := http.Get("http://" + webAddr + "/login")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("page after the reload: %v %v", resp, err)
	}
	resp.Body.Close()
	n := len(mw.Logs())
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.shop.example", "offers@shop.example", []string{"alice@e2e.test"}, []byte(spamN(1))); err != nil {
		t.Fatalf("send: %v", err)
	}
	if line := mw.WaitLogAfter(t, n, harness.MessageFrom("offers@shop.example"), 30*time.Second); line["quarantine_id"] == nil {
		t.Errorf("after the reload: %v; want it quarantined", line)
	}
	if md.Wait("alice@e2e.test", nil, time.Second) != nil {
		t.Error("delivered after the reload")
	}
}
