package e2e_test

// The core end-to-end suite (issue 2): the mailwarden binary as the milter
// of a private Postfix, mail submitted through real SMTP and through
// Postfix's sendmail command, relayed to an SMTP sink. Each top-level test
// runs its own daemon, Postfix and sink, in parallel with the others.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/test/harness"
)

const coreAuthservID = "mx.e2e.test"

// coreConfig is the policy under test: a deny list, rules giving
// quarantine, tempfail and reject, and replies we can recognise.
const coreConfig = `
mode = "%s"
authserv_id = "` + coreAuthservID + `"
local_domains = ["e2e.test"]

[replies]
reject = "550 5.7.1 E2E policy says no"
tempfail = "451 4.7.1 E2E policy says later"
quarantine = "e2e hold"

[lists]
deny_senders = ["spammer@bad.example"]

[[rule]]
name = "hold-me"
header = "Subject"
pattern = "HOLD-ME"
action = "quarantine"

[[rule]]
name = "later"
header = "Subject"
pattern = "TRY-LATER"
action = "tempfail"

[[rule]]
name = "deny-body"
body = true
pattern = "(?i)forbidden phrase"
action = "reject"
`

// coreMessage builds a message with the given subject and extra header
// lines (each "Name: value").
func coreMessage(from, to, subject string, extra ...string) []byte {
	var b strings.Builder
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n", from, to, subject)
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%s>\r\n", time.Now().UnixNano(), strings.ReplaceAll(to, "@", "."))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	b.WriteString("Hello,\r\nthis is an end-to-end test message.\r\n")
	return []byte(b.String())
}

// stack is a mailwarden daemon between a real MTA and the test's sink.
type stack struct {
	mw   *harness.Daemon
	sink *harness.Sink
	smtp string            // the MTA's SMTP address
	pf   *harness.Postfix  // for Postfix stacks
	sm   *harness.Sendmail // for Sendmail stacks
}

func startCoreStack(t *testing.T, toml string, mainCF map[string]string) stack {
	t.Helper()
	harness.Require(t, "postfix")
	harness.RequireRoot(t)
	var s stack
	s.sink = harness.StartSink(t)
	s.mw = harness.StartMailwarden(t, toml)
	s.pf = harness.StartPostfix(t, harness.PostfixOptions{Milter: s.mw.Addr(), Relay: s.sink.Addr, MainCF: mainCF})
	s.smtp = s.pf.SMTPAddr()
	return s
}

func (s stack) send(from, to, subject string, extra ...string) error {
	return harness.SendSMTP(s.smtp, "client.e2e.test", from, []string{to}, coreMessage(from, to, subject, extra...))
}

// mtaLog is the MTA's log, for failure messages.
func (s stack) mtaLog() string {
	if s.pf != nil {
		return s.pf.Log()
	}
	return s.sm.Log()
}

// held counts the messages in the MTA's hold (Postfix) or quarantine
// (Sendmail) queue.
func (s stack) held(t *testing.T) int {
	if s.pf != nil {
		return len(s.pf.Hold(t))
	}
	return len(s.sm.Quarantined(t))
}

// summary waits for the daemon's one log line about the message from.
func (s stack) summary(t *testing.T, from string) map[string]any {
	t.Helper()
	return s.mw.WaitLog(t, harness.MessageFrom(from), 20*time.Second)
}

// noDelivery checks that nothing for rcpt reaches the sink for a while.
func (s stack) noDelivery(t *testing.T, rcpt string) {
	t.Helper()
	if m := s.sink.WaitFor(1500*time.Millisecond, harness.To(rcpt)); m != nil {
		t.Errorf("message for %s was delivered:\n%s", rcpt, m.Data)
	}
}

// checkMilterDown sends one message with mailwarden running (filtered),
// stops it, and sends another: the MTA's configured fallback (what says
// how: label) must either defer it (4xx, nothing delivered) or deliver it
// unfiltered.
func checkMilterDown(t *testing.T, s stack, to string, deliver bool, label string) {
	t.Helper()
	const from = "eve@sender.e2e.test"
	if err := s.send(from, to, "before the stop"); err != nil {
		t.Fatalf("with mailwarden running: %v", err)
	}
	if m := s.sink.WaitFor(30*time.Second, harness.To(to)); m == nil || len(ourAuthResults(m)) != 1 {
		t.Fatalf("with mailwarden running: delivered %v", m)
	}
	s.mw.Stop(t)
	err := s.send(from, to, "after the stop")
	if !deliver {
		var se *harness.SMTPError
		if !errors.As(err, &se) || !se.Temporary() {
			t.Fatalf("%s, milter down: %v, want 4xx", label, err)
		}
		s.noDelivery(t, to)
		return
	}
	if err != nil {
		t.Fatalf("%s, milter down: %v", label, err)
	}
	m := s.sink.WaitFor(30*time.Second, harness.To(to))
	if m == nil {
		t.Fatalf("%s, milter down: not delivered", label)
	}
	if len(ourAuthResults(m)) != 0 || m.Get("Subject")[0] != "after the stop" {
		t.Errorf("unfiltered delivery expected:\n%s", m.Data)
	}
}

func reasons(line map[string]any) []string {
	var r []string
	if l, ok := line["reasons"].([]any); ok {
		for _, x := range l {
			r = append(r, fmt.Sprint(x))
		}
	}
	return r
}

func hasReason(line map[string]any, code string) bool {
	for _, r := range reasons(line) {
		if r == code {
			return true
		}
	}
	return false
}

func wantSMTPError(t *testing.T, err error, code int, enhanced, text string) {
	t.Helper()
	var se *harness.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want SMTP %d %s %s", err, code, enhanced, text)
	}
	if se.Code != code || se.Enhanced != enhanced || (text != "" && se.Text != text) {
		t.Errorf("got %d %s %q, want %d %s %q", se.Code, se.Enhanced, se.Text, code, enhanced, text)
	}
}

// ourAuthResults returns the Authentication-Results fields that claim our
// authserv-id.
func ourAuthResults(m *harness.Mail) []string {
	var ours []string
	for _, v := range m.Get("Authentication-Results") {
		id, _, _ := strings.Cut(v, ";")
		if f := strings.Fields(id); len(f) > 0 && strings.EqualFold(f[0], coreAuthservID) {
			ours = append(ours, v)
		}
	}
	return ours
}

// TestPostfixEnforce runs the enforce-mode cases on one shared stack; each
// subtest uses its own sender and recipient.
func TestPostfixEnforce(t *testing.T) {
	t.Parallel()
	s := startCoreStack(t, fmt.Sprintf(coreConfig, "enforce"), nil)

	t.Run("CleanMessageGetsAuthResultsOnTop", func(t *testing.T) {
		t.Parallel()
		const from, to = "alice@sender.e2e.test", "clean@remote.example"
		err := s.send(from, to, "hello",
			"Authentication-Results: "+coreAuthservID+"; spf=pass smtp.mailfrom=forged.example",
			// RFC 8601 §5: every instance claiming our id goes, whatever
			// its case, version or folding.
			"Authentication-Results: "+strings.ToUpper(coreAuthservID)+" 1;\r\n\tdkim=pass header.d=forged.example",
			"Authentication-Results: other.example; dkim=pass header.d=other.example")
		if err != nil {
			t.Fatal(err)
		}
		m := s.sink.WaitFor(30*time.Second, harness.To(to))
		if m == nil {
			t.Fatalf("not delivered; maillog:\n%s", s.pf.Log())
		}
		h := m.Header()
		if len(h) == 0 || !strings.EqualFold(h[0].Name, "Authentication-Results") {
			t.Fatalf("first header is not Authentication-Results:\n%s", m.Data)
		}
		if id, _, _ := strings.Cut(h[0].Value, ";"); strings.TrimSpace(id) != coreAuthservID {
			t.Errorf("first Authentication-Results is %q, want authserv-id %s", h[0].Value, coreAuthservID)
		}
		if ours := ourAuthResults(m); len(ours) != 1 || strings.Contains(ours[0], "forged.example") {
			t.Errorf("Authentication-Results with our id: %q; want exactly ours, the forged one removed", ours)
		}
		if all := m.Get("Authentication-Results"); len(all) != 2 || !strings.Contains(strings.Join(all, "\n"), "other.example; dkim=pass") {
			t.Errorf("another server's Authentication-Results must be kept: %q", all)
		}
		line := s.summary(t, from)
		if line["action"] != "accept" || line["queue_id"] == "" || line["queue_id"] == nil {
			t.Errorf("log line %v", line)
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
		e := s.pf.WaitHold(t, func(e harness.QueueEntry) bool { return e.Sender == from }, 20*time.Second)
		if len(e.Recipients) != 1 || e.Recipients[0].Address != to {
			t.Errorf("held entry %+v", e)
		}
		line := s.summary(t, from)
		if line["action"] != "quarantine" || !hasReason(line, "rule-hold-me") || line["queue_id"] != e.QueueID {
			t.Errorf("log line %v, want action quarantine, reason rule-hold-me, queue_id %s", line, e.QueueID)
		}
		// QUIRK(postfix): 3.7 logs "milter triggers HOLD action" and
		// drops the milter's reason text; our log line has the reason.
		s.pf.WaitLog(t, e.QueueID+": milter-hold", 5*time.Second)
		s.noDelivery(t, to)
	})

	t.Run("TempfailRuleGives4xx", func(t *testing.T) {
		t.Parallel()
		const from, to = "dave@sender.e2e.test", "later@remote.example"
		wantSMTPError(t, s.send(from, to, "TRY-LATER please"), 451, "4.7.1", "E2E policy says later")
		if line := s.summary(t, from); line["action"] != "tempfail" || !hasReason(line, "rule-later") {
			t.Errorf("log line %v", line)
		}
	})

	t.Run("SendmailCommandIsFiltered", func(t *testing.T) {
		t.Parallel()
		const from, to = "local@sender.e2e.test", "local@remote.example"
		if err := s.pf.Sendmail(t, []string{"-f", from, to}, coreMessage(from, to, "from the command line",
			"Authentication-Results: "+coreAuthservID+"; dkim=pass header.d=forged.example")); err != nil {
			t.Fatal(err)
		}
		m := s.sink.WaitFor(30*time.Second, harness.To(to))
		if m == nil {
			t.Fatalf("not delivered; maillog:\n%s", s.pf.Log())
		}
		if h := m.Header(); !strings.EqualFold(h[0].Name, "Authentication-Results") || len(ourAuthResults(m)) != 1 || strings.Contains(h[0].Value, "forged") {
			t.Errorf("sendmail copy not filtered (non_smtpd_milters):\n%s", m.Data)
		}
		if line := s.summary(t, from); line["action"] != "accept" {
			t.Errorf("log line %v", line)
		}

		// A rejecting rule on the sendmail path: the message is not
		// delivered, Postfix bounces it to the sender.
		const from2, to2 = "local2@sender.e2e.test", "local2@remote.example"
		if err := s.pf.Sendmail(t, []string{"-f", from2, to2}, []byte("Subject: x\n\nA forbidden phrase.\n")); err != nil {
			t.Fatal(err)
		}
		if line := s.summary(t, from2); line["action"] != "reject" || !hasReason(line, "rule-deny-body") {
			t.Errorf("log line %v", line)
		}
		s.pf.WaitLog(t, "milter-reject: END-OF-MESSAGE", 10*time.Second)
		bounce := s.sink.WaitFor(30*time.Second, harness.To(from2))
		if bounce == nil || bounce.From != "" {
			t.Errorf("want a bounce to %s from the null sender, got %v", from2, bounce)
		}
		s.noDelivery(t, to2)
	})
}

// TestPostfixMonitorMode: what enforce rejects is delivered, tagged, and
// logged with the would-be action.
func TestPostfixMonitorMode(t *testing.T) {
	t.Parallel()
	checkMonitorMode(t, startCoreStack(t, fmt.Sprintf(coreConfig, "monitor"), nil))
}

// checkBodyRuleRejects: a [[rule]] on the body text refuses the message
// at the end of DATA with our reply text.
func checkBodyRuleRejects(t *testing.T, s stack) {
	t.Helper()
	const from, to = "bob@sender.e2e.test", "body@remote.example"
	err := harness.SendSMTP(s.smtp, "client.e2e.test", from, []string{to},
		[]byte("From: <"+from+">\r\nSubject: nothing to see\r\n\r\nThis has a Forbidden Phrase in it.\r\n"))
	wantSMTPError(t, err, 550, "5.7.1", "E2E policy says no")
	if line := s.summary(t, from); !hasReason(line, "rule-deny-body") {
		t.Errorf("log line %v, want reason rule-deny-body", line)
	}
}

// checkMonitorMode sends what enforce mode rejects (a deny-listed sender)
// through a monitor-mode stack: delivered with our header, logged with the
// would-be action, nothing held.
func checkMonitorMode(t *testing.T, s stack) {
	t.Helper()
	const from, to = "spammer@bad.example", "monitored@remote.example"
	if err := s.send(from, to, "HOLD-ME too"); err != nil {
		t.Fatalf("monitor mode refused a message: %v", err)
	}
	m := s.sink.WaitFor(30*time.Second, harness.To(to))
	if m == nil {
		t.Fatalf("not delivered in monitor mode; MTA log:\n%s", s.mtaLog())
	}
	if len(ourAuthResults(m)) != 1 {
		t.Errorf("monitor mode must still add our Authentication-Results:\n%s", m.Data)
	}
	line := s.summary(t, from)
	if line["mode"] != "monitor" || line["action"] != "accept" || line["would_be"] != "reject" || !hasReason(line, "denylist-sender") {
		t.Errorf("log line %v, want mode monitor, action accept, would_be reject, reason denylist-sender", line)
	}
	if n := s.held(t); n != 0 {
		t.Errorf("monitor mode held %d message(s)", n)
	}
}

// TestPostfixMilterDown: with mailwarden stopped, Postfix applies
// milter_default_action: tempfail (our recommendation) answers 4xx,
// accept delivers unfiltered.
func TestPostfixMilterDown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		action  string
		deliver bool
	}{{"tempfail", false}, {"accept", true}} {
		t.Run(tc.action, func(t *testing.T) {
			t.Parallel()
			s := startCoreStack(t, fmt.Sprintf(coreConfig, "enforce"), map[string]string{"milter_default_action": tc.action})
			checkMilterDown(t, s, "down-"+tc.action+"@remote.example", tc.deliver, "milter_default_action="+tc.action)
		})
	}
}

// TestPostfixReload: SIGHUP with a broken config keeps the old rules (and
// logs why), SIGHUP with a valid one applies the new rules.
func TestPostfixReload(t *testing.T) {
	t.Parallel()
	const v1 = `
authserv_id = "` + coreAuthservID + `"
[replies]
reject = "550 5.7.1 E2E policy says no"
[[rule]]
name = "old-rule"
header = "Subject"
pattern = "OLD-RULE"
action = "reject"
`
	s := startCoreStack(t, v1, nil)
	send := func(n int, subject string) (string, error) {
		from := fmt.Sprintf("reload%d@sender.e2e.test", n)
		return from, s.send(from, fmt.Sprintf("reload%d@remote.example", n), subject)
	}
	_, err := send(1, "OLD-RULE")
	wantSMTPError(t, err, 550, "5.7.1", "E2E policy says no")

	// Broken: a TOML syntax error, and an unknown key in a valid file.
	for i, broken := range []string{
		v1 + "\n[[rule]\nname = \"x\"\n",
		strings.Replace(v1, "[[rule]]\nname", "[[rule]]\nnmae = \"typo\"\nname", 1) + "\n",
	} {
		refused, ok := s.mw.ReloadWait(t, broken, 10*time.Second)
		if ok {
			t.Fatalf("broken config %d was loaded: %v", i, refused)
		}
		if refused["line"] == nil && refused["error"] == nil {
			t.Errorf("broken config %d: refusal does not say why: %v", i, refused)
		}
		if i == 1 && fmt.Sprint(refused["key"]) != "rule.nmae" && !strings.Contains(fmt.Sprint(refused), "nmae") {
			t.Errorf("broken config %d: refusal does not name the key: %v", i, refused)
		}
		from, err := send(10+i, "OLD-RULE still")
		wantSMTPError(t, err, 550, "5.7.1", "E2E policy says no")
		if line := s.summary(t, from); !hasReason(line, "rule-old-rule") {
			t.Errorf("after a refused reload: log line %v", line)
		}
	}
	if ok, err := s.mw.Exited(); ok {
		t.Fatalf("mailwarden exited on a broken config: %v", err)
	}

	// Valid: the old rule is gone, a new one is in force.
	if line, ok := s.mw.ReloadWait(t, strings.NewReplacer("old-rule", "new-rule", "OLD-RULE", "NEW-RULE").Replace(v1), 10*time.Second); !ok {
		t.Fatalf("valid config refused: %v", line)
	}
	from, err := send(20, "OLD-RULE again")
	if err != nil {
		t.Errorf("old rule still applied after a valid reload: %v", err)
	} else if m := s.sink.WaitFor(30*time.Second, harness.To("reload20@remote.example")); m == nil {
		t.Errorf("not delivered after reload")
	}
	_ = from
	from, err = send(21, "NEW-RULE")
	wantSMTPError(t, err, 550, "5.7.1", "E2E policy says no")
	if line := s.summary(t, from); !hasReason(line, "rule-new-rule") {
		t.Errorf("after a valid reload: log line %v", line)
	}
}

// TestPostfixSocketInSpool is the README's Debian set-up: Postfix runs
// smtpd and cleanup chrooted in its queue directory, so the milter socket
// lives below it and main.cf names it relative to the queue directory
// (unix:mailwarden/milter.sock works chrooted or not); the socket belongs
// to the group postfix, mode 0660.
func TestPostfixSocketInSpool(t *testing.T) {
	t.Parallel()
	harness.Require(t, "postfix")
	harness.RequireRoot(t)
	grp, err := user.LookupGroup("postfix")
	if err != nil {
		harness.Unavailable(t, "no group postfix: %v", err)
	}
	sink := harness.StartSink(t)
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "unix:mailwarden/milter.sock", Relay: sink.Addr})
	dir := filepath.Join(pf.QueueDir, "mailwarden")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(grp.Gid)
	if err := os.Chown(dir, 0, gid); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "milter.sock")
	mw := harness.StartMailwarden(t, fmt.Sprintf(`
authserv_id = "%s"
[listen]
address = "unix:%s"
socket_mode = "0660"
socket_group = "postfix"
`, coreAuthservID, sock))
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || int(st.Gid) != gid {
		t.Errorf("socket mode %v gid %d, want 0660 and group postfix (%d)", fi.Mode().Perm(), st.Gid, gid)
	}
	const from, to = "spool@sender.e2e.test", "spool@remote.example"
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.e2e.test", from, []string{to}, coreMessage(from, to, "via the spool socket")); err != nil {
		t.Fatal(err)
	}
	m := sink.WaitFor(30*time.Second, harness.To(to))
	if m == nil || len(ourAuthResults(m)) != 1 {
		t.Fatalf("not delivered through the milter: %v\nmaillog:\n%s", m, pf.Log())
	}
	mw.WaitLog(t, harness.MessageFrom(from), 10*time.Second)
}

// TestPostfixExampleMainCF runs Postfix on the parameters of
// examples/postfix-main.cf (the milter address pointed at the test's
// daemon), so that the documented snippet cannot rot: every parameter must
// be known to Postfix, and mail must go through the milter both ways.
func TestPostfixExampleMainCF(t *testing.T) {
	t.Parallel()
	harness.Require(t, "postfix", "postconf")
	harness.RequireRoot(t)
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(root, "examples", "postfix-main.cf"))
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	for _, l := range strings.Split(string(text), "\n") {
		if l == "" || l[0] == '#' || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("examples/postfix-main.cf: not a parameter: %q", l)
		}
		params[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	for k, want := range map[string]string{"non_smtpd_milters": "$smtpd_milters", "milter_protocol": "6", "milter_default_action": "tempfail"} {
		if params[k] != want {
			t.Errorf("examples/postfix-main.cf: %s = %q, want %q", k, params[k], want)
		}
	}
	if !strings.HasPrefix(params["smtpd_milters"], "inet:127.0.0.1:8895") {
		t.Errorf("examples/postfix-main.cf: smtpd_milters = %q, want the default listen address", params["smtpd_milters"])
	}

	sink := harness.StartSink(t)
	mw := harness.StartMailwarden(t, fmt.Sprintf(coreConfig, "enforce"))
	params["smtpd_milters"] = mw.Addr()
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: mw.Addr(), Relay: sink.Addr, MainCF: params})
	out, err := exec.Command("postconf", "-c", pf.ConfigDir, "-n").CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning:") {
		t.Errorf("postconf -n: %v\n%s", err, out)
	}
	const from = "example@sender.e2e.test"
	if err := harness.SendSMTP(pf.SMTPAddr(), "client.e2e.test", from, []string{"ex1@remote.example"}, coreMessage(from, "ex1@remote.example", "smtp")); err != nil {
		t.Fatal(err)
	}
	if err := pf.Sendmail(t, []string{"-f", from, "ex2@remote.example"}, coreMessage(from, "ex2@remote.example", "sendmail")); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"ex1@remote.example", "ex2@remote.example"} {
		if m := sink.WaitFor(30*time.Second, harness.To(to)); m == nil || len(ourAuthResults(m)) != 1 {
			t.Errorf("%s: not delivered through the milter: %v", to, m)
		}
	}
	wantSMTPError(t, harness.SendSMTP(pf.SMTPAddr(), "client.e2e.test", "spammer@bad.example", []string{"ex3@remote.example"},
		coreMessage("spammer@bad.example", "ex3@remote.example", "x")), 550, "5.7.1", "E2E policy says no")
}

// TestPostfixHoldRelease: the README's release of a held message (issue
// 17.9), on a Postfix with the stock queue timers: `postsuper -H` alone
// leaves it in the deferred queue until the next queue run (5 min);
// with `postqueue -i` it is delivered now.
func TestPostfixHoldRelease(t *testing.T) {
	t.Parallel()
	s := startCoreStack(t, fmt.Sprintf(coreConfig, "enforce"), map[string]string{
		"queue_run_delay": "300s", "minimal_backoff_time": "300s", "maximal_backoff_time": "4000s"})
	const from, to = "release@sender.e2e.test", "release@remote.example"
	if err := s.send(from, to, "please HOLD-ME"); err != nil {
		t.Fatal(err)
	}
	e := s.pf.WaitHold(t, func(e harness.QueueEntry) bool { return e.Sender == from }, 20*time.Second)
	for _, argv := range [][]string{{"postsuper", "-c", s.pf.ConfigDir, "-H", e.QueueID}, {"postqueue", "-c", s.pf.ConfigDir, "-i", e.QueueID}} {
		bin, err := harness.LookPath(argv[0])
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	if m := s.sink.WaitFor(15*time.Second, harness.To(to)); m == nil {
		t.Errorf("released with postsuper -H and postqueue -i, not delivered within 15s\n%s", s.pf.Log())
	}
}
