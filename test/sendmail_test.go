package e2e_test

// The Sendmail end-to-end suite (issue 8): the core cases of
// postfix_test.go through a real Sendmail 8.17 (harness.StartSendmail: the
// Debian packages unpacked, not installed, .cf generated from
// examples/sendmail.mc), plus one case per capability that has an
// end-to-end harness (ClamAV). Sendmail differs from Postfix in the macros
// it sends and when, in how it applies quarantine (its own quarantine
// queue, mailq -qQ) and in local submission; see also
// harness.TestSendmailMilterFacts.

import (
	"bytes"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/test/harness"
)

func startSendmailStack(t *testing.T, toml string, o harness.SendmailOptions) stack {
	t.Helper()
	harness.RequireRoot(t)
	var s stack
	s.sink = harness.StartSink(t)
	// A unix socket where Sendmail accepts it (not below /tmp).
	sock := filepath.Join(harness.SendmailSocketDir(t), "milter.sock")
	s.mw = harness.StartMailwarden(t, toml+fmt.Sprintf("\n[listen]\naddress = %q\n", "unix:"+sock))
	o.Milter = s.mw.SendmailAddr()
	o.Relay = s.sink.Addr
	s.sm = harness.StartSendmail(t, o)
	s.smtp = s.sm.SMTPAddr()
	return s
}

// sendmailID is the queue id in Sendmail's Received line.
var sendmailID = regexp.MustCompile(`by ` + regexp.QuoteMeta(harness.SendmailHostname) + ` \([^)]*\)\s+with E?SMTP id (\w+)`)

func TestSendmailEnforce(t *testing.T) {
	t.Parallel()
	toml := strings.Replace(fmt.Sprintf(coreConfig, "enforce"), "[lists]\n", "[lists]\ndeny_recipients = [\"blocked@remote.example\"]\n", 1)
	s := startSendmailStack(t, toml, harness.SendmailOptions{})

	t.Run("CleanMessageGetsAuthResultsOnTop", func(t *testing.T) {
		t.Parallel()
		const from, to = "alice@sender.e2e.test", "clean@remote.example"
		err := s.send(from, to, "hello",
			"Received: from upstream.example by relay.example; Mon, 23 Nov 2026 10:00:00 +0000",
			"Authentication-Results: "+coreAuthservID+"; spf=pass smtp.mailfrom=forged.example",
			"Authentication-Results: "+strings.ToUpper(coreAuthservID)+" 1;\r\n\tdkim=pass header.d=forged.example",
			"Authentication-Results: other.example; dkim=pass header.d=other.example")
		if err != nil {
			t.Fatal(err)
		}
		m := s.sink.WaitFor(30*time.Second, harness.To(to))
		if m == nil {
			t.Fatalf("not delivered; sendmail log:\n%s", s.sm.Log())
		}
		h := m.Header()
		// Inserted at index 0: our fields (Authentication-Results first)
		// above Sendmail's own Received line, which it adds without
		// showing it to the milter.
		if len(h) == 0 || !strings.EqualFold(h[0].Name, "Authentication-Results") {
			t.Fatalf("first header is not Authentication-Results:\n%s", m.Data)
		}
		for i, f := range h {
			if f.Name == "Received" {
				if !strings.Contains(f.Value, "by "+harness.SendmailHostname) || i == 0 {
					t.Errorf("first Received (field %d) is not Sendmail's, below ours:\n%s", i, m.Data)
				}
				break
			}
		}
		if id, _, _ := strings.Cut(h[0].Value, ";"); strings.TrimSpace(id) != coreAuthservID {
			t.Errorf("first Authentication-Results is %q, want authserv-id %s", h[0].Value, coreAuthservID)
		}
		// One space after the colon (SMFIP_HDR_LEADSPC: we supply it).
		if !strings.HasPrefix(h[0].Raw, "Authentication-Results: "+coreAuthservID) {
			t.Errorf("raw field %q", h[0].Raw)
		}
		if ours := ourAuthResults(m); len(ours) != 1 || strings.Contains(ours[0], "forged.example") {
			t.Errorf("Authentication-Results with our id: %q; want exactly ours, the forged ones removed", ours)
		}
		if all := m.Get("Authentication-Results"); len(all) != 2 || !strings.Contains(strings.Join(all, "\n"), "other.example; dkim=pass") {
			t.Errorf("another server's Authentication-Results must be kept: %q", all)
		}
		if got := m.Get("Received"); len(got) != 2 {
			t.Errorf("Received fields %q, want Sendmail's and the upstream one", got)
		}
		line := s.summary(t, from)
		mm := sendmailID.FindStringSubmatch(string(m.Data))
		if mm == nil {
			t.Fatalf("no Sendmail queue id in:\n%s", m.Data)
		}
		// QUIRK(sendmail): {i} is sent from MAIL on; our line carries
		// Sendmail's queue id, as with Postfix.
		if line["action"] != "accept" || line["queue_id"] != mm[1] || line["client"] != "127.0.0.1" || line["helo"] != "client.e2e.test" {
			t.Errorf("log line %v, want action accept, queue_id %s, client 127.0.0.1, helo client.e2e.test", line, mm[1])
		}
		if _, ok := line["auth"]; ok {
			t.Errorf("unauthenticated client logged as authenticated: %v", line)
		}
		if line["from"] != from {
			t.Errorf("from %v, want %s (Sendmail sends it without angle brackets)", line["from"], from)
		}
	})

	t.Run("DenyListedSenderGets5xx", func(t *testing.T) {
		t.Parallel()
		const from, to = "spammer@bad.example", "deny@remote.example"
		wantSMTPError(t, s.send(from, to, "buy now"), 550, "5.7.1", "E2E policy says no")
		line := s.summary(t, from)
		if line["action"] != "reject" || !hasReason(line, "denylist-sender") {
			t.Errorf("log line %v, want action reject with reason denylist-sender", line)
		}
		s.sm.WaitLog(t, "Milter: data, reject=550 5.7.1 E2E policy says no", 5*time.Second)
		s.noDelivery(t, to)
	})

	t.Run("BodyRuleRejects", func(t *testing.T) {
		t.Parallel()
		checkBodyRuleRejects(t, s)
	})

	t.Run("QuarantineRuleHolds", func(t *testing.T) {
		t.Parallel()
		const from, to = "carol@sender.e2e.test", "hold@remote.example"
		if err := s.send(from, to, "please HOLD-ME"); err != nil {
			t.Fatalf("a quarantined message is accepted at SMTP: %v", err)
		}
		// Sendmail keeps it in its queue with the milter's reason
		// (mailq -qQ), where Postfix drops the reason.
		e := s.sm.WaitQuarantined(t, func(e harness.SendmailQueueEntry) bool { return e.Sender == from }, 20*time.Second)
		if len(e.Recipients) != 1 || e.Recipients[0] != to || !strings.Contains(e.Quarantine, "rule-hold-me") {
			t.Errorf("quarantined entry %+v, want recipient %s and a reason naming rule-hold-me", e, to)
		}
		line := s.summary(t, from)
		if line["action"] != "quarantine" || !hasReason(line, "rule-hold-me") || line["queue_id"] != e.QueueID {
			t.Errorf("log line %v, want action quarantine, reason rule-hold-me, queue_id %s", line, e.QueueID)
		}
		s.sm.WaitLog(t, e.QueueID+": milter=mailwarden, quarantine="+e.Quarantine, 5*time.Second)
		for _, q := range s.sm.Queue(t) {
			if q.QueueID == e.QueueID {
				t.Errorf("quarantined message listed in the normal queue too: %+v", q)
			}
		}
		s.noDelivery(t, to)

		// The README's release: sendmail -qQ -Q -qI<id>, then a queue run.
		s.sm.Release(t, e.QueueID)
		m := s.sink.WaitFor(30*time.Second, harness.To(to))
		if m == nil {
			t.Fatalf("released message not delivered; sendmail log:\n%s", s.sm.Log())
		}
		if len(ourAuthResults(m)) != 1 {
			t.Errorf("released message lacks our Authentication-Results:\n%s", m.Data)
		}
		if q := s.sm.Quarantined(t); len(q) != 0 {
			for _, x := range q {
				if x.QueueID == e.QueueID {
					t.Errorf("still quarantined after release: %+v", x)
				}
			}
		}
	})

	t.Run("TempfailRuleGives4xx", func(t *testing.T) {
		t.Parallel()
		const from, to = "dave@sender.e2e.test", "later@remote.example"
		wantSMTPError(t, s.send(from, to, "TRY-LATER please"), 451, "4.7.1", "E2E policy says later")
		if line := s.summary(t, from); line["action"] != "tempfail" || !hasReason(line, "rule-later") {
			t.Errorf("log line %v", line)
		}
		s.noDelivery(t, to)
	})

	t.Run("DenyListedRecipientRefusedAtRcpt", func(t *testing.T) {
		t.Parallel()
		const from, to = "frank@sender.e2e.test", "blocked@remote.example"
		err := s.send(from, to, "to a blocked address")
		var se *harness.SMTPError
		if !errors.As(err, &se) || se.Stage != "RCPT" || se.Code != 550 || se.Enhanced != "5.7.1" {
			t.Fatalf("got %v, want 550 5.7.1 at RCPT", err)
		}
		line := s.mw.WaitLog(t, func(l map[string]any) bool { return l["msg"] == "recipient refused" && l["rcpt"] == to }, 20*time.Second)
		if line["action"] != "reject" || !hasReason(line, "denylist-rcpt") {
			t.Errorf("log line %v", line)
		}
		s.sm.WaitLog(t, "Milter: to=<"+to+">, reject=550 5.7.1", 5*time.Second)
	})

	t.Run("NullSenderAndTwoRecipients", func(t *testing.T) {
		t.Parallel()
		// A bounce: Sendmail sends MAIL FROM as "<>".
		rcpts := []string{"dsn1@remote.example", "dsn2@remote.example"}
		msg := []byte("From: MAILER-DAEMON@remote.example\r\nSubject: Undelivered Mail\r\nX-Marker: null-sender\r\n\r\nbounce\r\n")
		if err := harness.SendSMTP(s.sm.SMTPAddr(), "client.e2e.test", "", rcpts, msg); err != nil {
			t.Fatal(err)
		}
		m := s.sink.WaitFor(30*time.Second, harness.To(rcpts[0]))
		if m == nil || m.From != "" || len(ourAuthResults(m)) != 1 {
			t.Fatalf("bounce delivered as %v", m)
		}
		line := s.mw.WaitLog(t, func(l map[string]any) bool {
			return l["msg"] == "message" && l["from"] == "" && strings.Contains(fmt.Sprint(l["rcpts"]), "dsn2@remote.example")
		}, 20*time.Second)
		if fmt.Sprint(line["rcpts"]) != fmt.Sprint([]any{rcpts[0], rcpts[1]}) {
			t.Errorf("log line rcpts %v, want %v", line["rcpts"], rcpts)
		}
	})
}

// TestSendmailMonitorMode: what enforce rejects is delivered, tagged, and
// logged with the would-be action; nothing is quarantined.
func TestSendmailMonitorMode(t *testing.T) {
	t.Parallel()
	checkMonitorMode(t, startSendmailStack(t, fmt.Sprintf(coreConfig, "monitor"), harness.SendmailOptions{}))
}

// TestSendmailMilterDown: with mailwarden stopped, Sendmail applies the
// F= flag of INPUT_MAIL_FILTER: F=T (examples/sendmail.mc) answers 4xx,
// no flag delivers unfiltered.
func TestSendmailMilterDown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, flags string
		deliver     bool
	}{{"F=T", "T", false}, {"no-F", "", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := harness.SendmailOptions{}
			if tc.flags != "T" {
				o.MilterFlags = &tc.flags
			}
			s := startSendmailStack(t, fmt.Sprintf(coreConfig, "enforce"), o)
			checkMilterDown(t, s, "down-"+strings.ToLower(strings.Trim(tc.name, "="))+"@remote.example", tc.deliver, "milter flags "+tc.name)
		})
	}
}

// TestSendmailExampleMC: the .cf the suite runs on is generated from
// examples/sendmail.mc, and the documented settings reach it.
func TestSendmailExampleMC(t *testing.T) {
	t.Parallel()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(root, "examples", "sendmail.mc"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(example), "S=inet:8895@127.0.0.1, F=T,") {
		t.Errorf("examples/sendmail.mc: want the default listen address and F=T in INPUT_MAIL_FILTER")
	}
	s := startSendmailStack(t, fmt.Sprintf(coreConfig, "enforce"), harness.SendmailOptions{})
	cf, err := os.ReadFile(s.sm.CFPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^Xmailwarden, S=` + regexp.QuoteMeta(s.mw.SendmailAddr()) + `, F=T, T=C:\w+;S:\w+;R:\w+;E:\w+$`,
		`(?m)^O InputMailFilters=mailwarden$`,
		`(?m)^O Milter\.macros\.envfrom=.*\bi\b.*\{auth_authen\}`,
		`(?m)^O Milter\.macros\.eom=.*\bi\b`,
	} {
		if !regexp.MustCompile(re).Match(cf) {
			t.Errorf("generated sendmail.cf lacks %s", re)
		}
	}
	const from, to = "example@sender.e2e.test", "example@remote.example"
	if err := s.send(from, to, "through the example"); err != nil {
		t.Fatal(err)
	}
	if m := s.sink.WaitFor(30*time.Second, harness.To(to)); m == nil || len(ourAuthResults(m)) != 1 {
		t.Fatalf("not delivered through the milter: %v", m)
	}
}

// TestSendmailClamAV: the virus check through Sendmail with a real clamd:
// EICAR refused at end of DATA with 554 5.7.1, clean mail relayed with
// X-Virus-Status.
func TestSendmailClamAV(t *testing.T) {
	t.Parallel()
	harness.RequireRoot(t)
	cd := harness.StartClamd(t, harness.ClamdOptions{})
	eicar := readShared(t, "conformance/clamav/eicar.txt")
	s := startSendmailStack(t, virusConfig("10s", "reject", "25MB", cd.UnixAddr()), harness.SendmailOptions{})
	send := func(from string, msg []byte) error {
		return harness.SendSMTP(s.sm.SMTPAddr(), "client.e2e.test", from, []string{"user@e2e.test"}, msg)
	}
	err := send("sv1@sender.example", mimeMessage("sv1@sender.example", "invoice", "eicar.com", "application/octet-stream", eicar))
	wantSMTPError(t, err, 554, "5.7.1", "")
	if line := s.summary(t, "sv1@sender.example"); line["action"] != "reject" || !hasReason(line, "virus-infected") {
		t.Errorf("log line %v, want reject with virus-infected", line)
	}
	s.sm.WaitLog(t, "Milter: data, reject=554 5.7.1", 5*time.Second)

	if err := send("sc@sender.example", coreMessage("sc@sender.example", "user@e2e.test", "clean")); err != nil {
		t.Fatalf("clean message: %v", err)
	}
	m := s.sink.WaitFor(30*time.Second, harness.To("user@e2e.test"))
	if m == nil {
		t.Fatalf("clean message not delivered; sendmail log:\n%s", s.sm.Log())
	}
	if got := m.Get("X-Virus-Status"); len(got) != 1 || got[0] != "Clean" {
		t.Errorf("delivered X-Virus-Status %v\n%s", got, m.Data)
	}
}

// TestSendmailDMARC: a p=reject domain whose SPF fails for the client
// (Sendmail's client is 127.0.0.1, external here) is refused with 550
// 5.7.1; p=none is delivered with dmarc=fail in our Authentication-Results.
func TestSendmailDMARC(t *testing.T) {
	t.Parallel()
	harness.RequireRoot(t)
	dns := harness.StartDNS(t,
		`reject.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.reject.example. TXT "v=DMARC1; p=reject"`,
		`none.example. TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.none.example. TXT "v=DMARC1; p=none"`,
	)
	s := startSendmailStack(t, authConfig(dns), harness.SendmailOptions{})
	send := func(from, to string) error {
		return harness.SendSMTP(s.sm.SMTPAddr(), "client.example", from, []string{to}, authMessage(from, to, "dmarc through sendmail"))
	}
	wantSMTPError(t, send("alice@reject.example", "s1@auth.test"), 550, "5.7.1", "")
	line := s.summary(t, "alice@reject.example")
	if line["action"] != "reject" || !hasReason(line, "dmarc-reject") {
		t.Errorf("log line %v, want reject with dmarc-reject", line)
	}

	if err := send("bob@none.example", "s2@auth.test"); err != nil {
		t.Fatal(err)
	}
	m := s.sink.WaitFor(30*time.Second, harness.To("s2@auth.test"))
	if m == nil {
		t.Fatalf("p=none not delivered; sendmail log:\n%s", s.sm.Log())
	}
	h := m.Header()
	if len(h) == 0 || !strings.EqualFold(h[0].Name, "Authentication-Results") || !strings.HasPrefix(h[0].Value, authAuthservID+";") ||
		!strings.Contains(h[0].Value, "dmarc=fail") || !strings.Contains(h[0].Value, "spf=fail") {
		t.Errorf("want our Authentication-Results with dmarc=fail on top:\n%s", m.Data)
	}
}

// TestSendmailAutoreply: a vacation reply (null sender) from one of our
// users through Sendmail passes once; the second one to the same
// correspondent within the period is discarded (Sendmail logs the
// milter's discard and delivers nothing).
func TestSendmailAutoreply(t *testing.T) {
	t.Parallel()
	harness.RequireRoot(t)
	s := startSendmailStack(t, arConfig(t, "memory", "redis://127.0.0.1:1/0", "50/hour", ""), harness.SendmailOptions{})
	reply := func(id string) error {
		return harness.SendSMTP(s.sm.SMTPAddr(), "mailbox.example.org", "", []string{"carol@remote.test"},
			sieveVacation("Alice <alice@example.org>", "carol@remote.test", id))
	}
	if err := reply("ham-sm-1@remote.test"); err != nil {
		t.Fatal(err)
	}
	m := s.sink.WaitFor(30*time.Second, harness.To("carol@remote.test"))
	if m == nil {
		t.Fatalf("first vacation reply not delivered; sendmail log:\n%s", s.sm.Log())
	}
	if m.From != "" {
		t.Errorf("vacation reply left with sender %q, want the null sender", m.From)
	}
	n := len(s.mw.Logs())
	if err := reply("ham-sm-2@remote.test"); err != nil {
		t.Fatalf("a discarded message is accepted at SMTP: %v", err)
	}
	l := s.mw.WaitLogAfter(t, n, logWith("reasons", "autoreply-limited"), 30*time.Second)
	if l["action"] != "discard" {
		t.Fatalf("second vacation reply: %v", l)
	}
	s.sm.WaitLog(t, "Milter: data, discard", 5*time.Second)
	if extra := s.sink.WaitFor(2*time.Second, func(m *harness.Mail) bool {
		return harness.To("carol@remote.test")(m) && strings.Contains(string(m.Data), "ham-sm-2@remote.test")
	}); extra != nil {
		t.Fatalf("second vacation reply delivered:\n%s", extra.Data)
	}
}

// TestSendmailCommandIsFiltered: sendmail(1) on the command line goes
// through the mail submission program, which hands the message to the
// daemon over SMTP: the milter sees it like any other (Sendmail runs
// milters on SMTP only, so this is the path that gets filtered).
func TestSendmailCommandIsFiltered(t *testing.T) {
	t.Parallel()
	s := startSendmailStack(t, fmt.Sprintf(coreConfig, "enforce"), harness.SendmailOptions{})
	const from, to = "local@sender.e2e.test", "local@remote.example"
	if err := s.sm.Submit(t, []string{"-f", from, to}, coreMessage(from, to, "from the command line",
		"Authentication-Results: "+coreAuthservID+"; dkim=pass header.d=forged.example")); err != nil {
		t.Fatal(err)
	}
	m := s.sink.WaitFor(30*time.Second, harness.To(to))
	if m == nil {
		t.Fatalf("not delivered; sendmail log:\n%s", s.sm.Log())
	}
	if h := m.Header(); !strings.EqualFold(h[0].Name, "Authentication-Results") || len(ourAuthResults(m)) != 1 || strings.Contains(h[0].Value, "forged") {
		t.Errorf("submitted message not filtered:\n%s", m.Data)
	}
	if line := s.summary(t, from); line["action"] != "accept" {
		t.Errorf("log line %v", line)
	}

	// A rejecting rule: the daemon refuses at end of data and the
	// command (-odi: delivering now) says so with a non-zero exit; nothing
	// leaves.
	const from2, to2 = "local2@sender.e2e.test", "local2@remote.example"
	if err := s.sm.Submit(t, []string{"-f", from2, to2}, []byte("Subject: x\n\nA forbidden phrase.\n")); err == nil {
		t.Errorf("submission of a rejected message succeeded")
	}
	if line := s.summary(t, from2); line["action"] != "reject" || !hasReason(line, "rule-deny-body") {
		t.Errorf("log line %v", line)
	}
	s.noDelivery(t, to2)
}

// TestSendmailDKIM: a message signed by OpenDKIM verifies after Sendmail
// handed its header and body to the milter (leading space, CRLF body,
// field order as received), so DMARC p=reject passes; the same message
// with one body byte altered is refused.
func TestSendmailDKIM(t *testing.T) {
	t.Parallel()
	harness.RequireRoot(t)
	harness.Require(t, "opendkim", "opendkim-genkey")
	dir := t.TempDir()
	key, txt := genKey(t, dir, "signer.example", "sm")
	dns := harness.StartDNS(t, `_dmarc.signer.example. TXT "v=DMARC1; p=reject"`)
	dns.AddTXT("sm._domainkey.signer.example", 300, txt)
	sock := startOpenDKIM(t, dir, "signer.example", "sm", key)
	msg := []byte("From: Alice <alice@signer.example>\r\nTo: bob@auth.test\r\nSubject: signed, through Sendmail\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <sm-dkim@signer.example>\r\n\r\n" +
		"Hello Bob,\r\nthis message was signed by OpenDKIM.\r\n.leading dot\r\n")
	signed := signWithOpenDKIM(t, sock, "alice@signer.example", "bob@auth.test", msg)
	s := startSendmailStack(t, authConfig(dns), harness.SendmailOptions{})

	if err := harness.SendSMTP(s.sm.SMTPAddr(), "mail.signer.example", "alice@signer.example", []string{"bob@auth.test"}, signed); err != nil {
		t.Fatalf("signed message: %v", err)
	}
	m := s.sink.WaitFor(30*time.Second, harness.To("bob@auth.test"))
	if m == nil {
		t.Fatalf("signed message not delivered; sendmail log:\n%s", s.sm.Log())
	}
	if h := m.Header(); !strings.HasPrefix(h[0].Value, authAuthservID+";") || !strings.Contains(h[0].Value, "dkim=pass") || !strings.Contains(h[0].Value, "dmarc=pass") {
		t.Errorf("want dkim=pass and dmarc=pass on top:\n%s", m.Data)
	}

	bad := bytes.Replace(signed, []byte("signed by OpenDKIM"), []byte("signed by OpenDKIm"), 1)
	wantSMTPError(t, harness.SendSMTP(s.sm.SMTPAddr(), "mail.signer.example", "alice@signer.example", []string{"carol@auth.test"}, bad), 550, "5.7.1", "")
}

// TestSendmailSeveralMessagesOneConnection: Sendmail keeps one milter
// connection for an SMTP session; every transaction on it must get its
// own envelope, queue id and verdict (a refused one in between included).
func TestSendmailSeveralMessagesOneConnection(t *testing.T) {
	t.Parallel()
	s := startSendmailStack(t, fmt.Sprintf(coreConfig, "enforce"), harness.SendmailOptions{})
	c, err := textproto.Dial("tcp", s.sm.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := func(want int, format string, args ...any) string {
		t.Helper()
		id, err := c.Cmd(format, args...)
		if err != nil {
			t.Fatal(err)
		}
		c.StartResponse(id)
		defer c.EndResponse(id)
		_, msg, err := c.ReadResponse(want)
		if err != nil {
			t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
		}
		return msg
	}
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	cmd(250, "EHLO client.e2e.test")
	type tx struct {
		from, to, subject string
		code              int
	}
	txs := []tx{
		{"first@sender.e2e.test", "one@remote.example", "first", 250},
		{"spammer@bad.example", "two@remote.example", "second", 550},
		{"third@sender.e2e.test", "three@remote.example", "third", 250},
	}
	for _, x := range txs {
		cmd(250, "MAIL FROM:<%s>", x.from)
		cmd(250, "RCPT TO:<%s>", x.to)
		cmd(354, "DATA")
		w := c.DotWriter()
		w.Write(coreMessage(x.from, x.to, x.subject))
		w.Close()
		if _, _, err := c.ReadResponse(x.code); err != nil {
			t.Fatalf("%s: end of data: %v", x.from, err)
		}
	}
	cmd(221, "QUIT")

	ids := map[string]bool{}
	for _, x := range txs {
		line := s.summary(t, x.from)
		if rc := fmt.Sprint(line["rcpts"]); rc != "["+x.to+"]" {
			t.Errorf("%s: rcpts %s, want [%s] (envelope leaked between transactions?)", x.from, rc, x.to)
		}
		id, _ := line["queue_id"].(string)
		if id == "" || ids[id] {
			t.Errorf("%s: queue id %q empty or reused", x.from, id)
		}
		ids[id] = true
		if x.code != 250 {
			continue
		}
		m := s.sink.WaitFor(30*time.Second, harness.To(x.to))
		if m == nil {
			t.Fatalf("%s not delivered", x.to)
		}
		if len(ourAuthResults(m)) != 1 || m.Get("Subject")[0] != x.subject {
			t.Errorf("%s:\n%s", x.to, m.Data)
		}
	}
	s.noDelivery(t, "two@remote.example")
}
