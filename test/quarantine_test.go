package e2e_test

// The quarantine's MTA side against a real Postfix, without the daemon:
// the release listener of examples/postfix-master.cf skips the milters
// and delivers a release from the original sender to one recipient with
// the signed header; hold mode releases and deletes with the real
// postsuper and postqueue.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/quarantine"
	"github.com/mailwarden/mailwarden/test/harness"
)

// spammyRule: a Subject containing SPAMMY scores 15 by this rule alone
// (quarantine, below reject); the spam check is off so that its fitted
// points do not add to it.
const spammyRule = `[spam]
enabled = false
[[rule]]
name = "spammy"
header = "Subject"
pattern = "SPAMMY"
score = 15.0
`

func quarantineFor(t *testing.T, mod func(*quarantine.Config)) *quarantine.Quarantine {
	t.Helper()
	dir := t.TempDir()
	ix, err := quarantine.OpenBolt(filepath.Join(dir, "index.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	cfg := quarantine.Config{Dir: filepath.Join(dir, "msg"), Index: ix}
	mod(&cfg)
	q, err := quarantine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// releaseService returns the release listener of
// examples/postfix-master.cf on addr, unchrooted like every service of a
// private instance.
func releaseService(t *testing.T, addr string) string {
	t.Helper()
	out := exampleService(t, "127.0.0.1:10026", addr)
	if !strings.Contains(out, "-o smtpd_milters=\n") {
		t.Fatalf("examples/postfix-master.cf: no release listener with smtpd_milters= off: %q", out)
	}
	return out
}

// exampleService returns the master.cf service of
// examples/postfix-master.cf that listens on listen, moved to addr and
// unchrooted (the private instance has no chroot files).
func exampleService(t *testing.T, listen, addr string) string {
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
		case strings.HasPrefix(l, listen+" "):
			f := strings.Fields(l)
			f[0], f[4] = addr, "n"
			out, in = append(out, strings.Join(f, " ")), true
		case in && strings.HasPrefix(l, "  -o "):
			out = append(out, l)
		default:
			in = false
		}
	}
	if len(out) < 2 {
		t.Fatalf("examples/postfix-master.cf: no %s listener: %q", listen, out)
	}
	return strings.Join(out, "\n") + "\n"
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

const quarMsg = "From: Shop <news@shop.example>\r\nTo: alice@test.example, bob@test.example\r\n" +
	"Subject: Spring sale\r\nMessage-ID: <q1@shop.example>\r\n\r\nSeventy percent off.\r\n"

func TestQuarantineReleaseListenerPostfix(t *testing.T) {
	rel := freeAddr(t)
	md, mainCF := harness.VirtualMaildirs(t, "alice@test.example", "bob@test.example")
	// A milter that is never there: the normal smtpd tempfails everything
	// (milter_default_action = tempfail), so mail that arrives came through
	// the release listener without milters.
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:127.0.0.1:9", MainCF: mainCF, MasterCF: releaseService(t, rel)})
	var se *harness.SMTPError
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.example", "news@shop.example", []string{"alice@test.example"}, []byte(quarMsg)); !errors.As(err, &se) || !se.Temporary() {
		t.Fatalf("the filtered port accepted mail without its milter: %v", err)
	}
	sg, _ := quarantine.NewSigner([]byte("e2e-quarantine-secret-0123456789"))
	q := quarantineFor(t, func(c *quarantine.Config) {
		c.Releaser = &quarantine.SMTPReleaser{Addr: rel, HELO: "mailwarden.test.example", Signer: sg}
	})
	ctx := context.Background()
	it, err := q.Put(ctx, quarantine.Meta{MailFrom: "news@shop.example", Recipients: []string{"alice@test.example", "bob@test.example"},
		Category: quarantine.CategorySpam, Score: 9}, strings.NewReader(quarMsg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Release(ctx, it.ID, "bob@test.example", quarantine.Actor{Name: "bob@test.example", Role: quarantine.RoleUser, Addrs: []string{"bob@test.example"}}); err != nil {
		t.Fatalf("release through Postfix: %v\n%s", err, pf.Log())
	}
	raw := md.Wait("bob@test.example", nil, 30*time.Second)
	if raw == nil {
		t.Fatalf("release did not arrive in bob's Maildir; maillog:\n%s", pf.Log())
	}
	m := &harness.Mail{Data: raw}
	// virtual(8) records the envelope sender as Return-Path.
	if rp := m.Get("Return-Path"); len(rp) != 1 || rp[0] != "<news@shop.example>" {
		t.Errorf("Return-Path %q, want the original envelope sender", rp)
	}
	if dt := m.Get("Delivered-To"); len(dt) != 1 || dt[0] != "bob@test.example" {
		t.Errorf("Delivered-To %q", dt)
	}
	v := m.Get(quarantine.ReleaseHeader)
	if len(v) != 1 || sg.VerifyRelease(v[0], "bob@test.example") != nil {
		t.Errorf("release header %q", v)
	}
	if !strings.Contains(string(m.Data), "Seventy percent off.") {
		t.Error("body lost")
	}
	if n := len(md.Messages("alice@test.example")); n != 0 {
		t.Errorf("alice got %d messages; only bob released his copy", n)
	}
	pf.WaitLog(t, "postfix/mailwarden-release", 5*time.Second)
}

func TestQuarantineHoldModePostfix(t *testing.T) {
	sink := harness.StartSink(t)
	checks := filepath.Join(t.TempDir(), "header_checks")
	if err := os.WriteFile(checks, []byte("/^Subject: hold me/ HOLD held for the test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pf := harness.StartPostfix(t, harness.PostfixOptions{Relay: sink.Addr, MainCF: map[string]string{"header_checks": "regexp:" + checks}})
	postsuper, err := harness.LookPath("postsuper")
	if err != nil {
		harness.Unavailable(t, "postsuper: %v", err)
	}
	postqueue, _ := harness.LookPath("postqueue")
	q := quarantineFor(t, func(c *quarantine.Config) {
		c.Dir = ""
		c.Hold = &quarantine.HoldQueue{Postsuper: postsuper, Postqueue: postqueue, ConfigDir: pf.ConfigDir}
	})
	ctx := context.Background()
	held := func(subject, rcpt string) *quarantine.Item {
		t.Helper()
		msg := "From: a@shop.example\r\nTo: " + rcpt + "\r\nSubject: hold me " + subject + "\r\n\r\nx\r\n"
		if err := harness.SendSMTP(pf.SMTPAddr(), "client.example", "a@shop.example", []string{rcpt}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		e := pf.WaitHold(t, func(e harness.QueueEntry) bool { return e.Recipients[0].Address == rcpt }, 20*time.Second)
		it, err := q.PutHeld(ctx, quarantine.Meta{QueueID: e.QueueID, MailFrom: "a@shop.example", Recipients: []string{rcpt}, Category: quarantine.CategorySpam})
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	one := held("one", "carol@test.example")
	two := held("two", "dave@test.example")
	admin := quarantine.Actor{Name: "admin", Role: quarantine.RoleAdmin}
	if _, err := q.Release(ctx, one.ID, "", admin); err != nil {
		t.Fatal(err)
	}
	if m := sink.WaitFor(30*time.Second, harness.To("carol@test.example")); m == nil {
		t.Fatalf("released hold-queue message not delivered:\n%s", pf.Log())
	}
	if _, err := q.Delete(ctx, two.ID, "", admin); err != nil {
		t.Fatal(err)
	}
	for _, e := range pf.Queue(t) {
		if e.QueueID == two.QueueID {
			t.Errorf("deleted message still queued: %+v", e)
		}
	}
	if m := sink.WaitFor(2*time.Second, harness.To("dave@test.example")); m != nil {
		t.Error("deleted message was delivered")
	}
}

// Hold mode through the daemon: a quarantined message stays in Postfix's
// hold queue, recorded with its queue id; `mailwarden quarantine release`
// (the page's release, through the control socket) runs postsuper -H and
// postqueue -i and it is delivered.
func TestQuarantineHoldModeDaemon(t *testing.T) {
	md, mainCF := harness.VirtualMaildirs(t, "carol@e2e.test")
	milter := freeAddr(t)
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:" + milter, MainCF: mainCF})
	dir := t.TempDir()
	key := filepath.Join(dir, "q.key")
	os.WriteFile(key, []byte("hold-mode-secret-0123456789abcdef"), 0o600)
	postsuper, _ := harness.LookPath("postsuper")
	postqueue, _ := harness.LookPath("postqueue")
	mw := harness.StartMailwarden(t, fmt.Sprintf(`
authserv_id = "mx.e2e.test"
local_domains = ["e2e.test"]
[listen]
address = "inet:%s"
[[rule]]
name = "hold-me"
header = "Subject"
pattern = "HOLD-ME"
action = "quarantine"
[quarantine]
enabled = true
mode = "hold"
dir = %q
secret_file = %q
postsuper = %q
postqueue = %q
postfix_config = %q
[quarantine.web]
listen = ""
`, milter, filepath.Join(dir, "q"), key, postsuper, postqueue, pf.ConfigDir))
	msg := "From: a@shop.example\r\nTo: carol@e2e.test\r\nSubject: HOLD-ME please\r\n\r\nheld body\r\n"
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.example", "a@shop.example", []string{"carol@e2e.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	e := pf.WaitHold(t, nil, 20*time.Second)
	line := mw.WaitLog(t, func(l map[string]any) bool { return l["quarantine_id"] != nil }, 10*time.Second)
	id := line["quarantine_id"].(string)
	bin := harness.Mailwarden(t)
	sock := filepath.Join(mw.Dir, "control.sock")
	out, err := exec.Command(bin, "quarantine", "-socket", sock, "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), id) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if md.Wait("carol@e2e.test", nil, time.Second) != nil {
		t.Fatal("delivered before the release")
	}
	out, err = exec.Command(bin, "quarantine", "-socket", sock, "release", id).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "carol@e2e.test released") {
		t.Fatalf("release: %v\n%s\n%s", err, out, mw.Stderr())
	}
	if md.Wait("carol@e2e.test", func(b []byte) bool { return strings.Contains(string(b), "held body") }, 30*time.Second) == nil {
		t.Fatalf("held message %s not delivered after the release:\n%s", e.QueueID, pf.Log())
	}
}

// Store mode through Sendmail: the quarantined recipient is removed
// (SMFIR_DELRCPT) and the allow-listed one still gets the message; the
// copy is in our quarantine.
func TestQuarantineStoreModeSendmail(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "q.key")
	os.WriteFile(key, []byte("sendmail-store-secret-0123456789"), 0o600)
	s := startSendmailStack(t, fmt.Sprintf(`
authserv_id = "mx.e2e.test"
[lists]
allow_recipients = ["boss@remote.example"]
`+spammyRule+`[quarantine]
enabled = true
dir = %q
secret_file = %q
[quarantine.web]
listen = ""
`, filepath.Join(dir, "q"), key), harness.SendmailOptions{})
	msg := "From: offers@shop.example\r\nTo: alice@remote.example, boss@remote.example\r\nSubject: SPAMMY deal\r\n\r\nbody\r\n"
	if err := harness.SendSMTP(s.smtp, "client.shop.example", "offers@shop.example", []string{"alice@remote.example", "boss@remote.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	m := s.sink.WaitFor(60*time.Second, harness.To("boss@remote.example"))
	if m == nil {
		t.Fatalf("the allow-listed recipient got nothing:\n%s", s.mtaLog())
	}
	if len(m.To) != 1 {
		t.Errorf("delivered to %q; alice's copy is quarantined", m.To)
	}
	line := s.mw.WaitLog(t, func(l map[string]any) bool { return l["quarantine_id"] != nil }, 10*time.Second)
	out, err := exec.Command(harness.Mailwarden(t), "quarantine", "-socket", filepath.Join(s.mw.Dir, "control.sock"), "show", line["quarantine_id"].(string)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "alice@remote.example held") || strings.Contains(string(out), "boss@") {
		t.Errorf("show: %v\n%s", err, out)
	}
	if n := s.held(t); n != 0 {
		t.Errorf("%d messages in Sendmail's quarantine queue; store mode keeps none there", n)
	}
}

// The release listener of examples/sendmail-release.mc: a second daemon
// whose empty InputMailFilters skips the milter, which refuses (F=T,
// unreachable) everything on the main port.
func TestQuarantineReleaseListenerSendmail(t *testing.T) {
	harness.RequireRoot(t)
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile(filepath.Join(root, "examples", "sendmail-release.mc"))
	if err != nil {
		t.Fatal(err)
	}
	rel := freeAddr(t)
	_, port, _ := net.SplitHostPort(rel)
	var mc []string
	for _, l := range strings.Split(string(ex), "\n") {
		if strings.HasPrefix(l, "DAEMON_OPTIONS(") {
			mc = append(mc, strings.Replace(l, "Port=10026", "Port="+port, 1))
		}
	}
	if len(mc) != 1 || !strings.Contains(mc[0], "InputMailFilters=')") {
		t.Fatalf("examples/sendmail-release.mc: no release daemon: %q", mc)
	}
	sink := harness.StartSink(t)
	sm := harness.StartSendmail(t, harness.SendmailOptions{Milter: "inet:9@127.0.0.1", Relay: sink.Addr, MC: mc[0]})
	var se *harness.SMTPError
	if err := harness.SendSMTP(sm.SMTPAddr(), "client.example", "news@shop.example", []string{"x@remote.example"}, []byte(quarMsg)); !errors.As(err, &se) || !se.Temporary() {
		t.Fatalf("the filtered port accepted mail without its milter: %v", err)
	}
	sg, _ := quarantine.NewSigner([]byte("e2e-quarantine-secret-0123456789"))
	q := quarantineFor(t, func(c *quarantine.Config) {
		c.Releaser = &quarantine.SMTPReleaser{Addr: rel, HELO: "mailwarden.test.example", Signer: sg}
	})
	ctx := context.Background()
	it, err := q.Put(ctx, quarantine.Meta{MailFrom: "news@shop.example", Recipients: []string{"alice@remote.example", "bob@remote.example"},
		Category: quarantine.CategorySpam}, strings.NewReader(quarMsg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Release(ctx, it.ID, "alice@remote.example", quarantine.Actor{Name: "admin", Role: quarantine.RoleAdmin}); err != nil {
		t.Fatalf("release through Sendmail: %v\n%s", err, sm.Log())
	}
	m := sink.WaitFor(60*time.Second, harness.To("alice@remote.example"))
	if m == nil {
		t.Fatalf("release did not arrive:\n%s", sm.Log())
	}
	v := m.Get(quarantine.ReleaseHeader)
	if m.From != "news@shop.example" || len(m.To) != 1 || len(v) != 1 || sg.VerifyRelease(v[0], "alice@remote.example") != nil {
		t.Errorf("envelope %q → %q, release header %q", m.From, m.To, v)
	}
}
