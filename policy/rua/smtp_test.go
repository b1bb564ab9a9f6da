package rua

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/test/harness"
)

func TestSMTPDelivers(t *testing.T) {
	sink := harness.StartSink(t)
	tr := &SMTP{Addr: sink.Addr, Helo: "receiver.example", Timeout: 5 * time.Second}
	rep, _ := Gzip(ident, Build(ident, sampleData()))
	msg := rep.Compose("dmarc-noreply@receiver.example", "dmarc@example.com", day1)
	committed := false
	err := tr.Send(context.Background(), "dmarc-noreply@receiver.example", "dmarc@example.com", msg, func() error {
		committed = true
		return nil
	})
	if err != nil || !committed {
		t.Fatalf("send: %v (committed %v)", err, committed)
	}
	m := sink.Wait(t, 5*time.Second)
	if m.From != "dmarc-noreply@receiver.example" || len(m.To) != 1 || m.To[0] != "dmarc@example.com" || m.Helo != "receiver.example" {
		t.Errorf("envelope = %q %q %q", m.Helo, m.From, m.To)
	}
	if string(m.Data) != string(msg) {
		t.Errorf("message changed in transit")
	}
}

func TestSMTPCommitFailureSendsNothing(t *testing.T) {
	sink := harness.StartSink(t)
	tr := &SMTP{Addr: sink.Addr, Timeout: 5 * time.Second}
	boom := errors.New("store down")
	err := tr.Send(context.Background(), "a@receiver.example", "b@example.com", []byte("Subject: x\r\n\r\nx\r\n"), func() error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if m := sink.WaitFor(300*time.Millisecond, func(*harness.Mail) bool { return true }); m != nil {
		t.Fatalf("the MTA got a message although the commit failed")
	}
}

// scripted is an SMTP server that answers the final "." with reply, or
// closes the connection without a reply when reply is "".
func scripted(t *testing.T, reply string) string {
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
				r := bufio.NewReader(c)
				c.Write([]byte("220 test\r\n"))
				data := false
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch {
					case data && l == ".\r\n":
						if reply == "" {
							return
						}
						c.Write([]byte(reply + "\r\n"))
						data = false
					case data:
					case strings.HasPrefix(l, "DATA"):
						data = true
						c.Write([]byte("354 go\r\n"))
					case strings.HasPrefix(l, "QUIT"):
						c.Write([]byte("221 bye\r\n"))
						return
					default:
						c.Write([]byte("250 ok\r\n"))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestSMTPOutcomes(t *testing.T) {
	for _, tc := range []struct {
		reply     string
		code      int
		committed bool
	}{
		{"451 4.3.0 try again", 451, false},
		{"554 5.7.1 no", 554, false},
		{"", 0, true}, // no reply to the ".": unknown outcome
	} {
		tr := &SMTP{Addr: scripted(t, tc.reply), Timeout: 5 * time.Second}
		err := tr.Send(context.Background(), "a@receiver.example", "b@example.com", []byte("Subject: x\r\n\r\nx\r\n"), func() error { return nil })
		var se *SendError
		if !errors.As(err, &se) || se.Code != tc.code || se.Committed != tc.committed {
			t.Errorf("reply %q: err = %#v", tc.reply, err)
		}
	}
	// Nobody listening: a plain failure, not committed.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	err := (&SMTP{Addr: addr}).Send(context.Background(), "a@x", "b@y", nil, func() error { t.Error("commit without a connection"); return nil })
	var se *SendError
	if !errors.As(err, &se) || se.Committed {
		t.Errorf("refused connection: %v", err)
	}
}

func TestSchedulerFakeClock(t *testing.T) {
	now := day1
	waits := make(chan time.Duration, 10)
	fire := make(chan time.Time)
	var calls []time.Time
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s := &Scheduler{
		Interval: time.Hour, Jitter: 10 * time.Minute,
		Now:   func() time.Time { return now },
		After: func(d time.Duration) <-chan time.Time { waits <- d; return fire },
		Rand:  func(n int64) int64 { return n / 2 },
	}
	go func() {
		s.Run(ctx, func(_ context.Context, at time.Time) { calls = append(calls, at) })
		close(done)
	}()
	var got []time.Duration
	for i := 0; i < 3; i++ {
		d := <-waits
		got = append(got, d)
		now = now.Add(d)
		fire <- now
	}
	<-waits
	cancel()
	<-done
	want := []time.Duration{5 * time.Minute, 65 * time.Minute, 65 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("wait %d = %v, want %v", i, got[i], want[i])
		}
	}
	if len(calls) != 3 || !calls[2].Equal(day1.Add(135*time.Minute)) {
		t.Errorf("calls = %v", calls)
	}
}
