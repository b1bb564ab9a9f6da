package harness

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSinkReceives(t *testing.T) {
	s := StartSink(t)
	msg := []byte("Subject: one\n\n.leading dot\nbody\n")
	if err := SendSMTP(s.Addr, "client.example", "a@example.org", []string{"b@example.net", "c@example.net"}, msg); err != nil {
		t.Fatal(err)
	}
	m := s.Wait(t, 5*time.Second)
	if m.From != "a@example.org" || strings.Join(m.To, ",") != "b@example.net,c@example.net" || m.Helo != "client.example" {
		t.Errorf("envelope %q %q %q", m.Helo, m.From, m.To)
	}
	if want := "Subject: one\r\n\r\n.leading dot\r\nbody\r\n"; string(m.Data) != want {
		t.Errorf("data %q, want %q", m.Data, want)
	}
	if got := m.Get("subject"); len(got) != 1 || got[0] != "one" {
		t.Errorf("Get(subject) = %q", got)
	}
	if string(m.Body()) != ".leading dot\r\nbody\r\n" {
		t.Errorf("body %q", m.Body())
	}
	// The null sender and a second message on the same sink.
	if err := SendSMTP(s.Addr, "", "", []string{"d@example.net"}, []byte("X: 1\r\n\r\nb\r\n")); err != nil {
		t.Fatal(err)
	}
	if m := s.Wait(t, 5*time.Second); m.From != "" || m.To[0] != "d@example.net" {
		t.Errorf("second mail %q %q", m.From, m.To)
	}
	if n := len(s.Mails()); n != 2 {
		t.Errorf("%d mails, want 2", n)
	}
}

func TestSinkWaitForAndConcurrency(t *testing.T) {
	s := StartSink(t)
	var wg sync.WaitGroup
	for _, r := range []string{"x@example.net", "y@example.net", "z@example.net"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := SendSMTP(s.Addr, "h", "a@example.org", []string{r}, []byte("Subject: "+r+"\r\n\r\nb\r\n")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if m := s.WaitFor(5*time.Second, To("y@example.net")); m == nil || m.Get("Subject")[0] != "y@example.net" {
		t.Fatalf("WaitFor y: %v", m)
	}
	if m := s.WaitFor(100*time.Millisecond, To("y@example.net")); m != nil {
		t.Error("the same mail was returned twice")
	}
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		got[s.Wait(t, 5*time.Second).To[0]] = true
	}
	if !got["x@example.net"] || !got["z@example.net"] {
		t.Errorf("remaining mails %v", got)
	}
	if m := s.WaitFor(50*time.Millisecond, func(*Mail) bool { return true }); m != nil {
		t.Errorf("extra mail %v", m.To)
	}
}

func TestMailHeaderFolding(t *testing.T) {
	m := &Mail{Data: []byte("A: 1\r\nB: two\r\n  lines\r\nA: 3\r\n\r\nA: body\r\n")}
	h := m.Header()
	if len(h) != 3 || h[1].Name != "B" || h[1].Value != "two lines" || h[1].Raw != "B: two\r\n  lines\r\n" {
		t.Fatalf("header %q", h)
	}
	if got := m.Get("a"); len(got) != 2 || got[1] != "3" {
		t.Errorf("Get(a) = %q", got)
	}
}

// fakeServer answers each command with the next reply of script.
func fakeServer(t *testing.T, greeting string, replies map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte(greeting + "\r\n"))
				buf := make([]byte, 4096)
				inData := false
				var pending []byte
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					pending = append(pending, buf[:n]...)
					for {
						if inData {
							i := bytes.Index(pending, []byte("\r\n.\r\n"))
							if i < 0 {
								break
							}
							pending = pending[i+5:]
							inData = false
							c.Write([]byte(replies["."] + "\r\n"))
							continue
						}
						i := bytes.Index(pending, []byte("\r\n"))
						if i < 0 {
							break
						}
						line := string(pending[:i])
						pending = pending[i+2:]
						verb := strings.ToUpper(strings.Fields(line + " x")[0])
						r, ok := replies[verb]
						if !ok {
							r = "250 ok"
						}
						if verb == "DATA" && strings.HasPrefix(r, "354") {
							inData = true
						}
						c.Write([]byte(r + "\r\n"))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestSendSMTPErrors(t *testing.T) {
	tests := []struct {
		name     string
		greeting string
		replies  map[string]string
		want     *SMTPError
	}{
		{"reject at end of data", "220 hi", map[string]string{"DATA": "354 go", ".": "550 5.7.1 Message rejected by policy"},
			&SMTPError{Stage: ".", Code: 550, Enhanced: "5.7.1", Text: "Message rejected by policy"}},
		{"tempfail multi-line", "220 hi", map[string]string{"DATA": "354 go", ".": "451-4.7.1 Message deferred,\r\n451 4.7.1 please try again later"},
			&SMTPError{Stage: ".", Code: 451, Enhanced: "4.7.1", Text: "Message deferred,\nplease try again later"}},
		{"rcpt refused", "220 hi", map[string]string{"RCPT": "554 5.7.1 <x@example.net>: Relay access denied"},
			&SMTPError{Stage: "RCPT", Code: 554, Enhanced: "5.7.1", Text: "<x@example.net>: Relay access denied"}},
		{"mail refused without enhanced code", "220 hi", map[string]string{"MAIL": "452 too busy"},
			&SMTPError{Stage: "MAIL", Code: 452, Text: "too busy"}},
		{"greeting refused", "421 4.3.2 go away", nil,
			&SMTPError{Stage: "connect", Code: 421, Enhanced: "4.3.2", Text: "go away"}},
		{"mismatched class is not enhanced", "220 hi", map[string]string{"MAIL": "550 4.1.1 odd"},
			&SMTPError{Stage: "MAIL", Code: 550, Text: "4.1.1 odd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.greeting, tt.replies)
			err := SendSMTP(addr, "h", "a@example.org", []string{"x@example.net"}, []byte("S: x\r\n\r\nb\r\n"))
			var se *SMTPError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want *SMTPError", err)
			}
			if *se != *tt.want {
				t.Errorf("got %#v\nwant %#v", se, tt.want)
			}
			if se.Temporary() != (tt.want.Code/100 == 4) {
				t.Errorf("Temporary() = %v", se.Temporary())
			}
		})
	}
	if err := SendSMTP("127.0.0.1:1", "h", "a@b", []string{"c@d"}, nil); err == nil {
		t.Error("no error from a closed port")
	}
	addr := fakeServer(t, "220 hi", map[string]string{"DATA": "354 go", ".": "250 ok"})
	if err := SendSMTP(addr, "h", "a@example.org", []string{"x@example.net"}, []byte("S: x\r\n\r\nb\r\n")); err != nil {
		t.Errorf("accepted transaction: %v", err)
	}
}

func TestDotStuff(t *testing.T) {
	got := string(dotStuff([]byte(".a\n..b\r\nc")))
	if want := "..a\r\n...b\r\nc\r\n"; got != want {
		t.Errorf("dotStuff = %q, want %q", got, want)
	}
}
