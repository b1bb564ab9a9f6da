package clamav_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailwarden/mailwarden/clamav"
	"github.com/mailwarden/mailwarden/clamav/clamdtest"
)

const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

var sigs = map[string]string{eicar: "Eicar-Test-Signature"}

func client(t *testing.T, o clamav.Options, addrs ...string) *clamav.Client {
	t.Helper()
	for _, a := range addrs {
		s, err := clamav.ParseServer(a)
		if err != nil {
			t.Fatal(err)
		}
		o.Servers = append(o.Servers, s)
	}
	c, err := clamav.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func opener(b []byte) func() io.Reader {
	return func() io.Reader { return bytes.NewReader(b) }
}

func TestScanCleanAndInfected(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		srv := clamdtest.Start(t, clamdtest.Options{TCP: tcp, Signatures: sigs})
		c := client(t, clamav.Options{}, srv.Addr())
		res, err := c.Scan(context.Background(), opener([]byte("Subject: hi\r\n\r\nhello\r\n")), -1)
		if err != nil || res.Infected {
			t.Fatalf("tcp=%v clean: %+v %v", tcp, res, err)
		}
		msg := []byte("Subject: x\r\n\r\n" + eicar + "\r\n")
		res, err = c.Scan(context.Background(), opener(msg), int64(len(msg)))
		if err != nil || !res.Infected || res.Signature != "Eicar-Test-Signature" || res.Server != srv.Addr() {
			t.Fatalf("tcp=%v infected: %+v %v", tcp, res, err)
		}
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if v, err := c.Version(context.Background()); err != nil || !strings.HasPrefix(v, "ClamAV ") {
			t.Fatalf("version %q %v", v, err)
		}
	}
}

// The library drops the last chunk when a reader returns data with io.EOF.
// A virus in the last bytes must be found anyway, and clamd must receive
// every byte.
func TestLastChunkWithEOF(t *testing.T) {
	srv := clamdtest.Start(t, clamdtest.Options{Signatures: sigs, Keep: true})
	c := client(t, clamav.Options{}, srv.Addr())
	// Padding so that EICAR straddles two chunks and ends exactly at the
	// end of the stream.
	msg := []byte(strings.Repeat("a", clamav.ChunkSize-30) + eicar)
	for name, open := range map[string]func() io.Reader{
		// data and EOF in one Read call, as io.SectionReader over a file does
		"DataErrReader": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(msg)) },
		"SectionReader": func() io.Reader { return io.NewSectionReader(bytes.NewReader(msg), 0, int64(len(msg))) },
		"OneByte":       func() io.Reader { return iotest.OneByteReader(bytes.NewReader(msg)) },
	} {
		res, err := c.Scan(context.Background(), open, int64(len(msg)))
		if err != nil || !res.Infected {
			t.Errorf("%s: virus in the last bytes missed: %+v %v", name, res, err)
		}
		st := srv.Streams()
		if got := st[len(st)-1]; !bytes.Equal(got, msg) {
			t.Errorf("%s: clamd got %d bytes, want %d", name, len(got), len(msg))
		}
	}
	// ScanReader (single use) too.
	res, err := c.ScanReader(context.Background(), iotest.DataErrReader(bytes.NewReader(msg)), -1)
	if err != nil || !res.Infected {
		t.Errorf("ScanReader: %+v %v", res, err)
	}
}

func TestOversizeBeforeSending(t *testing.T) {
	srv := clamdtest.Start(t, clamdtest.Options{})
	c := client(t, clamav.Options{StreamMaxLength: 100}, srv.Addr())
	msg := bytes.Repeat([]byte("x"), 101)
	_, err := c.Scan(context.Background(), opener(msg), int64(len(msg)))
	if !errors.Is(err, clamav.ErrOversize) {
		t.Fatalf("err = %v, want ErrOversize", err)
	}
	if srv.Scans() != 0 {
		t.Fatalf("a known oversize message was sent to clamd")
	}
	// Unknown size: counted while streaming, stopped before clamd sees it all.
	_, err = c.Scan(context.Background(), opener(msg), -1)
	if !errors.Is(err, clamav.ErrOversize) {
		t.Fatalf("unknown size: err = %v, want ErrOversize", err)
	}
	// Exactly the limit is fine.
	if _, err := c.Scan(context.Background(), opener(msg[:100]), 100); err != nil {
		t.Fatal(err)
	}
}

func TestSizeLimitReply(t *testing.T) {
	// clamd's own limit is lower than what we were told: its reply counts
	// as oversize, not as a temporary error.
	srv := clamdtest.Start(t, clamdtest.Options{Reply: "INSTREAM size limit exceeded. ERROR\n"})
	c := client(t, clamav.Options{}, srv.Addr())
	_, err := c.Scan(context.Background(), opener([]byte("x")), 1)
	if !errors.Is(err, clamav.ErrOversize) {
		t.Fatalf("err = %v, want ErrOversize", err)
	}
	var se *clamav.ServerError
	if !errors.As(err, &se) || se.Temporary() {
		t.Fatalf("size limit must be a permanent ServerError: %v", err)
	}
}

// clamd cuts a stream at a StreamMaxLength lower than the one we were
// told: a configuration mismatch, a temporary error naming the setting,
// not an oversize verdict.
func TestStreamCutMidway(t *testing.T) {
	srv := clamdtest.Start(t, clamdtest.Options{StreamMaxLength: 1 << 20})
	c := client(t, clamav.Options{StreamMaxLength: 25 << 20}, srv.Addr())
	msg := bytes.Repeat([]byte("x"), 4<<20)
	_, err := c.Scan(context.Background(), opener(msg), int64(len(msg)))
	var se *clamav.ServerError
	if err == nil || errors.Is(err, clamav.ErrOversize) || !errors.As(err, &se) || !se.Temporary() || !strings.Contains(err.Error(), "StreamMaxLength") {
		t.Fatalf("err = %v, want a temporary error naming StreamMaxLength", err)
	}
}

func TestErrorReplyFailsOver(t *testing.T) {
	bad := clamdtest.Start(t, clamdtest.Options{Reply: "stream: Can't allocate memory ERROR\n"})
	good := clamdtest.Start(t, clamdtest.Options{Signatures: sigs})
	c := client(t, clamav.Options{}, bad.Addr(), good.Addr())
	for i := range 4 {
		res, err := c.Scan(context.Background(), opener([]byte(eicar)), 68)
		if err != nil || !res.Infected || res.Server != good.Addr() {
			t.Fatalf("scan %d: %+v %v", i, res, err)
		}
	}
	if bad.Scans() != 2 || good.Scans() != 4 {
		t.Fatalf("round-robin: bad %d scans, good %d; want 2 and 4", bad.Scans(), good.Scans())
	}
	// Alone, the error reply is an error naming clamd's text.
	c = client(t, clamav.Options{}, bad.Addr())
	_, err := c.Scan(context.Background(), opener([]byte("x")), 1)
	if err == nil || !strings.Contains(err.Error(), "Can't allocate memory") {
		t.Fatalf("err = %v", err)
	}
}

func TestRoundRobinAndFailover(t *testing.T) {
	a := clamdtest.Start(t, clamdtest.Options{})
	b := clamdtest.Start(t, clamdtest.Options{TCP: true})
	c := client(t, clamav.Options{}, "unix:/nonexistent/clamd.ctl", a.Addr(), "tcp:127.0.0.1:1", b.Addr())
	for i := range 8 {
		if _, err := c.Scan(context.Background(), opener([]byte("hello")), 5); err != nil {
			t.Fatalf("scan %d: %v", i, err)
		}
	}
	// Start indexes 0,1,2,3,0,1,2,3: dead 0 fails over to a, dead 2 to b.
	if a.Scans() != 4 || b.Scans() != 4 {
		t.Fatalf("a %d, b %d scans; want 4 and 4", a.Scans(), b.Scans())
	}
	// ScanReader fails over too while nothing was read.
	c = client(t, clamav.Options{}, "unix:/nonexistent/clamd.ctl", a.Addr())
	if _, err := c.ScanReader(context.Background(), strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
}

func TestAllDown(t *testing.T) {
	c := client(t, clamav.Options{}, "unix:/nonexistent/clamd.ctl", "tcp:127.0.0.1:1")
	_, err := c.Scan(context.Background(), opener([]byte("x")), 1)
	if err == nil || !strings.Contains(err.Error(), "is clamd running?") {
		t.Fatalf("err = %v", err)
	}
	var se *clamav.ServerError
	if !errors.As(err, &se) || !se.Temporary() {
		t.Fatalf("want a temporary ServerError, got %v", err)
	}
	if err := c.Ping(context.Background()); err == nil {
		t.Fatal("ping of dead servers succeeded")
	}
}

// A clamd that accepts and never answers: the scan ends at the one
// deadline, not after the library's per-chunk timeouts.
func TestStallEndsAtDeadline(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		srv := clamdtest.Start(t, clamdtest.Options{TCP: tcp, Stall: true})
		c := client(t, clamav.Options{Timeout: 300 * time.Millisecond}, srv.Addr())
		start := time.Now()
		_, err := c.Scan(context.Background(), opener([]byte("hello")), 5)
		el := time.Since(start)
		if !errors.Is(err, clamav.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if el < 250*time.Millisecond || el > 1500*time.Millisecond {
			t.Fatalf("stalled scan took %v, want about 300ms", el)
		}
	}
}

// A clamd that reads each chunk slowly: the connection makes progress,
// but the whole scan must still stop at the deadline.
func TestSlowReaderEndsAtDeadline(t *testing.T) {
	srv := clamdtest.Start(t, clamdtest.Options{ChunkDelay: 50 * time.Millisecond})
	c := client(t, clamav.Options{}, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	msg := bytes.Repeat([]byte("x"), 40*clamav.ChunkSize) // 40 chunks: 2 s at 50 ms each
	start := time.Now()
	_, err := c.Scan(ctx, opener(msg), int64(len(msg)))
	if el := time.Since(start); !errors.Is(err, clamav.ErrTimeout) || el > 1500*time.Millisecond {
		t.Fatalf("err = %v after %v, want ErrTimeout after about 400ms", err, el)
	}
}

func TestParseServer(t *testing.T) {
	for in, want := range map[string]string{
		"unix:/var/run/clamav/clamd.ctl": "unix:/var/run/clamav/clamd.ctl",
		"/run/clamd.sock":                "unix:/run/clamd.sock",
		"tcp:127.0.0.1:3310":             "tcp:127.0.0.1:3310",
		"[::1]:3310":                     "tcp:[::1]:3310",
		"inet:localhost:3310":            "tcp:localhost:3310",
	} {
		s, err := clamav.ParseServer(in)
		if err != nil || s.String() != want {
			t.Errorf("ParseServer(%q) = %v, %v; want %s", in, s, err, want)
		}
	}
	for _, in := range []string{"", "unix:relative", "tcp:noport", "localhost"} {
		if _, err := clamav.ParseServer(in); err == nil {
			t.Errorf("ParseServer(%q) accepted", in)
		}
	}
}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want clamav.Reply
	}{
		{"stream: OK\n", clamav.Reply{Status: clamav.ReplyOK}},
		{"stream: OK\x00", clamav.Reply{Status: clamav.ReplyOK}},
		{"1: stream: OK", clamav.Reply{Status: clamav.ReplyOK}},
		{"stream: Win.Test.EICAR_HDB-1 FOUND\n", clamav.Reply{Status: clamav.ReplyFound, Signature: "Win.Test.EICAR_HDB-1"}},
		{"stream: eicar.txt.UNOFFICIAL FOUND", clamav.Reply{Status: clamav.ReplyFound, Signature: "eicar.txt.UNOFFICIAL"}},
		{"stream: Eicar-Signature(44d88612fea8a8f36de82e1278abb02f:68) FOUND", clamav.Reply{Status: clamav.ReplyFound, Signature: "Eicar-Signature(44d88612fea8a8f36de82e1278abb02f:68)"}},
		{"/tmp/a: b.eml: Eicar FOUND", clamav.Reply{Status: clamav.ReplyFound, Signature: "Eicar"}},
		{"INSTREAM size limit exceeded. ERROR\n", clamav.Reply{Status: clamav.ReplyError, Message: "INSTREAM size limit exceeded."}},
		{"stream: Can't allocate memory ERROR", clamav.Reply{Status: clamav.ReplyError, Message: "Can't allocate memory"}},
		{"ERROR", clamav.Reply{Status: clamav.ReplyError, Message: "unspecified error"}},
	} {
		got, err := clamav.ParseReply(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseReply(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "OK", "PONG", "stream: FOUND", "stream: a\nb FOUND", "stream: x OK", "stream: \x01 FOUND", "garbage"} {
		if r, err := clamav.ParseReply(in); err == nil {
			t.Errorf("ParseReply(%q) = %+v, want error", in, r)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"stream: OK\n", "stream: Eicar FOUND", "INSTREAM size limit exceeded. ERROR", "1: stream: OK\x00", ": FOUND", " ERROR"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := clamav.ParseReply(s)
		if err != nil {
			return
		}
		switch r.Status {
		case clamav.ReplyOK:
			if r.Signature != "" || r.Message != "" {
				t.Fatalf("%q: OK with data %+v", s, r)
			}
		case clamav.ReplyFound:
			if r.Signature == "" || strings.ContainsAny(r.Signature, "\r\n\x00") {
				t.Fatalf("%q: bad signature %+v", s, r)
			}
		case clamav.ReplyError:
			if r.Message == "" {
				t.Fatalf("%q: error without message", s)
			}
		default:
			t.Fatalf("%q: status %v", s, r.Status)
		}
	})
}

func FuzzParseServer(f *testing.F) {
	for _, s := range []string{"unix:/run/clamd.ctl", "tcp:127.0.0.1:3310", "[::1]:3310", "inet:x:1", "/p", "unix:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		srv, err := clamav.ParseServer(s)
		if err != nil {
			return
		}
		if srv.Network != "unix" && srv.Network != "tcp" || srv.Address == "" {
			t.Fatalf("%q → %+v", s, srv)
		}
		// What it prints, it parses back to the same server.
		again, err := clamav.ParseServer(srv.String())
		if err != nil || again != srv {
			t.Fatalf("%q → %v → %v %v", s, srv, again, err)
		}
	})
}

func TestLimitExceeded(t *testing.T) {
	for sig, want := range map[string]bool{
		"Heuristics.Limits.Exceeded.MaxFileSize": true,
		"Heuristics.Limits.Exceeded.MaxScanTime": true,
		"Heuristics.Limits.Exceeded":             true,
		"Heuristics.Limits.ExceededX":            false,
		"Win.Test.EICAR_HDB-1":                   false,
		"Heuristics.Encrypted.Zip":               false,
		"heuristics.limits.exceeded.MaxFileSize": false,
	} {
		if got := clamav.LimitExceeded(sig); got != want {
			t.Errorf("%q: %v", sig, got)
		}
	}
}

func TestParseMaxThreads(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live 1  idle 0 max 12 idle-timeout 30\nQUEUE: 0 items\nEND", 12},
		{"THREADS: live 3 idle 1 max 1 idle-timeout 30", 1},
		{"THREADS: live 1 idle 0 max x", 0},
		{"THREADS: live 1 idle 0 max 0", 0},
		{"THREADS: max", 0},
		{"UNKNOWN COMMAND", 0},
		{"", 0},
	} {
		n, err := clamav.ParseMaxThreads(c.in)
		if n != c.want || (c.want == 0) != errors.Is(err, clamav.ErrNoThreads) {
			t.Errorf("ParseMaxThreads(%q) = %d, %v; want %d", c.in, n, err, c.want)
		}
	}
}

func TestMaxThreadsSumsServers(t *testing.T) {
	a := clamdtest.Start(t, clamdtest.Options{MaxThreads: 4})
	b := clamdtest.Start(t, clamdtest.Options{MaxThreads: 6})
	c := client(t, clamav.Options{}, a.Addr(), b.Addr())
	if n, err := c.MaxThreads(context.Background()); n != 10 || err != nil {
		t.Fatalf("MaxThreads = %d, %v; want 10", n, err)
	}
	// One server down: the sum is unknown.
	b.Close()
	if n, err := c.MaxThreads(context.Background()); err == nil {
		t.Fatalf("MaxThreads with a server down = %d, want an error", n)
	}
}
