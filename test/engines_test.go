package e2e_test

// A second anti-virus engine over ICAP (issue 18): the mailwarden binary
// with a real clamd (only the sigtool --md5 hash of eicar.txt) and a real
// c-icap whose virus_scan service asks its own clamd (only the EICAR body
// signature), over the milter protocol and once through a real Postfix.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"
	"github.com/mailwarden/mailwarden/test/harness"
)

// enginesConfig: clamd first, then c-icap, with require/min_engines and the
// ICAP engine's max_size.
func enginesConfig(clamd, icapURL, require string, minEngines int, icapMax string) string {
	return fmt.Sprintf(`
authserv_id = "mx.e2e.test"
local_domains = ["e2e.test"]

[store]
backend = "memory"

[virus]
enabled = true
timeout = "20s"
on_oversize = "reject"
require = %q
min_engines = %d

[[virus.engine]]
type = "clamd"
name = "local"
addresses = [%q]

[[virus.engine]]
type = "icap"
name = "cicap"
addresses = [%q]
max_size = %q
`, require, minEngines, clamd, icapURL, icapMax)
}

// embeddedMessage carries the EICAR string inside other text: the body
// signature matches it, the hash of eicar.txt does not.
func embeddedMessage(from string, eicar []byte) []byte {
	return []byte(fmt.Sprintf("From: <%s>\r\nTo: <user@e2e.test>\r\nSubject: embedded\r\nMessage-ID: <%d@e2e.test>\r\n\r\nSome text before.\r\n%s\r\nSome text after.\r\n",
		from, time.Now().UnixNano(), strings.TrimSpace(string(eicar))))
}

func virusFound(t *testing.T, d *harness.Daemon, from string) map[string]any {
	t.Helper()
	return d.WaitLog(t, func(m map[string]any) bool {
		rcpts := fmt.Sprint(m["from"])
		return m["msg"] == "virus found" && strings.Contains(rcpts, from)
	}, 10*time.Second)
}

func TestVirusEnginesMilter(t *testing.T) {
	cd := harness.StartClamd(t, harness.ClamdOptions{Signatures: harness.SignaturesHash})
	ci := harness.StartCICAP(t, harness.CICAPOptions{MaxObjectSize: 256 << 10})
	eicar := readShared(t, "conformance/clamav/eicar.txt")
	d := harness.StartMailwarden(t, enginesConfig(cd.UnixAddr(), ci.URL(), "all", 1, "25MB"))
	both := "mailwarden (clamd:local, icap:cicap) on mx.e2e.test"

	t.Run("clean", func(t *testing.T) {
		r := sendMilter(t, d.Addr(), "c1@sender.example", coreMessage("c1@sender.example", "user@e2e.test", "clean"))
		if r.act.StopProcessing() {
			t.Fatalf("clean: %+v", r.act)
		}
		if got, _ := r.header("X-Virus-Scanned"); got != both {
			t.Errorf("X-Virus-Scanned %q, want %q", got, both)
		}
		if got, _ := r.header("X-Virus-Status"); got != "Clean" {
			t.Errorf("X-Virus-Status %q", got)
		}
		virusLog(t, d, "c1@sender.example", "clean", "")
	})
	t.Run("attachment-found-by-clamd", func(t *testing.T) {
		r := sendMilter(t, d.Addr(), "a1@sender.example", mimeMessage("a1@sender.example", "invoice", "eicar.com", "application/octet-stream", eicar))
		wantReject(t, r, 554, "5.7.1")
		// Both engines find it; the first engine's find is reported.
		f := virusFound(t, d, "a1@sender.example")
		if f["scanner"] != "clamd:local" || f["signature"] != cd.HashSignature {
			t.Errorf("attributed to %v %v, want clamd:local %s", f["scanner"], f["signature"], cd.HashSignature)
		}
	})
	t.Run("embedded-found-only-by-icap", func(t *testing.T) {
		r := sendMilter(t, d.Addr(), "e1@sender.example", embeddedMessage("e1@sender.example", eicar))
		wantReject(t, r, 554, "5.7.1")
		f := virusFound(t, d, "e1@sender.example")
		if f["scanner"] != "icap:cicap" || f["signature"] != ci.Clamd.BodySignature {
			t.Errorf("attributed to %v %v, want icap:cicap %s", f["scanner"], f["signature"], ci.Clamd.BodySignature)
		}
	})
	t.Run("cicap-max-object-size", func(t *testing.T) {
		// 300 KB, above c-icap's MaxObjectSize (256 KB), malware only
		// c-icap's engine knows: c-icap would pass it unscanned; it must
		// not be delivered.
		big := embeddedMessage("big@sender.example", append([]byte(strings.Repeat("padding text line\r\n", 16000)), eicar...))
		r := sendMilter(t, d.Addr(), "big@sender.example", big)
		if !r.act.StopProcessing() || r.act.SMTPCode != 552 {
			t.Fatalf("above c-icap's MaxObjectSize: %+v, want 552 (on_oversize)", r.act)
		}
		virusLog(t, d, "big@sender.example", "oversize", "virus-oversize")
		// Our own max_size below c-icap's catches it before sending.
		d2 := harness.StartMailwarden(t, enginesConfig(cd.UnixAddr(), ci.URL(), "all", 1, "200KB"))
		r = sendMilter(t, d2.Addr(), "big2@sender.example", big)
		if !r.act.StopProcessing() || r.act.SMTPCode != 552 {
			t.Fatalf("above max_size: %+v, want 552", r.act)
		}
		virusLog(t, d2, "big2@sender.example", "oversize", "virus-oversize")
	})
	// require and min_engines with c-icap stopped.
	dAny := harness.StartMailwarden(t, enginesConfig(cd.UnixAddr(), ci.URL(), "any", 1, "25MB"))
	dMin2 := harness.StartMailwarden(t, enginesConfig(cd.UnixAddr(), ci.URL(), "any", 2, "25MB"))
	ci.Stop()
	t.Run("cicap-stopped", func(t *testing.T) {
		msg := coreMessage("s1@sender.example", "user@e2e.test", "c-icap down")
		r := sendMilter(t, d.Addr(), "s1@sender.example", msg)
		if r.act.Type != milter.ActionRejectWithCode || r.act.SMTPCode != 451 {
			t.Errorf("require=all: %+v, want 451", r.act)
		}
		virusLog(t, d, "s1@sender.example", "error", "virus-error")
		r = sendMilter(t, dAny.Addr(), "s2@sender.example", msg)
		if r.act.StopProcessing() {
			t.Errorf("require=any: %+v, want accept", r.act)
		}
		if got, _ := r.header("X-Virus-Scanned"); got != "mailwarden (clamd:local) on mx.e2e.test" {
			t.Errorf("require=any: X-Virus-Scanned %q", got)
		}
		r = sendMilter(t, dMin2.Addr(), "s3@sender.example", msg)
		if r.act.Type != milter.ActionRejectWithCode || r.act.SMTPCode != 451 {
			t.Errorf("require=any min_engines=2: %+v, want 451", r.act)
		}
		// Malware found by the engine still up is malware.
		r = sendMilter(t, dAny.Addr(), "s4@sender.example", mimeMessage("s4@sender.example", "x", "eicar.com", "application/octet-stream", eicar))
		wantReject(t, r, 554, "5.7.1")
	})
}

// Through a real Postfix: the ICAP engine's find refused with 554, clean
// mail relayed naming both engines, c-icap down → 451.
func TestVirusEnginesPostfix(t *testing.T) {
	harness.Require(t, "postfix")
	harness.RequireRoot(t)
	cd := harness.StartClamd(t, harness.ClamdOptions{Signatures: harness.SignaturesHash})
	ci := harness.StartCICAP(t, harness.CICAPOptions{})
	eicar := readShared(t, "conformance/clamav/eicar.txt")
	sink := harness.StartSink(t)
	d := harness.StartMailwarden(t, enginesConfig(cd.UnixAddr(), ci.URL(), "all", 1, "25MB"))
	pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: d.Addr(), Relay: sink.Addr})
	send := func(from string, msg []byte) error {
		return harness.SendSMTP(pf.SMTPAddr(), "client.e2e.test", from, []string{"user@e2e.test"}, msg)
	}
	wantSMTPError(t, send("pe1@sender.example", embeddedMessage("pe1@sender.example", eicar)), 554, "5.7.1", "")
	if f := virusFound(t, d, "pe1@sender.example"); f["scanner"] != "icap:cicap" {
		t.Errorf("attributed to %v", f["scanner"])
	}
	wantSMTPError(t, send("pe2@sender.example", mimeMessage("pe2@sender.example", "invoice", "eicar.com", "application/octet-stream", eicar)), 554, "5.7.1", "")
	if err := send("pc@sender.example", coreMessage("pc@sender.example", "user@e2e.test", "clean")); err != nil {
		t.Fatalf("clean message: %v", err)
	}
	m := sink.Wait(t, 20*time.Second)
	if got := m.Get("X-Virus-Scanned"); len(got) != 1 || got[0] != "mailwarden (clamd:local, icap:cicap) on mx.e2e.test" {
		t.Fatalf("delivered X-Virus-Scanned %v\n%s", got, m.Data)
	}
	ci.Stop()
	err := send("pd@sender.example", coreMessage("pd@sender.example", "user@e2e.test", "c-icap down"))
	var se *harness.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("c-icap down: %v, want 451", err)
	}
	virusLog(t, d, "pd@sender.example", "error", "virus-error")
}
