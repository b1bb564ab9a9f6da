package harness

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"
)

// harnessMilter is a stand-in for mailwarden so that the Postfix wiring of
// the harness is tested on its own: it tags every message, rejects mail
// from reject@, tempfails tempfail@ and holds hold@.
type harnessMilter struct {
	milter.NoOpMilter
	from string
}

func (h *harnessMilter) MailFrom(from, _ string, _ milter.Modifier) (*milter.Response, error) {
	h.from = from
	return milter.RespContinue, nil
}

func (h *harnessMilter) EndOfMessage(m milter.Modifier) (*milter.Response, error) {
	switch strings.SplitN(h.from, "@", 2)[0] {
	case "reject":
		return milter.RejectWithCodeAndReason(550, "5.7.1 harness says no")
	case "tempfail":
		return milter.RejectWithCodeAndReason(451, "4.7.1 harness says later")
	case "hold":
		if err := m.Quarantine("harness hold"); err != nil {
			return nil, err
		}
	}
	if err := m.AddHeader("X-Harness-Milter", "seen "+h.from); err != nil {
		return nil, err
	}
	return milter.RespAccept, nil
}

func startTestMilter(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := milter.NewServer(
		milter.WithMilter(func() milter.Milter { return &harnessMilter{} }),
		milter.WithAction(milter.OptAddHeader|milter.OptQuarantine),
	)
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return "inet:" + ln.Addr().String()
}

// TestPostfixInstances starts two private instances at once, each relaying
// to its own sink, and checks that each one's mail arrives at its own sink
// only, through SMTP and through sendmail.
func TestPostfixInstances(t *testing.T) {
	Require(t, "postfix")
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			sink := StartSink(t)
			pf := StartPostfix(t, PostfixOptions{Relay: sink.Addr})
			rcpt := fmt.Sprintf("rcpt%d@example.net", i)
			if err := SendSMTP(pf.SMTPAddr(), "client.example", "a@example.org", []string{rcpt}, []byte("Subject: smtp\r\n\r\nhi\r\n")); err != nil {
				t.Fatal(err)
			}
			m := sink.Wait(t, 30*time.Second)
			if m.From != "a@example.org" || len(m.To) != 1 || m.To[0] != rcpt || m.Get("Subject")[0] != "smtp" {
				t.Errorf("relayed mail %q %q %q", m.From, m.To, m.Get("Subject"))
			}
			if err := pf.Sendmail(t, []string{"-f", "b@example.org", rcpt}, []byte("Subject: local\n\nhi\n")); err != nil {
				t.Fatal(err)
			}
			m = sink.Wait(t, 30*time.Second)
			if m.From != "b@example.org" || m.Get("Subject")[0] != "local" {
				t.Errorf("sendmail mail %q %q", m.From, m.Get("Subject"))
			}
			// The sink has the mail before Postfix logs it and removes
			// the queue file: wait for both.
			pf.WaitLog(t, "status=sent", 10*time.Second)
			deadline := time.Now().Add(10 * time.Second)
			for len(pf.Queue(t)) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("queue not empty: %+v", pf.Queue(t))
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestPostfixMilterWiring checks smtpd_milters and non_smtpd_milters with a
// trivial milter: header added, 5xx and 4xx passed through, hold queue.
func TestPostfixMilterWiring(t *testing.T) {
	Require(t, "postfix")
	sink := StartSink(t)
	pf := StartPostfix(t, PostfixOptions{Milter: startTestMilter(t), Relay: sink.Addr})
	send := func(from string) error {
		return SendSMTP(pf.SMTPAddr(), "client.example", from, []string{"r@example.net"}, []byte("Subject: x\r\n\r\nhi\r\n"))
	}
	if err := send("ok@example.org"); err != nil {
		t.Fatal(err)
	}
	if got := sink.Wait(t, 30*time.Second).Get("X-Harness-Milter"); len(got) != 1 || got[0] != "seen <ok@example.org>" && got[0] != "seen ok@example.org" {
		t.Errorf("milter header %q", got)
	}
	var se *SMTPError
	if err := send("reject@example.org"); !errors.As(err, &se) || se.Code != 550 || se.Enhanced != "5.7.1" || se.Text != "harness says no" {
		t.Errorf("reject: %v", err)
	}
	if err := send("tempfail@example.org"); !errors.As(err, &se) || se.Code != 451 || !se.Temporary() {
		t.Errorf("tempfail: %v", err)
	}
	if err := send("hold@example.org"); err != nil {
		t.Fatal(err)
	}
	if e := pf.WaitHold(t, nil, 10*time.Second); e.Sender != "hold@example.org" {
		t.Errorf("held %+v", e)
	}
	if err := pf.Sendmail(t, []string{"-f", "local@example.org", "r@example.net"}, []byte("Subject: y\n\nhi\n")); err != nil {
		t.Fatal(err)
	}
	m := sink.Wait(t, 30*time.Second)
	if got := m.Get("X-Harness-Milter"); len(got) != 1 || !strings.Contains(got[0], "local@example.org") {
		t.Errorf("sendmail path not filtered: %q", got)
	}
	if extra := sink.Mails(); len(extra) != 2 {
		t.Errorf("sink got %d mails, want 2 (the held one must stay)", len(extra))
	}
}

// TestPostfixDefaultAction checks that milter_default_action is the
// harness's choice (tempfail) when the milter is down.
func TestPostfixDefaultAction(t *testing.T) {
	Require(t, "postfix")
	sink := StartSink(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "inet:" + ln.Addr().String()
	ln.Close()
	pf := StartPostfix(t, PostfixOptions{Milter: dead, Relay: sink.Addr})
	err = SendSMTP(pf.SMTPAddr(), "client.example", "a@example.org", []string{"r@example.net"}, []byte("Subject: x\r\n\r\nhi\r\n"))
	var se *SMTPError
	if !errors.As(err, &se) || !se.Temporary() {
		t.Errorf("with the milter down: %v, want 4xx", err)
	}
}

// TestPostfixStartFailure: a main.cf that kills smtpd is reported with the
// maillog at start, not as a client timeout later.
func TestPostfixStartFailure(t *testing.T) {
	Require(t, "postfix")
	RequireRoot(t)
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartPostfix(ft, PostfixOptions{MainCF: map[string]string{"smtpd_relay_restrictions": "permit", "smtpd_recipient_restrictions": "permit"}})
	}()
	<-done
	if !ft.failed || !strings.Contains(ft.msg, "fatal") {
		t.Errorf("StartPostfix with a fatal smtpd setting: failed=%v, message:\n%s", ft.failed, ft.msg)
	}
}

// fakeT records a fatal failure instead of ending the test.
type fakeT struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fakeT) Helper()           {}
