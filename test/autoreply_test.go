package e2e_test

// Auto-replies, forwards and shared state (issue 6), end to end: the
// mailwarden binary as the milter of a private Postfix (smtpd_milters and
// non_smtpd_milters), replies submitted with `sendmail -t` as Sieve
// vacation does, a real redis-server shared by two daemons, and 200
// concurrent auto-replies driven through the milter protocol.

import (
	"bytes"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	milter "github.com/d--j/go-milter"

	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/test/harness"
)

// autoreplyConfig: example.org is ours; the thresholds are raised so that
// spam is tagged (X-Spam-Flag at add_header 5) and delivered, not held.
const autoreplyConfig = `
authserv_id = "mx.e2e.test"
local_domains = ["example.org"]
trusted_networks = ["127.0.0.0/8"]

[score]
add_header = 5.0
quarantine = 50.0
reject = 100.0

[store]
backend = "%s"
path = "%s"
redis_url = "%s"

[auth.spf]
enabled = false
[auth.dkim]
enabled = false
[auth.dmarc]
enabled = false

[srs]
secret = "e2e-srs-secret-0123456789"

[autoreply]
per_address = "%s"
%s
`

func arConfig(t *testing.T, backend, redisURL, perAddress, extra string) string {
	return fmt.Sprintf(autoreplyConfig, backend, filepath.Join(t.TempDir(), "state.db"), redisURL, perAddress, extra)
}

// withMessageID is the message file at path with its Message-ID replaced
// by <id>, in wire form.
func withMessageID(t *testing.T, path, id string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, body, err := message.ReadMessage(bytes.NewReader(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	kept := message.Header{{Name: "Message-ID", Value: " <" + id + ">"}}
	for _, f := range h {
		if !strings.EqualFold(f.Name, "Message-ID") {
			kept = append(kept, f)
		}
	}
	var b bytes.Buffer
	kept.WriteTo(&b)
	b.Write(body)
	return b.Bytes()
}

func arMessage(headers ...string) []byte {
	var b strings.Builder
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Date: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", time.Now().Format(time.RFC1123Z))
	b.WriteString("Hello,\r\nthis is an end-to-end test of auto-generated mail.\r\n")
	return []byte(b.String())
}

// sieveVacation is what Pigeonhole's vacation action submits.
func sieveVacation(user, to, inReplyTo string) []byte {
	return arMessage(
		"From: "+user, "To: <"+to+">", "Subject: Auto: your message",
		"Auto-Submitted: auto-replied (vacation)", "Precedence: bulk",
		"In-Reply-To: <"+inReplyTo+">", "References: <"+inReplyTo+">",
		fmt.Sprintf("Message-ID: <dovecot-sieve-%d@example.org>", time.Now().UnixNano()))
}

func arHasReason(l map[string]any, reason string) bool {
	rs, _ := l["reasons"].([]any)
	for _, r := range rs {
		if r == reason {
			return true
		}
	}
	return false
}

func logWith(field, value string) func(map[string]any) bool {
	return func(l map[string]any) bool {
		if l["msg"] != "message" {
			return false
		}
		switch v := l[field].(type) {
		case string:
			return strings.Contains(v, value)
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok && strings.Contains(s, value) {
					return true
				}
			}
		}
		return false
	}
}

func TestAutoreplyThroughPostfix(t *testing.T) {
	t.Parallel()
	sink := harness.StartSink(t)
	// The spam class comes from the real spam check: its Bayes store (the
	// daemon's bolt file) learns 250 ham and 250 spam of the corpus first,
	// and the inbound spam is a corpus message it never learned.
	text := arConfig(t, "bolt", "redis://127.0.0.1:1/0", "50/hour", "")
	cfg := filepath.Join(t.TempDir(), "learn.toml")
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	hamDir, spamDir := corpusSample(t, 250)
	if out, code := runMW(t, 2*time.Minute, "learn", "-config", cfg, "--spam", spamDir, "--ham", hamDir); code != 0 || !strings.Contains(out, "250 spam and 250 ham") {
		t.Fatalf("learn: exit %d: %s", code, out)
	}
	mw := harness.StartMailwarden(t, text)
	pf := harness.StartPostfix(t, harness.PostfixOptions{
		Milter: mw.Addr(),
		Relay:  sink.Addr,
		MainCF: map[string]string{
			// example.org is ours: accept it from outside (the sink plays
			// the mailbox server), including SRS0 bounce addresses.
			"relay_domains":            "example.org",
			"smtpd_relay_restrictions": "permit_mynetworks, permit_auth_destination, reject",
		},
	})
	inbound := func(from, rcpt string, data []byte) error {
		return harness.Submission{Helo: "mx.remote.test", From: from, Rcpts: []string{rcpt}, Data: data,
			XClient: "ADDR=198.51.100.7 NAME=mx.remote.test"}.Send(pf.SMTPAddr())
	}

	// 1. Inbound spam is delivered with the spam header.
	if err := inbound("bob@remote.test", "alice@example.org", withMessageID(t, heldOutSpam(t), "spam-e2e-1@remote.test")); err != nil {
		t.Fatal(err)
	}
	m := sink.WaitFor(30*time.Second, harness.To("alice@example.org"))
	if m == nil {
		t.Fatal("inbound spam not delivered")
	}
	if f := m.Get("X-Spam-Flag"); len(f) == 0 || !strings.Contains(f[0], "YES") {
		t.Fatalf("inbound spam without X-Spam-Flag: %v", m.Get("X-Spam-Status"))
	}
	if st := m.Get("X-Spam-Status"); len(st) == 0 || !strings.Contains(st[0], "spam-bayes") {
		t.Fatalf("the spam check's Bayes signal did not classify it: %v", st)
	}

	// 2. A Sieve-style vacation reply to it, through sendmail -t with a null
	// sender (non_smtpd_milters), is discarded.
	if err := pf.Sendmail(t, []string{"-t", "-f", "<>"}, sieveVacation("Alice <alice@example.org>", "bob@remote.test", "spam-e2e-1@remote.test")); err != nil {
		t.Fatal(err)
	}
	l := mw.WaitLog(t, logWith("reasons", "autoreply-spam"), 30*time.Second)
	if l["action"] != "discard" {
		t.Fatalf("vacation to spam: %v", l)
	}

	// 3. A reply to ham passes once; the second within 7 days is discarded.
	for i := 1; i <= 2; i++ {
		id := fmt.Sprintf("ham-e2e-%d@remote.test", i)
		if err := inbound("carol@remote.test", "alice@example.org", arMessage("From: Carol <carol@remote.test>", "To: alice@example.org",
			"Subject: lunch?", "Message-ID: <"+id+">")); err != nil {
			t.Fatal(err)
		}
		if sink.WaitFor(30*time.Second, harness.To("alice@example.org")) == nil {
			t.Fatalf("ham %d not delivered", i)
		}
		if err := pf.Sendmail(t, []string{"-t", "-f", "<>"}, sieveVacation("Alice <alice@example.org>", "carol@remote.test", id)); err != nil {
			t.Fatal(err)
		}
	}
	reply := sink.WaitFor(30*time.Second, harness.To("carol@remote.test"))
	if reply == nil {
		t.Fatal("first vacation reply to ham not delivered")
	}
	if reply.From != "" {
		t.Fatalf("vacation reply left with sender %q, want the null sender", reply.From)
	}
	l = mw.WaitLog(t, logWith("reasons", "autoreply-limited"), 30*time.Second)
	if l["action"] != "discard" {
		t.Fatalf("second vacation reply: %v", l)
	}
	if extra := sink.WaitFor(3*time.Second, harness.To("carol@remote.test")); extra != nil {
		t.Fatalf("second vacation reply delivered: %s", extra.Data)
	}
	// Bob got nothing: the vacation to spam was discarded.
	if m := sink.WaitFor(time.Second, harness.To("bob@remote.test")); m != nil {
		t.Fatalf("vacation to spam delivered: %s", m.Data)
	}

	// 4. A forward with a foreign envelope sender leaves with an SRS sender.
	if err := pf.Sendmail(t, []string{"-f", "dave@remote.test", "alice@elsewhere.test"}, arMessage(
		"Resent-From: alice@example.org", "Resent-To: alice@elsewhere.test",
		fmt.Sprintf("Resent-Message-ID: <resent-%d@example.org>", time.Now().UnixNano()),
		"From: Dave <dave@remote.test>", "To: alice@example.org", "Subject: project", "Message-ID: <fw-e2e-1@remote.test>")); err != nil {
		t.Fatal(err)
	}
	fw := sink.WaitFor(30*time.Second, harness.To("alice@elsewhere.test"))
	if fw == nil {
		t.Fatal("forward not delivered")
	}
	if !strings.HasPrefix(fw.From, "SRS0=") || !strings.HasSuffix(fw.From, "=remote.test=dave@example.org") {
		t.Fatalf("forward left with sender %q, want SRS0=...=remote.test=dave@example.org", fw.From)
	}

	// 5. A bounce to that SRS address comes back to the original sender.
	if err := inbound("", fw.From, arMessage("From: MAILER-DAEMON@elsewhere.test", "To: "+fw.From,
		"Subject: Undelivered Mail Returned to Sender", "Message-ID: <bounce-e2e-1@elsewhere.test>")); err != nil {
		t.Fatal(err)
	}
	b := sink.WaitFor(30*time.Second, harness.To("dave@remote.test"))
	if b == nil {
		t.Fatal("bounce to the SRS address not delivered to the original sender")
	}
	if b.From != "" || len(b.To) != 1 {
		t.Fatalf("bounce: from %q to %v", b.From, b.To)
	}
	// A forged SRS address is refused at RCPT.
	forged := strings.Replace(fw.From, "=dave@", "=eve@", 1)
	err := inbound("", forged, arMessage("From: MAILER-DAEMON@elsewhere.test", "Subject: forged"))
	if se, ok := err.(*harness.SMTPError); !ok || se.Code != 550 || se.Stage != "RCPT" {
		t.Fatalf("forged SRS bounce: %v", err)
	}
}

// milterAutoReply sends one auto-reply through the milter protocol and
// returns whether it was accepted (not discarded, rejected or deferred).
func milterAutoReply(c *milter.Client, from, to, auth string) (bool, error) {
	macros := milter.NewMacroBag()
	s, err := c.Session(macros)
	if err != nil {
		return false, err
	}
	defer s.Close()
	step := func(a *milter.Action, err error) (bool, error) {
		if err != nil {
			return false, err
		}
		return a.Type == milter.ActionContinue || a.Type == milter.ActionAccept, nil
	}
	if ok, err := step(s.Conn("localhost", milter.FamilyInet, 40000, "127.0.0.1")); !ok {
		return false, err
	}
	if ok, err := step(s.Helo("localhost")); !ok {
		return false, err
	}
	if auth != "" {
		macros.Set(milter.MacroAuthAuthen, auth)
	}
	if ok, err := step(s.Mail("<"+from+">", "")); !ok {
		return false, err
	}
	if ok, err := step(s.Rcpt("<"+to+">", "")); !ok {
		return false, err
	}
	if ok, err := step(s.DataStart()); !ok {
		return false, err
	}
	h := textproto.MIMEHeader{}
	hdr := []string{
		"From", from, "To", to, "Subject", "Automatic reply: hello",
		"Auto-Submitted", "auto-replied", "X-Autoreply", "yes",
		"Message-ID", fmt.Sprintf("<auto-%d-%s>", time.Now().UnixNano(), from),
		"Date", time.Now().Format(time.RFC1123Z),
	}
	for i := 0; i < len(hdr); i += 2 {
		if ok, err := step(s.HeaderField(hdr[i], hdr[i+1], nil)); !ok {
			return false, err
		}
		h.Add(hdr[i], hdr[i+1])
	}
	if ok, err := step(s.HeaderEnd()); !ok {
		return false, err
	}
	_, act, err := s.BodyReadFrom(strings.NewReader("I am away.\r\n"))
	if err != nil {
		return false, err
	}
	return act.Type == milter.ActionAccept || act.Type == milter.ActionContinue, nil
}

func milterClient(addr string) *milter.Client {
	network, address := "tcp", strings.TrimPrefix(addr, "inet:")
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", p
	}
	return milter.NewClient(network, address, milter.WithReadTimeout(60*time.Second), milter.WithWriteTimeout(60*time.Second))
}

// TestAutoreplyConcurrentFlood: 200 auto-replies from 200 local users to
// one address at once, through the daemon's milter socket: exactly
// per_address pass.
func TestAutoreplyConcurrentFlood(t *testing.T) {
	t.Parallel()
	mw := harness.StartMailwarden(t, arConfig(t, "bolt", "redis://127.0.0.1:1/0", "7/hour", ""))
	c := milterClient(mw.Addr())
	var pass, fail atomic.Int32
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ok, err := milterAutoReply(c, fmt.Sprintf("user%d@example.org", i), "target@remote.test", "")
			switch {
			case err != nil:
				t.Errorf("reply %d: %v", i, err)
			case ok:
				pass.Add(1)
			default:
				fail.Add(1)
			}
		}()
	}
	wg.Wait()
	if pass.Load() != 7 || fail.Load() != 193 {
		t.Fatalf("%d passed, %d stopped; want exactly 7 and 193", pass.Load(), fail.Load())
	}
	// The log is read asynchronously: wait for the last lines.
	n := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n = 0
		for _, l := range mw.Logs() {
			if l["msg"] == "message" && l["action"] == "discard" && arHasReason(l, "autoreply-limited") {
				n++
			}
		}
		if n >= 193 || time.Now().After(deadline) {
			break
		}
	}
	if n != 193 {
		t.Fatalf("%d log lines with autoreply-limited, want 193", n)
	}
}

// TestSharedRedisOneLimit: two daemons sharing one Redis enforce one
// combined [[limit]] and one combined auto-reply rate.
func TestSharedRedisOneLimit(t *testing.T) {
	t.Parallel()
	addr := harness.StartRedis(t)
	url := "redis://" + addr + "/0"
	limit := `
[[limit]]
name = "per-user"
key = "sasl_user"
rate = "10/hour"
`
	a := harness.StartMailwarden(t, arConfig(t, "redis", url, "4/hour", limit))
	b := harness.StartMailwarden(t, arConfig(t, "redis", url, "4/hour", limit))
	clients := []*milter.Client{milterClient(a.Addr()), milterClient(b.Addr())}

	// [[limit]]: 30 authenticated messages by one user, alternating daemons,
	// concurrently. Not auto-replies: plain mail.
	var pass atomic.Int32
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := milterPlain(clients[i%2], "mallory@example.org", fmt.Sprintf("victim%d@remote.test", i), "mallory")
			if err != nil {
				t.Error(err)
			}
			if ok {
				pass.Add(1)
			}
		}()
	}
	wg.Wait()
	if pass.Load() != 10 {
		t.Fatalf("two daemons let %d of 30 through a 10/hour limit, want exactly 10", pass.Load())
	}
	for _, d := range []*harness.Daemon{a, b} {
		if l := d.WaitLog(t, logWith("reasons", "limit-per-user"), 10*time.Second); l["action"] != "tempfail" {
			t.Fatalf("over the limit: %v", l)
		}
	}

	// Auto-replies to one address: 4 in total across both daemons.
	pass.Store(0)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := milterAutoReply(clients[i%2], fmt.Sprintf("u%d@example.org", i), "target@remote.test", "")
			if err != nil {
				t.Error(err)
			}
			if ok {
				pass.Add(1)
			}
		}()
	}
	wg.Wait()
	if pass.Load() != 4 {
		t.Fatalf("two daemons let %d auto-replies through per_address 4/hour, want exactly 4", pass.Load())
	}
}

// milterPlain sends an ordinary authenticated message through the milter.
func milterPlain(c *milter.Client, from, to, auth string) (bool, error) {
	macros := milter.NewMacroBag()
	s, err := c.Session(macros)
	if err != nil {
		return false, err
	}
	defer s.Close()
	if _, err := s.Conn("client.remote.test", milter.FamilyInet, 40000, "203.0.113.50"); err != nil {
		return false, err
	}
	if _, err := s.Helo("client.remote.test"); err != nil {
		return false, err
	}
	macros.Set(milter.MacroAuthAuthen, auth)
	if _, err := s.Mail("<"+from+">", ""); err != nil {
		return false, err
	}
	if _, err := s.Rcpt("<"+to+">", ""); err != nil {
		return false, err
	}
	if _, err := s.DataStart(); err != nil {
		return false, err
	}
	for _, kv := range [][2]string{{"From", from}, {"To", to}, {"Subject", "hello"}, {"Date", time.Now().Format(time.RFC1123Z)},
		{"Message-ID", fmt.Sprintf("<plain-%d@example.org>", time.Now().UnixNano())}} {
		if _, err := s.HeaderField(kv[0], kv[1], nil); err != nil {
			return false, err
		}
	}
	if _, err := s.HeaderEnd(); err != nil {
		return false, err
	}
	_, act, err := s.BodyReadFrom(strings.NewReader("hello\r\n"))
	if err != nil {
		return false, err
	}
	return act.Type == milter.ActionAccept || act.Type == milter.ActionContinue, nil
}
