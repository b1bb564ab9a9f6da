package harness

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseMailq(t *testing.T) {
	out := "\t\t/tmp/sm123/mqueue (2 requests)\n" +
		"-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n" +
		"5ANMAbcd000042*     312 Mon Nov 23 22:10 <carol@sender.e2e.test>\n" +
		"     QUARANTINE: e2e hold\n" +
		"                                         <hold@remote.example>\n" +
		"5ANMAbcd000043      100 Mon Nov 23 22:11 <>\n" +
		"                 (Deferred: Connection refused by [127.0.0.1])\n" +
		"                                         <a@remote.example>\n" +
		"                                         <b@remote.example>\n" +
		"\t\tTotal requests: 2\n"
	q, err := ParseMailq([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 2 {
		t.Fatalf("got %d entries: %+v", len(q), q)
	}
	if e := q[0]; e.QueueID != "5ANMAbcd000042" || e.Size != 312 || e.Sender != "carol@sender.e2e.test" ||
		e.Quarantine != "e2e hold" || len(e.Recipients) != 1 || e.Recipients[0] != "hold@remote.example" {
		t.Errorf("entry 0: %+v", e)
	}
	if e := q[1]; e.Sender != "" || e.Quarantine != "" || !strings.HasPrefix(e.Status, "Deferred:") || len(e.Recipients) != 2 {
		t.Errorf("entry 1: %+v", e)
	}
	if q, err := ParseMailq([]byte("/tmp/x/mqueue is empty\n\t\tTotal requests: 0\n")); err != nil || len(q) != 0 {
		t.Errorf("empty queue: %v %v", q, err)
	}
	if _, err := ParseMailq([]byte("     <orphan@example>\n")); err == nil {
		t.Error("a recipient before any entry must be an error")
	}
}

func TestSendmailMC(t *testing.T) {
	flags := ""
	mc, err := SendmailMC(SendmailOptions{Milter: "local:/tmp/mw1/milter.sock", Relay: "127.0.0.1:2525", MilterFlags: &flags}, "/tmp/sm1", 2600)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"S=local:/tmp/mw1/milter.sock, F=,",
		"define(`SMART_HOST', `relay:[127.0.0.1]')",
		"define(`RELAY_MAILER_ARGS', `TCP $h 2525')",
		"DAEMON_OPTIONS(`Port=2600, Addr=127.0.0.1, Name=MTA')",
		"define(`confMILTER_MACROS_EOM'",
		"MAILER(`smtp')",
	} {
		if !strings.Contains(mc, want) {
			t.Errorf("generated .mc lacks %q:\n%s", want, mc)
		}
	}
	if strings.Contains(mc, "8895") {
		t.Errorf("the example's milter address survived:\n%s", mc)
	}
	mc, err = SendmailMC(SendmailOptions{}, "/tmp/sm1", 2600)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(mc, "\nINPUT_MAIL_FILTER") {
		t.Errorf("no Milter, but INPUT_MAIL_FILTER:\n%s", mc)
	}
}

// TestSendmailInstance starts a private Sendmail with the stand-in milter
// of postfix_test.go and checks the wiring: delivery to the sink through
// the milter, 5xx and 4xx at end of data, quarantine in mailq -qQ, log.
func TestSendmailInstance(t *testing.T) {
	t.Parallel()
	addr := startTestMilter(t) // inet:127.0.0.1:port
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(addr, "inet:"))
	sink := StartSink(t)
	sm := StartSendmail(t, SendmailOptions{Milter: "inet:" + port + "@" + host, Relay: sink.Addr})
	if v, err := SendmailVersion(); err != nil || !strings.HasPrefix(v, "8.") {
		t.Errorf("SendmailVersion: %q, %v", v, err)
	}

	if err := SendSMTP(sm.SMTPAddr(), "client.test", "ok@sender.test", []string{"ok@remote.example"}, []byte("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	m := sink.WaitFor(30*time.Second, To("ok@remote.example"))
	if m == nil {
		t.Fatalf("not delivered to the sink; log:\n%s", sm.Log())
	}
	// Sendmail hands MAIL FROM to the milter without the angle brackets
	// Postfix keeps (mailwarden's filter takes either).
	if v := m.Get("X-Harness-Milter"); len(v) != 1 || strings.Trim(strings.TrimPrefix(v[0], "seen "), "<>") != "ok@sender.test" {
		t.Errorf("X-Harness-Milter %q; message:\n%s", v, m.Data)
	}

	for _, tc := range []struct {
		from string
		code int
	}{{"reject@sender.test", 550}, {"tempfail@sender.test", 451}} {
		err := SendSMTP(sm.SMTPAddr(), "client.test", tc.from, []string{"x@remote.example"}, []byte("Subject: x\r\n\r\nx\r\n"))
		var se *SMTPError
		if !errors.As(err, &se) || se.Code != tc.code {
			t.Errorf("%s: %v, want %d", tc.from, err, tc.code)
		}
	}

	if err := SendSMTP(sm.SMTPAddr(), "client.test", "hold@sender.test", []string{"held@remote.example"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	e := sm.WaitQuarantined(t, func(e SendmailQueueEntry) bool { return e.Sender == "hold@sender.test" }, 10*time.Second)
	if e.Quarantine != "harness hold" || len(e.Recipients) != 1 || e.Recipients[0] != "held@remote.example" {
		t.Errorf("quarantined entry %+v", e)
	}
	sm.WaitLog(t, e.QueueID+": milter=mailwarden, quarantine=harness hold", 5*time.Second)
	if m := sink.WaitFor(time.Second, To("held@remote.example")); m != nil {
		t.Errorf("quarantined message delivered:\n%s", m.Data)
	}
}
