package browser

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mailwarden/mailwarden/policy/quarantine"
	"github.com/mailwarden/mailwarden/policy/quarantine/web"
	"github.com/mailwarden/mailwarden/test/harness"
	"golang.org/x/crypto/bcrypt"
)

const adminPassword = "s3cret-for-the-browser-test"

// chromium starts a headless Chromium for one test.
func chromium(t *testing.T) context.Context {
	t.Helper()
	bin, err := harness.LookPath("chromium")
	if err != nil {
		harness.Unavailable(t, "chromium not installed")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The first Do starts the browser and binds it to ctx: no timeout here.
	if err := chromedp.Do(ctx); err != nil {
		harness.Unavailable(t, "chromium does not start: %v", err)
	}
	return ctx
}

func message(from, subject, body string) string {
	return "From: " + from + "\r\nTo: Alice <alice@example.org>\r\nSubject: " + subject +
		"\r\nDate: Wed, 2 Dec 2026 09:12:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.net>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		body + "\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>" + body +
		"</p><img src=\"http://tracker.example/p.gif\"><script>alert(1)</script>\r\n--b--\r\n"
}

// TestBrowserReleaseAsAdminAndUser: a real Chromium signs in as the
// admin, finds the virus item, releases it after the confirmation page;
// then signs in as a user through the link of her digest, finds her spam
// item and releases it. Each release arrives at the re-injection
// listener from the original sender, for that recipient only, with a
// valid release header.
func TestBrowserReleaseAsAdminAndUser(t *testing.T) {
	ctx := chromium(t)
	sink := harness.StartSink(t)
	dir := t.TempDir()
	ix, err := quarantine.OpenBolt(filepath.Join(dir, "index.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	sg, _ := quarantine.NewSigner([]byte("browser-test-secret-0123456789abcdef"))
	q, err := quarantine.New(quarantine.Config{Dir: filepath.Join(dir, "msg"), Index: ix,
		Releaser: &quarantine.SMTPReleaser{Addr: sink.Addr, Signer: sg}})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	now := time.Now()
	put := func(ago time.Duration, cat quarantine.Category, from, env, subject string, score float64, reasons []string, rcpts ...string) *quarantine.Item {
		it, err := q.Put(bg, quarantine.Meta{Time: now.Add(-ago), QueueID: "4dQ7kL2xYz", Client: "203.0.113.9", HELO: "mx.example.net",
			MailFrom: env, Recipients: rcpts, Category: cat, Score: score, Reasons: reasons},
			strings.NewReader(message(from, subject, "Hello Alice, "+subject+".")))
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	put(9*time.Hour, quarantine.CategoryDMARC, "PayPal <service@paypa1.example>", "bounce@paypa1.example", "Your account is limited", 4.1, []string{"dmarc-fail"}, "bob@example.org")
	put(7*time.Hour, quarantine.CategoryPolicy, "Invoices <billing@vendor.example>", "billing@vendor.example", "Invoice 2026-118 (zip attached)", 0, []string{"attachment-blocked"}, "carol@example.org")
	virus := put(5*time.Hour, quarantine.CategoryVirus, "Scanner <scan@printer.example>", "scan@printer.example", "Scanned document", 0, []string{"virus-infected"}, "alice@example.org")
	spam := put(2*time.Hour, quarantine.CategorySpam, "Newsletter <news@shop.example>", "news@shop.example", "Spring sale: 70% off", 7.3, []string{"spam-score", "bayes-spam"}, "alice@example.org", "bob@example.org")
	put(time.Hour, quarantine.CategorySpam, "Lottery <win@lotto.example>", "win@lotto.example", "You have won", 15.2, []string{"spam-score"}, "bob@example.org")

	hash, _ := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	h, err := web.New(web.Config{Q: q, Signer: sg, AdminHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// The digest Alice gets.
	var digest string
	d := &quarantine.Digest{Q: q, Signer: sg, BaseURL: srv.URL + "/", From: "postmaster@example.org",
		Local: func(a string) bool { return a == "alice@example.org" },
		Send: func(ctx context.Context, from string, to []string, msg []byte) error {
			digest = string(msg)
			return nil
		}}
	if rep, err := d.Run(bg); err != nil || rep.Sent != 1 {
		t.Fatalf("digest: %+v %v", rep, err)
	}
	flat := strings.NewReplacer("=\r\n", "", "=3D", "=").Replace(digest)
	link := regexp.MustCompile(`http://\S+/login/\S+\?next=item%2F` + spam.ID).FindString(flat)
	if link == "" {
		t.Fatalf("no link to the spam item in the digest:\n%s", flat)
	}

	shots := os.Getenv("MAILWARDEN_SCREENSHOTS")
	shot := func(ctx context.Context, name string) {
		if shots == "" {
			return
		}
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(ctx context.Context, sel string) string { return pageText(t, ctx, sel) }
	do := func(ctx context.Context, who string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for i, st := range steps {
			if err := chromedp.Do(tctx, st); err != nil {
				lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
				loc, _ := chromedp.Run(lctx, chromedp.Location())
				lcancel()
				t.Fatalf("%s in Chromium, step %d at %s: %v", who, i, loc, err)
			}
		}
	}

	// Admin: sign in, filter on virus, open the item, release it.
	do(ctx, "admin",
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(`#password`),
		chromedp.SendKeys(`#password`, adminPassword),
		chromedp.Click(`#signin`),
		chromedp.WaitVisible(`table`),
	)
	shot(ctx, "quarantine-list.png")
	do(ctx, "admin",
		chromedp.SetValue(`select[name=category]`, "virus"),
		chromedp.Click(`#filter`),
		chromedp.WaitVisible(`td.subject a`),
	)
	list := text(ctx, `tbody`)
	do(ctx, "admin",
		chromedp.Click(`td.subject a`),
		chromedp.WaitVisible(`#act-release`),
		chromedp.Click(`#act-release`),
		chromedp.WaitVisible(`#confirm`),
		chromedp.Click(`#confirm`),
		chromedp.WaitVisible(`td.outcome`),
	)
	outcome := text(ctx, `td.outcome`)
	if !strings.Contains(list, "Scanned document") || strings.Contains(list, "Spring sale") {
		t.Errorf("virus filter shows:\n%s", list)
	}
	if outcome != "done" {
		t.Errorf("admin release: %q", outcome)
	}
	m := sink.WaitFor(30*time.Second, harness.To("alice@example.org"))
	if m == nil {
		t.Fatal("released virus item did not arrive")
	}
	checkReleased(t, sg, m, "scan@printer.example", "alice@example.org", virus.ID)

	// Alice, in a browser context of her own (no admin cookie), through
	// her digest link.
	ctx2, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	defer cancel()
	if err := chromedp.Do(ctx2); err != nil { // opens the tab, bound to ctx2
		t.Fatal(err)
	}
	do(ctx2, "user",
		chromedp.Navigate(link),
		chromedp.WaitVisible(`#signin`),
		chromedp.Click(`#signin`),
		chromedp.WaitVisible(`#act-release`),
	)
	shot(ctx2, "quarantine-item.png")
	do(ctx2, "user",
		chromedp.Click(`#act-release`),
		chromedp.WaitVisible(`#confirm`),
		chromedp.Click(`#confirm`),
		chromedp.WaitVisible(`td.outcome`),
	)
	outcome = text(ctx2, `td.outcome`)
	do(ctx2, "user", chromedp.Navigate(srv.URL+"/item/"+spam.ID), chromedp.WaitVisible(`.state`))
	state := text(ctx2, `dd strong.state`)
	if outcome != "done" || state != "released" {
		t.Errorf("user release: outcome %q, state %q", outcome, state)
	}
	m = sink.WaitFor(30*time.Second, func(m *harness.Mail) bool {
		return strings.Contains(string(m.Data), "Spring sale")
	})
	if m == nil {
		t.Fatal("released spam item did not arrive")
	}
	checkReleased(t, sg, m, "news@shop.example", "alice@example.org", spam.ID)
	it, _ := ix.Get(bg, spam.ID)
	if r := it.Recipient("bob@example.org"); r.State != quarantine.StateHeld {
		t.Errorf("bob's copy is %s; Alice's release must not touch it", r.State)
	}
	if r := it.Recipient("alice@example.org"); r.By != "alice@example.org" {
		t.Errorf("released by %q", r.By)
	}
	// Alice's session does not reach Bob's item.
	do(ctx2, "user", chromedp.Navigate(srv.URL+"/?state=all"), chromedp.WaitVisible(`main`))
	body := text(ctx2, `main`)
	if strings.Contains(body, "You have won") || strings.Contains(body, "Your account is limited") {
		t.Errorf("Alice sees Bob's items:\n%s", body)
	}
}

func checkReleased(t *testing.T, sg *quarantine.Signer, m *harness.Mail, from, rcpt, id string) {
	t.Helper()
	if m.From != from || len(m.To) != 1 || m.To[0] != rcpt {
		t.Errorf("envelope %q → %q, want %q → [%q]", m.From, m.To, from, rcpt)
	}
	v := m.Get(quarantine.ReleaseHeader)
	if len(v) != 1 || !strings.Contains(v[0], "id="+id) || sg.VerifyRelease(v[0], rcpt) != nil {
		t.Errorf("release header %q does not verify", v)
	}
}

// pageText is the text of sel in the page. Right after a click that
// navigates, the old page's execution context can vanish under the query
// ("Cannot find context with specified id"): it asks again in the new
// page, for up to 5 s.
func pageText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	for try := 0; ; try++ {
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err == nil {
			return s
		}
		// A page that was replaced under the query (a navigation, the
		// filtered list loading after the old one was seen) is asked
		// again; any other error fails.
		transient := strings.Contains(err.Error(), "Cannot find context") || strings.Contains(err.Error(), "No node with given id found")
		if try == 50 || !transient {
			t.Fatalf("text of %s: %v", sel, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
