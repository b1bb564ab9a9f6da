package rua

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/smtp"
	"net/textproto"
	"time"
)

// SMTP delivers reports to the local MTA, which signs (DKIM) and relays
// them like any other outgoing mail.
type SMTP struct {
	Addr    string        // host:port of the MTA, e.g. "127.0.0.1:25"
	Helo    string        // our name in HELO
	Timeout time.Duration // per delivery; 2m when 0
}

// Send implements Transport with net/smtp: the final "." is written only
// after commit succeeded.
func (t *SMTP) Send(ctx context.Context, from, to string, msg []byte, commit func() error) error {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return &SendError{Err: err}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	host, _, _ := net.SplitHostPort(t.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return replyErr(err, false)
	}
	if t.Helo != "" {
		if err := c.Hello(t.Helo); err != nil {
			return replyErr(err, false)
		}
	}
	if err := c.Mail(from); err != nil {
		return replyErr(err, false)
	}
	if err := c.Rcpt(to); err != nil {
		return replyErr(err, false)
	}
	w, err := c.Data()
	if err != nil {
		return replyErr(err, false)
	}
	if _, err := w.Write(msg); err != nil {
		return replyErr(err, false)
	}
	if err := commit(); err != nil {
		// Drop the connection without the final ".": the MTA discards
		// the incomplete message (RFC 5321 §4.1.1.4).
		return fmt.Errorf("rua: not sent: %w", err)
	}
	if err := w.Close(); err != nil {
		return replyErr(err, true)
	}
	c.Quit()
	return nil
}

// replyErr classifies an SMTP failure: a reply code means the MTA
// refused, anything else after the "." is an unknown outcome.
func replyErr(err error, afterDot bool) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &SendError{Code: te.Code, Err: err}
	}
	return &SendError{Committed: afterDot, Err: err}
}

// Scheduler runs a function every Interval plus a random jitter, on a
// clock it is given (tests pass a fake one).
type Scheduler struct {
	Interval time.Duration // 1h when 0
	Jitter   time.Duration // up to this much is added to each wait; 10m when 0
	Now      func() time.Time
	// After is time.After in production.
	After func(time.Duration) <-chan time.Time
	// Rand returns a value in [0, n); rand.Int64N when nil.
	Rand func(n int64) int64
}

// Run calls fn(now) after each wait until ctx ends. The first call comes
// after a jittered wait too, so that daemons restarted together spread
// out.
func (s *Scheduler) Run(ctx context.Context, fn func(ctx context.Context, now time.Time)) {
	interval, jitter := s.Interval, s.Jitter
	if interval <= 0 {
		interval = time.Hour
	}
	if jitter <= 0 {
		jitter = 10 * time.Minute
	}
	rnd, after, now := s.Rand, s.After, s.Now
	if rnd == nil {
		rnd = rand.Int64N
	}
	if after == nil {
		after = time.After
	}
	if now == nil {
		now = time.Now
	}
	first := true
	for {
		wait := time.Duration(rnd(int64(jitter)))
		if !first {
			wait += interval
		}
		first = false
		select {
		case <-ctx.Done():
			return
		case <-after(wait):
		}
		fn(ctx, now())
	}
}
