package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mailwarden/mailwarden/policy/quarantine"
	"github.com/mailwarden/mailwarden/test/harness"
	"golang.org/x/crypto/bcrypt"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// releaseService is the release listener of examples/postfix-master.cf
// on addr, unchrooted like every service of a private instance.
func releaseService(t *testing.T, addr string) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "postfix-master.cf"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "127.0.0.1:10026 "):
			f := strings.Fields(l)
			f[0], f[4] = addr, "n"
			out, in = append(out, strings.Join(f, " ")), true
		case in && strings.HasPrefix(l, "  -o "):
			out = append(out, l)
		default:
			in = false
		}
	}
	return strings.Join(out, "\n") + "\n"
}

const e2eConfig = `
authserv_id = "mx.e2e.test"
local_domains = ["e2e.test"]

[listen]
address = "inet:%s"

[lists]
allow_recipients = ["boss@e2e.test"]

[[rule]]
name = "spammy"
header = "Subject"
pattern = "SPAMMY"
score = 15.0

[quarantine]
enabled = true
dir = "%s"
secret_file = "%s"
release_to = "%s"
every = "2s"

[quarantine.digest]
enabled = true
from = "postmaster@e2e.test"
smtp = "%s"

[quarantine.web]
listen = "%s"
base_url = "http://%s/"
admin_password_hash = "%s"
`

// TestE2EQuarantineThroughPostfix: the real daemon behind a real Postfix.
// A spam to two recipients, one of them allow-listed, is delivered to
// that one (Maildir) and quarantined for the other; her digest arrives in
// her Maildir; Chromium signs in as the admin (finds the item) and then
// as the user from the digest's link and releases it; the message arrives
// in her Maildir with a valid X-Mailwarden-Released header; the command
// line and status see it.
func TestE2EQuarantineThroughPostfix(t *testing.T) {
	ctx := chromium(t)
	milter, rel, webAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	md, mainCF := harness.VirtualMaildirs(t, "alice@e2e.test", "boss@e2e.test")
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:" + milter, MainCF: mainCF, MasterCF: releaseService(t, rel)})

	dir := t.TempDir()
	secret := []byte("e2e-quarantine-secret-0123456789abcdef")
	keyFile := filepath.Join(dir, "q.key")
	if err := os.WriteFile(keyFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	mw := harness.StartMailwarden(t, fmt.Sprintf(e2eConfig, milter, filepath.Join(dir, "q"), keyFile, rel, rel, webAddr, webAddr, hash))

	spam := "From: Shop <offers@shop.example>\r\nTo: alice@e2e.test, boss@e2e.test\r\nSubject: SPAMMY spring offer\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <e2e-spam@shop.example>\r\n\r\nSeventy percent off everything.\r\n"
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.shop.example", "offers@shop.example", []string{"alice@e2e.test", "boss@e2e.test"}, []byte(spam)); err != nil {
		t.Fatalf("send: %v\n%s", err, pf.Log())
	}
	line := mw.WaitLog(t, func(l map[string]any) bool { return l["queue_id"] != nil && l["quarantine_id"] != nil }, 30*time.Second)
	id, _ := line["quarantine_id"].(string)
	if line["action"] != "accept" {
		t.Errorf("summary line %v: want action accept (delrcpt for the quarantined recipient)", line)
	}
	isSpam := func(b []byte) bool { return strings.Contains(string(b), "Seventy percent off everything.") }
	if md.Wait("boss@e2e.test", isSpam, 30*time.Second) == nil {
		t.Fatalf("the allow-listed recipient did not get the message:\n%s", pf.Log())
	}
	if md.Wait("alice@e2e.test", isSpam, 2*time.Second) != nil {
		t.Fatal("alice got the spam although it is quarantined for her")
	}

	// Her digest, through Postfix's re-injection listener (no milter: it
	// lists spam subjects) into her Maildir.
	digest := md.Wait("alice@e2e.test", func(b []byte) bool { return strings.Contains(string(b), "Subject: Quarantine:") }, 30*time.Second)
	if digest == nil {
		t.Fatalf("no digest for alice:\n%s", pf.Log())
	}
	_, body, _ := strings.Cut(string(digest), "\n\n")
	if i := strings.Index(string(digest), "\r\n\r\n"); i >= 0 {
		body = string(digest[i+4:])
	}
	dec, _ := readQP(body)
	link := regexp.MustCompile(`http://\S+/login/\S+\?next=item%2F` + id).FindString(dec)
	if link == "" {
		t.Fatalf("no link to %s in the digest:\n%s", id, dec)
	}

	// The admin finds it.
	do := func(ctx context.Context, who string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for i, st := range steps {
			if err := chromedp.Do(tctx, st); err != nil {
				t.Fatalf("%s in Chromium, step %d: %v", who, i, err)
			}
		}
	}
	text := func(ctx context.Context, sel string) string { return pageText(t, ctx, sel) }
	do(ctx, "admin",
		chromedp.Navigate("http://"+webAddr+"/"),
		chromedp.WaitVisible(`#password`),
		chromedp.SendKeys(`#password`, adminPassword),
		chromedp.Click(`#signin`),
		chromedp.WaitVisible(`#q`),
		chromedp.SendKeys(`#q`, "SPAMMY"),
		chromedp.Click(`#filter`),
		chromedp.WaitVisible(`td.subject a`),
	)
	if list := text(ctx, `tbody`); !strings.Contains(list, "SPAMMY spring offer") || !strings.Contains(list, "alice@e2e.test") || strings.Contains(list, "boss@e2e.test") {
		t.Errorf("admin list:\n%s", list)
	}

	// Alice, from her digest, releases it.
	uctx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancel()
	if err := chromedp.Do(uctx); err != nil {
		t.Fatal(err)
	}
	do(uctx, "user",
		chromedp.Navigate(link),
		chromedp.WaitVisible(`#signin`),
		chromedp.Click(`#signin`),
		chromedp.WaitVisible(`#act-release`),
		chromedp.Click(`#act-release`),
		chromedp.WaitVisible(`#confirm`),
		chromedp.Click(`#confirm`),
		chromedp.WaitVisible(`td.outcome`),
	)
	if out := text(uctx, `td.outcome`); out != "done" {
		t.Fatalf("release: %q\n%s", out, mw.Stderr())
	}
	got := md.Wait("alice@e2e.test", isSpam, 30*time.Second)
	if got == nil {
		t.Fatalf("released message not in alice's Maildir:\n%s", pf.Log())
	}
	m := &harness.Mail{Data: got}
	sg, _ := quarantine.NewSigner(secret)
	v := m.Get(quarantine.ReleaseHeader)
	if len(v) != 1 || sg.VerifyRelease(v[0], "alice@e2e.test") != nil || !strings.Contains(v[0], "by=alice@e2e.test") {
		t.Errorf("release header %q", v)
	}
	if rp := m.Get("Return-Path"); len(rp) != 1 || rp[0] != "<offers@shop.example>" {
		t.Errorf("Return-Path %q, want the original sender", rp)
	}

	// The command line, through the control socket.
	bin := harness.Mailwarden(t)
	out, err := exec.Command(bin, "quarantine", "-socket", filepath.Join(mw.Dir, "control.sock"), "show", "-json", id).CombinedOutput()
	if err != nil {
		t.Fatalf("mailwarden quarantine show: %v\n%s", err, out)
	}
	var resp struct {
		Item *quarantine.Item `json:"item"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.Item == nil {
		t.Fatalf("show -json: %v\n%s", err, out)
	}
	if r := resp.Item.Recipient("alice@e2e.test"); r == nil || r.State != quarantine.StateReleased || resp.Item.Recipient("boss@e2e.test") != nil {
		t.Errorf("item %+v", resp.Item.Recipients)
	}
	out, err = exec.Command(bin, "status", "-socket", filepath.Join(mw.Dir, "control.sock")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "quarantine:") {
		t.Errorf("status: %v\n%s", err, out)
	}
}

func readQP(s string) (string, error) {
	b, err := readAll(quotedprintable.NewReader(strings.NewReader(s)))
	return string(b), err
}

func readAll(r io.Reader) ([]byte, error) { return io.ReadAll(r) }
