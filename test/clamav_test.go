package e2e_test

// ClamAV end-to-end suite (issue 4): the mailwarden binary with only the
// virus check, scanning through a real private clamd (harness.StartClamd:
// a database of one sigtool --md5 signature of eicar.txt and one .ndb
// body signature), driven over the milter protocol the way Postfix does it
// (go-milter's client) and once through a real Postfix.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"github.com/mailwarden/mailwarden/clamav"
	"github.com/mailwarden/mailwarden/clamav/clamdtest"
	"github.com/mailwarden/mailwarden/test/harness"
)

func sharedFile(t *testing.T, rel string) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(root, "..", "shared", rel), filepath.Join("/work/shared", rel)} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	harness.Unavailable(t, "shared/%s not found", rel)
	return ""
}

func readShared(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(sharedFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// virusConfig enables only the virus check against the given clamd
// addresses.
func virusConfig(timeout, onOversize string, maxLen string, addrs ...string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf(`
authserv_id = "mx.e2e.test"
local_domains = ["e2e.test"]

[lists]
allow_senders = ["friend@allowed.example"]

# Checks that keep state must not need /var/lib/mailwarden here.
[store]
backend = "memory"

[virus]
enabled = true
timeout = %q
on_oversize = %q

[[clamav.server]]
name = "e2e"
addresses = [%s]
stream_max_length = %q
`, timeout, onOversize, strings.Join(q, ", "), maxLen)
}

// mimeMessage is a multipart message with one attachment.
func mimeMessage(from, subject, filename, ctype string, content []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <user@e2e.test>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@e2e.test>\r\n", from, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nPlease see the attachment.\r\n")
	fmt.Fprintf(&b, "--b1\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", ctype, filename, filename)
	enc := base64.StdEncoding.EncodeToString(content)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b1--\r\n")
	return b.Bytes()
}

// lastBytesMessage ends with the EICAR string: no line break after it.
// The body is padded so that the string straddles the client library's
// 1 KB chunks, the last one short (where v1.0.1 dropped data read together
// with io.EOF).
func lastBytesMessage(from string, eicar []byte) []byte {
	head := fmt.Sprintf("From: <%s>\r\nTo: <user@e2e.test>\r\nSubject: tail\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n", from)
	pad := strings.Repeat("padding line of text, nothing to see here...\r\n", 60)
	return []byte(head + pad + string(eicar))
}

type milterResult struct {
	act  *milter.Action
	mods []milter.ModifyAction
	took time.Duration
}

func (r milterResult) header(name string) (string, bool) {
	for _, m := range r.mods {
		if (m.Type == milter.ActionAddHeader || m.Type == milter.ActionInsertHeader) && strings.EqualFold(m.HeaderName, name) {
			return strings.TrimSpace(m.HeaderValue), true
		}
	}
	return "", false
}

func (r milterResult) quarantined() bool {
	for _, m := range r.mods {
		if m.Type == milter.ActionQuarantine {
			return true
		}
	}
	return false
}

// sendMilter replays one SMTP transaction to the milter at addr as Postfix
// does (leading space of header values kept, CRLF body).
func sendMilter(t *testing.T, addr, from string, msg []byte) milterResult {
	t.Helper()
	network, address := "unix", strings.TrimPrefix(addr, "unix:")
	if !strings.HasPrefix(addr, "unix:") {
		network, address = "tcp", strings.TrimPrefix(addr, "inet:")
	}
	msg = bytes.ReplaceAll(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	head, body, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("message without header/body separator")
	}
	cl := milter.NewClient(network, address, milter.WithReadTimeout(60*time.Second), milter.WithWriteTimeout(60*time.Second),
		milter.WithActions(milter.AllClientSupportedActionMasks), milter.WithProtocols(0))
	macros := milter.NewMacroBag()
	macros.Set(milter.MacroMTAFQDN, "mx.e2e.test")
	macros.Set(milter.MacroQueueId, fmt.Sprintf("E2E%d", time.Now().UnixNano()%1e9))
	s, err := cl.Session(macros)
	if err != nil {
		t.Fatalf("milter session: %v", err)
	}
	defer s.Close()
	start := time.Now()
	step := func(a *milter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("milter: %v", err)
		}
		if a.Type != milter.ActionContinue && a.Type != milter.ActionAccept {
			t.Fatalf("milter answered %+v before end of message", a)
		}
	}
	step(s.Conn("client.e2e.test", milter.FamilyInet, 40000, "192.0.2.10"))
	step(s.Helo("client.e2e.test"))
	step(s.Mail("<"+from+">", ""))
	step(s.Rcpt("<user@e2e.test>", ""))
	step(s.DataStart())
	var name, value string
	flush := func() {
		if name != "" {
			step(s.HeaderField(name, value, nil))
		}
	}
	for _, line := range strings.Split(string(head), "\r\n") {
		if line != "" && (line[0] == ' ' || line[0] == '\t') {
			value += "\n" + line
			continue
		}
		flush()
		n, v, _ := strings.Cut(line, ":")
		name, value = n, v
	}
	flush()
	step(s.HeaderEnd())
	mods, act, err := s.BodyReadFrom(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("milter end of message: %v", err)
	}
	return milterResult{act: act, mods: mods, took: time.Since(start)}
}

func wantReject(t *testing.T, r milterResult, code uint16, text string) {
	t.Helper()
	if r.act.Type != milter.ActionRejectWithCode || r.act.SMTPCode != code || !strings.Contains(r.act.SMTPReply, text) {
		t.Fatalf("got %+v, want %d ... %s", r.act, code, text)
	}
}

func wantAccept(t *testing.T, r milterResult, status string) {
	t.Helper()
	if r.act.StopProcessing() || r.act.Type == milter.ActionDiscard || r.quarantined() {
		t.Fatalf("got %+v (quarantine %v), want accept", r.act, r.quarantined())
	}
	if got, ok := r.header("X-Virus-Status"); !ok || got != status {
		t.Fatalf("X-Virus-Status %q (present %v), want %q; mods %+v", got, ok, status, r.mods)
	}
	if got, _ := r.header("X-Virus-Scanned"); !strings.Contains(got, "clamav:e2e") {
		t.Fatalf("X-Virus-Scanned = %q", got)
	}
}

// virusLog waits for the summary line of the message from and checks its
// virus status and reasons.
func virusLog(t *testing.T, d *harness.Daemon, from, status, reason string) map[string]any {
	t.Helper()
	line := d.WaitLog(t, harness.MessageFrom(from), 20*time.Second)
	checks, _ := line["checks"].(map[string]any)
	v, _ := checks["virus"].(map[string]any)
	if v == nil || v["status"] != status {
		t.Fatalf("virus check status in %v, want %s", line, status)
	}
	if reason != "" && !hasReason(line, reason) {
		t.Fatalf("reasons %v lack %s", line["reasons"], reason)
	}
	return line
}

func TestClamAVMilter(t *testing.T) {
	cd := harness.StartClamd(t, harness.ClamdOptions{StreamMaxLength: 1 << 20})
	eicar := readShared(t, "conformance/clamav/eicar.txt")
	d := harness.StartMailwarden(t, virusConfig("10s", "quarantine", "1MB", cd.UnixAddr(), cd.TCP()))

	t.Run("ping-version", func(t *testing.T) {
		for _, a := range []string{cd.UnixAddr(), cd.TCP()} {
			srv, err := clamav.ParseServer(a)
			if err != nil {
				t.Fatal(err)
			}
			c, err := clamav.New(clamav.Options{Servers: []clamav.Server{srv}, StreamMaxLength: cd.StreamMaxLength})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Ping(context.Background()); err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			v, err := c.Version(context.Background())
			if err != nil || !strings.HasPrefix(v, "ClamAV ") {
				t.Fatalf("%s: VERSION %q %v", a, v, err)
			}
			// The exact EICAR file, straddling nothing: the hash signature.
			res, err := c.ScanReader(context.Background(), bytes.NewReader(eicar), int64(len(eicar)))
			if err != nil || !res.Infected || (res.Signature != cd.HashSignature && res.Signature != cd.BodySignature) {
				t.Fatalf("%s: eicar.txt: %+v %v", a, res, err)
			}
		}
	})
	t.Run("base64-attachment", func(t *testing.T) {
		r := sendMilter(t, d.Addr(), "a1@sender.example", mimeMessage("a1@sender.example", "invoice", "eicar.com", "application/octet-stream", eicar))
		wantReject(t, r, 554, "5.7.1 Message contains malware")
		if strings.Contains(r.act.SMTPReply, "EICAR") || strings.Contains(r.act.SMTPReply, "eicar") {
			t.Errorf("signature leaked into the reply: %q", r.act.SMTPReply)
		}
		virusLog(t, d, "a1@sender.example", "infected", "virus-infected")
		found := d.WaitLog(t, func(m map[string]any) bool { return m["msg"] == "virus found" }, 5*time.Second)
		if sig, _ := found["signature"].(string); sig != cd.BodySignature && sig != cd.HashSignature {
			t.Errorf("logged signature %q", sig)
		}
	})
	t.Run("zip-attachment", func(t *testing.T) {
		zip := readShared(t, "conformance/clamav/eicar.zip")
		r := sendMilter(t, d.Addr(), "a2@sender.example", mimeMessage("a2@sender.example", "zip", "docs.zip", "application/zip", zip))
		wantReject(t, r, 554, "5.7.1")
		virusLog(t, d, "a2@sender.example", "infected", "virus-infected")
	})
	t.Run("last-bytes", func(t *testing.T) {
		r := sendMilter(t, d.Addr(), "a3@sender.example", lastBytesMessage("a3@sender.example", eicar))
		wantReject(t, r, 554, "5.7.1")
		virusLog(t, d, "a3@sender.example", "infected", "virus-infected")
	})
	t.Run("allowlisted-sender-still-rejected", func(t *testing.T) {
		r := sendMilter(t, d.Addr(), "friend@allowed.example", mimeMessage("friend@allowed.example", "hi", "e.com", "application/octet-stream", eicar))
		wantReject(t, r, 554, "5.7.1")
	})
	t.Run("clean-corpus", func(t *testing.T) {
		dir := sharedFile(t, "corpus/spamassassin/ham")
		files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		if err != nil || len(files) < 5 {
			t.Fatalf("corpus: %v (%d files)", err, len(files))
		}
		sort.Strings(files)
		for i, f := range files[:5] {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			from := fmt.Sprintf("ham%d@sender.example", i)
			r := sendMilter(t, d.Addr(), from, b)
			wantAccept(t, r, "Clean")
			virusLog(t, d, from, "clean", "")
		}
	})
	t.Run("forged-status-removed", func(t *testing.T) {
		msg := []byte("From: <f@sender.example>\r\nX-Virus-Status: Clean\r\nSubject: forged\r\n\r\n" + string(eicar) + "\r\n")
		r := sendMilter(t, d.Addr(), "f@sender.example", msg)
		wantReject(t, r, 554, "5.7.1")
		msg = []byte("From: <g@sender.example>\r\nX-Virus-Status: Infected (nothing)\r\nSubject: forged\r\n\r\nhello\r\n")
		r = sendMilter(t, d.Addr(), "g@sender.example", msg)
		deleted := false
		for _, m := range r.mods {
			if m.Type == milter.ActionChangeHeader && strings.EqualFold(m.HeaderName, "X-Virus-Status") && m.HeaderValue == "" {
				deleted = true
			}
		}
		if !deleted {
			t.Fatalf("forged X-Virus-Status not deleted: %+v", r.mods)
		}
	})
	t.Run("oversize", func(t *testing.T) {
		// 4 MB (3 MB base64-encoded) > stream_max_length = clamd's
		// StreamMaxLength = 1 MB: on_oversize = "quarantine" here.
		big := mimeMessage("big@sender.example", "big", "big.bin", "application/octet-stream", bytes.Repeat([]byte("0123456789abcdef"), 3<<16))
		r := sendMilter(t, d.Addr(), "big@sender.example", big)
		if !r.quarantined() || r.act.StopProcessing() {
			t.Fatalf("oversize: %+v quarantined=%v, want quarantine", r.act, r.quarantined())
		}
		if got, _ := r.header("X-Virus-Status"); got != "Unscanned (oversize)" {
			t.Fatalf("X-Virus-Status %q", got)
		}
		virusLog(t, d, "big@sender.example", "oversize", "virus-oversize")
	})
	t.Run("limit-mismatch", func(t *testing.T) {
		// stream_max_length above clamd's real limit: clamd cuts the
		// stream; that is an error (tempfail), and the log says why.
		d2 := harness.StartMailwarden(t, virusConfig("10s", "quarantine", "25MB", cd.UnixAddr()))
		big := mimeMessage("mm@sender.example", "big", "big.bin", "application/octet-stream", bytes.Repeat([]byte("0123456789abcdef"), 3<<16))
		r := sendMilter(t, d2.Addr(), "mm@sender.example", big)
		if r.act.SMTPCode != 451 {
			t.Fatalf("got %+v, want 451", r.act)
		}
		virusLog(t, d2, "mm@sender.example", "error", "virus-error")
		line := d2.WaitLog(t, harness.MsgIs("virus scan failed"), 5*time.Second)
		if e, _ := line["error"].(string); !strings.Contains(e, "StreamMaxLength") {
			t.Errorf("the log does not point at StreamMaxLength: %q", e)
		}
	})
	t.Run("clamd-stopped", func(t *testing.T) {
		cd.Stop()
		r := sendMilter(t, d.Addr(), "down@sender.example", mimeMessage("down@sender.example", "x", "a.txt", "text/plain", []byte("hello")))
		if r.act.Type != milter.ActionRejectWithCode || r.act.SMTPCode/100 != 4 {
			t.Fatalf("clamd down: %+v, want a 4xx", r.act)
		}
		virusLog(t, d, "down@sender.example", "error", "virus-error")
		d.WaitLog(t, func(m map[string]any) bool { return m["msg"] == "virus scan failed" }, 5*time.Second)
	})
}

// A clamd that accepts and never answers: the message is tempfailed when
// the configured timeout passes, not minutes later.
func TestClamAVStalledServer(t *testing.T) {
	fake := clamdtest.Start(t, clamdtest.Options{Stall: true})
	d := harness.StartMailwarden(t, virusConfig("2s", "reject", "25MB", fake.Addr()))
	r := sendMilter(t, d.Addr(), "stall@sender.example", []byte("From: <stall@sender.example>\r\nSubject: s\r\n\r\nhello\r\n"))
	if r.act.Type != milter.ActionRejectWithCode || r.act.SMTPCode != 451 {
		t.Fatalf("stalled clamd: %+v, want 451", r.act)
	}
	if r.took < 1500*time.Millisecond || r.took > 4*time.Second {
		t.Fatalf("tempfail after %v, want about the 2s timeout", r.took)
	}
	if fake.Scans() != 1 {
		t.Fatalf("fake clamd saw %d scans", fake.Scans())
	}
	virusLog(t, d, "stall@sender.example", "error", "virus-error")
}

// Once through a real Postfix: malware refused at end of DATA with 554,
// clean mail relayed with the header, clamd down → 451 (the sender's MTA
// retries).
func TestClamAVPostfix(t *testing.T) {
	harness.Require(t, "postfix")
	harness.RequireRoot(t)
	cd := harness.StartClamd(t, harness.ClamdOptions{})
	eicar := readShared(t, "conformance/clamav/eicar.txt")
	sink := harness.StartSink(t)
	d := harness.StartMailwarden(t, virusConfig("10s", "reject", "25MB", cd.UnixAddr()))
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: d.Addr(), Relay: sink.Addr})

	send := func(from string, msg []byte) error {
		return harness.SendSMTP(pf.SMTPAddr(), "client.e2e.test", from, []string{"user@e2e.test"}, msg)
	}
	err := send("pv1@sender.example", mimeMessage("pv1@sender.example", "invoice", "eicar.com", "application/octet-stream", eicar))
	wantSMTPError(t, err, 554, "5.7.1", "")
	err = send("pv2@sender.example", mimeMessage("pv2@sender.example", "zip", "docs.zip", "application/zip", readShared(t, "conformance/clamav/eicar.zip")))
	wantSMTPError(t, err, 554, "5.7.1", "")
	err = send("pv3@sender.example", lastBytesMessage("pv3@sender.example", eicar))
	wantSMTPError(t, err, 554, "5.7.1", "")

	if err := send("pc@sender.example", coreMessage("pc@sender.example", "user@e2e.test", "clean")); err != nil {
		t.Fatalf("clean message: %v", err)
	}
	m := sink.Wait(t, 20*time.Second)
	if got := m.Get("X-Virus-Status"); len(got) != 1 || got[0] != "Clean" {
		t.Fatalf("delivered X-Virus-Status %v\n%s", got, m.Data)
	}
	if got := m.Get("X-Virus-Scanned"); len(got) != 1 || !strings.Contains(got[0], "clamav:e2e") {
		t.Fatalf("delivered X-Virus-Scanned %v", got)
	}

	cd.Stop()
	err = send("pd@sender.example", coreMessage("pd@sender.example", "user@e2e.test", "clamd down"))
	var se *harness.SMTPError
	if !errors.As(err, &se) || se.Code/100 != 4 {
		t.Fatalf("clamd down: %v, want 4xx", err)
	}
	virusLog(t, d, "pd@sender.example", "error", "virus-error")
}
