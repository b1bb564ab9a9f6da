package icap_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/virus/icap"
	"github.com/mailwarden/mailwarden/policy/virus/icap/icaptest"
)

const pattern = "MAILWARDEN-TEST-VIRUS"

var sigs = map[string]string{pattern: "Test.Virus.Fake"}

func message(n int, infected bool) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: test\r\n\r\n")
	for b.Len() < n {
		b.WriteString("The quick brown fox jumps over the lazy dog.\r\n")
	}
	if infected {
		b.WriteString(pattern + "\r\n") // at the very end: all of it must be sent
	}
	return b.Bytes()
}

func opener(b []byte) func() io.Reader {
	return func() io.Reader { return bytes.NewReader(b) }
}

func client(t *testing.T, o icap.Options, urls ...string) *icap.Client {
	t.Helper()
	for _, u := range urls {
		s, err := icap.ParseServer(u)
		if err != nil {
			t.Fatal(err)
		}
		o.Servers = append(o.Servers, s)
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	c, err := icap.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func scan(c *icap.Client, b []byte) (icap.Result, error) {
	return c.Scan(context.Background(), opener(b), int64(len(b)))
}

func TestCleanAndInfected(t *testing.T) {
	styles := map[string]icaptest.Style{
		"X-Infection-Found":  icaptest.StyleInfectionFound,
		"X-Virus-ID":         icaptest.StyleVirusID,
		"X-Violations-Found": icaptest.StyleViolations,
		"HTTP 403 only":      icaptest.StyleHTTPStatus,
	}
	for name, style := range styles {
		for _, preview := range []int{-1, 0, 1024} {
			for _, no204 := range []bool{false, true} {
				srv := icaptest.Start(t, icaptest.Options{Signatures: sigs, Style: style, Preview: preview, NoAllow204: no204, Keep: true})
				c := client(t, icap.Options{}, srv.URL())
				for _, size := range []int{10, 5000, 300 << 10} {
					clean, bad := message(size, false), message(size, true)
					res, err := scan(c, clean)
					if err != nil || res.Infected {
						t.Errorf("%s preview=%d no204=%v size=%d: clean message: %+v %v", name, preview, no204, size, res, err)
					}
					res, err = scan(c, bad)
					want := "Test.Virus.Fake"
					if style == icaptest.StyleHTTPStatus {
						want = "ICAP-Blocked (HTTP 403)"
					}
					if err != nil || !res.Infected || res.Threat != want {
						t.Errorf("%s preview=%d no204=%v size=%d: infected message: %+v %v", name, preview, no204, size, res, err)
					}
					if res.ISTag != "fake-1" || res.Server != srv.URL() {
						t.Errorf("result server/istag: %+v", res)
					}
				}
				for i, b := range srv.Bodies() {
					if !bytes.HasPrefix(b, []byte("From: a@example.org")) {
						t.Errorf("body %d as received starts %q", i, b[:min(len(b), 40)])
					}
				}
			}
		}
	}
}

func TestBodyArrivesWhole(t *testing.T) {
	for _, preview := range []int{-1, 0, 100, 4096} {
		srv := icaptest.Start(t, icaptest.Options{Preview: preview, Keep: true})
		c := client(t, icap.Options{}, srv.URL())
		msgs := [][]byte{{}, []byte("x"), message(99, false), message(100, false)[:100], message(4096, false)[:4096], message(1<<20, false)}
		for _, m := range msgs {
			if _, err := scan(c, m); err != nil {
				t.Fatalf("preview %d, %d bytes: %v", preview, len(m), err)
			}
		}
		got := srv.Bodies()
		if len(got) != len(msgs) {
			t.Fatalf("preview %d: %d bodies, want %d", preview, len(got), len(msgs))
		}
		for i := range msgs {
			if !bytes.Equal(got[i], msgs[i]) {
				t.Errorf("preview %d: body %d: got %d bytes, want %d", preview, i, len(got[i]), len(msgs[i]))
			}
		}
		pv, ieof := srv.Previews()
		switch {
		case preview < 0 && pv != 0:
			t.Errorf("no preview advertised, %d sent", pv)
		case preview >= 0 && pv != len(msgs):
			t.Errorf("preview %d: %d previews, want %d", preview, pv, len(msgs))
		}
		// ieof exactly for the messages that fit the preview.
		want := 0
		for _, m := range msgs {
			if preview >= 0 && len(m) <= preview {
				want++
			}
		}
		if ieof != want {
			t.Errorf("preview %d: ieof on %d, want %d", preview, ieof, want)
		}
	}
}

func TestNoPreviewOption(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: 1024})
	c := client(t, icap.Options{NoPreview: true}, srv.URL())
	if _, err := scan(c, message(10, false)); err != nil {
		t.Fatal(err)
	}
	if pv, _ := srv.Previews(); pv != 0 {
		t.Errorf("NoPreview: %d previews sent", pv)
	}
}

func TestPartialPreviewVerdictIsNotClean(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: 100, PreviewVerdict: true, Signatures: sigs})
	c := client(t, icap.Options{}, srv.URL())
	res, err := scan(c, message(5000, true))
	if !errors.Is(err, icap.ErrUnscanned) || res.Infected {
		t.Fatalf("got %+v %v, want ErrUnscanned", res, err)
	}
	if temporary(err) {
		t.Error("ErrUnscanned reported as temporary")
	}
	// A message that fits the preview is scanned whole.
	if res, err := scan(c, []byte(pattern)); err != nil || !res.Infected {
		t.Errorf("small infected message: %+v %v", res, err)
	}
}

func TestModifiedBodyIsNotClean(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: -1, Signatures: sigs, Style: icaptest.StyleModified})
	c := client(t, icap.Options{}, srv.URL())
	res, err := scan(c, message(100, true))
	if !errors.Is(err, icap.ErrModified) || res.Infected {
		t.Fatalf("got %+v %v, want ErrModified", res, err)
	}
	if res, err := scan(c, message(100, false)); err != nil || res.Infected {
		t.Errorf("clean message: %+v %v", res, err)
	}
}

// A server that offers 204 but streams the message back unchanged did not
// scan it (c-icap above its MaxObjectSize, without a preview).
func TestEchoFromServerOffering204IsUnscanned(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: -1, EchoUnscanned: true})
	c := client(t, icap.Options{}, srv.URL())
	res, err := scan(c, message(1000, false))
	if !errors.Is(err, icap.ErrUnscanned) || res.Infected || temporary(err) {
		t.Fatalf("got %+v %v, want a permanent ErrUnscanned", res, err)
	}
}

func temporary(err error) bool {
	var se *icap.ServerError
	return errors.As(err, &se) && se.Temporary()
}

func TestErrorStatuses(t *testing.T) {
	for _, tc := range []struct {
		status int
		temp   bool
	}{{500, true}, {503, true}, {400, false}, {404, false}, {408, true}, {501, false}} {
		srv := icaptest.Start(t, icaptest.Options{Preview: -1, Status: tc.status})
		c := client(t, icap.Options{}, srv.URL())
		res, err := scan(c, message(100, false))
		var se *icap.ServerError
		if err == nil || res.Infected || !errors.As(err, &se) || se.Status != tc.status {
			t.Errorf("%d: got %+v %v", tc.status, res, err)
			continue
		}
		if se.Temporary() != tc.temp {
			t.Errorf("%d: Temporary() = %v, want %v", tc.status, se.Temporary(), tc.temp)
		}
	}
}

func TestMalformedAndTruncatedReplies(t *testing.T) {
	hdr := "HTTP/1.1 200 OK\r\n\r\n"
	for name, raw := range map[string]string{
		"garbage":             "garbage\r\n\r\n",
		"no status":           "ICAP/1.0\r\n\r\n",
		"HTTP not ICAP":       "HTTP/1.1 204 No Content\r\n\r\n",
		"200 no encapsulated": "ICAP/1.0 200 OK\r\n\r\n",
		"bad encapsulated":    "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=x\r\n\r\n",
		"header cut":          "ICAP/1.0 204 No Content\r\nISTag: x",
		"status cut":          "ICAP/1.0 20",
		"chunk cut":           "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n" + hdr + "10\r\nabc",
		"no last chunk":       "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n" + hdr + "3\r\nabc\r\n",
		"bad chunk size":      "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n" + hdr + "zz\r\nabc\r\n0\r\n\r\n",
		"res-hdr cut":         "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=90\r\n\r\n" + hdr,
		"bad http status":     "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=10\r\n\r\nHTTP/1.1 x\r\n0\r\n\r\n",
		"100 continue only":   "ICAP/1.0 100 Continue\r\n\r\n",
		"204 with body":       "ICAP/1.0 204 No Content\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n" + hdr + "0\r\n\r\n",
		"huge line":           "ICAP/1.0 204 No Content\r\nX: " + strings.Repeat("a", 20000) + "\r\n\r\n",
	} {
		srv := icaptest.Start(t, icaptest.Options{Preview: -1, Raw: raw})
		c := client(t, icap.Options{Timeout: 2 * time.Second}, srv.URL())
		res, err := scan(c, message(200, false))
		if err == nil || res.Infected {
			t.Errorf("%s: got %+v %v, want an error", name, res, err)
		}
		if errors.Is(err, icap.ErrTimeout) {
			t.Errorf("%s: timed out instead of failing: %v", name, err)
		}
	}
}

func TestContinueAfterIEOF(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: 1024, ContinueAfterIEOF: true})
	c := client(t, icap.Options{}, srv.URL())
	if res, err := scan(c, message(10, false)); !errors.Is(err, icap.ErrBadReply) {
		t.Errorf("got %+v %v, want ErrBadReply", res, err)
	}
}

func TestStallEndsAtDeadline(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: -1, Stall: true})
	c := client(t, icap.Options{Timeout: 300 * time.Millisecond}, srv.URL())
	start := time.Now()
	res, err := scan(c, message(1000, false))
	if !errors.Is(err, icap.ErrTimeout) || res.Infected || !temporary(err) {
		t.Errorf("got %+v %v, want a temporary ErrTimeout", res, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	// A context deadline shorter than Timeout wins too.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	m := message(10, false)
	if _, err := c.Scan(ctx, opener(m), int64(len(m))); !errors.Is(err, icap.ErrTimeout) {
		t.Errorf("ctx deadline: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("ctx deadline: took %v", d)
	}
}

func TestEarlyAnswerWhileSending(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: -1, Early: true, Status: 503})
	c := client(t, icap.Options{Timeout: 5 * time.Second}, srv.URL())
	start := time.Now()
	res, err := scan(c, message(8<<20, false))
	var se *icap.ServerError
	if err == nil || res.Infected {
		t.Fatalf("got %+v %v", res, err)
	}
	if errors.As(err, &se) && se.Status != 503 && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("error %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestOversize(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: -1})
	c := client(t, icap.Options{MaxSize: 1000}, srv.URL())
	m := message(2000, true)
	res, err := scan(c, m)
	if !errors.Is(err, icap.ErrOversize) || res.Infected || temporary(err) {
		t.Fatalf("got %+v %v, want a permanent ErrOversize", res, err)
	}
	if n := srv.Requests("RESPMOD"); n != 0 {
		t.Errorf("%d RESPMOD sent for an oversize message", n)
	}
	// Size unknown: counted while streaming.
	if _, err := c.Scan(context.Background(), opener(m), -1); !errors.Is(err, icap.ErrOversize) {
		t.Errorf("unknown size: %v", err)
	}
	if res, err := scan(c, message(500, false)); err != nil || res.Infected {
		t.Errorf("small message after oversize: %+v %v", res, err)
	}
}

func TestSizeMismatchIsAnError(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: -1})
	c := client(t, icap.Options{}, srv.URL())
	m := message(1000, false)
	if _, err := c.Scan(context.Background(), opener(m), int64(len(m))+5); !errors.Is(err, icap.ErrSource) {
		t.Errorf("got %v, want ErrSource", err)
	}
}

func TestMaxConnections(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: 0, MaxConnections: 2, Delay: 50 * time.Millisecond})
	c := client(t, icap.Options{MaxConnections: 10}, srv.URL())
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := scan(c, message(3000, false)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := srv.Violations(); v != 0 {
		t.Errorf("%d connections beyond Max-Connections (max open %d)", v, srv.MaxActive())
	}
	if srv.MaxActive() > 2 {
		t.Errorf("%d connections open at once", srv.MaxActive())
	}
	if n := srv.Requests("RESPMOD"); n != 12 {
		t.Errorf("%d RESPMOD", n)
	}
	// Our own cap, below the server's.
	srv2 := icaptest.Start(t, icaptest.Options{Preview: 0, MaxConnections: 50, Delay: 20 * time.Millisecond})
	c2 := client(t, icap.Options{MaxConnections: 3}, srv2.URL())
	var wg2 sync.WaitGroup
	for range 10 {
		wg2.Add(1)
		go func() { defer wg2.Done(); scan(c2, message(10, false)) }()
	}
	wg2.Wait()
	if srv2.MaxActive() > 3 {
		t.Errorf("own cap 3: %d connections open at once", srv2.MaxActive())
	}
}

func TestKeepAlive(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: 1024, Signatures: sigs})
	c := client(t, icap.Options{}, srv.URL())
	for i := range 5 {
		if _, err := scan(c, message(3000*i, false)); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Accepted(); n != 1 {
		t.Errorf("%d connections for 1 OPTIONS and 5 sequential scans", n)
	}
	// After a finding the connection is not reused (its body is not
	// drained), and the next scan still works.
	if res, err := scan(c, message(10, true)); err != nil || !res.Infected {
		t.Fatal(res, err)
	}
	if res, err := scan(c, message(10, false)); err != nil || res.Infected {
		t.Fatal(res, err)
	}
}

func TestStaleConnectionIsRetried(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: -1})
	c := client(t, icap.Options{}, srv.URL())
	if _, err := scan(c, message(10, false)); err != nil {
		t.Fatal(err)
	}
	// The server drops its kept-alive connection; the next scan is
	// sent again on a new one.
	srv.DropConnections()
	if res, err := scan(c, message(10, false)); err != nil || res.Infected {
		t.Fatalf("after the server closed the idle connection: %+v %v", res, err)
	}
}

func TestOptionsTTL(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: -1, TTL: 60})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := client(t, icap.Options{Now: clock}, srv.URL())
	so, err := c.Refresh(context.Background())
	if err != nil || len(so) != 1 || so[0].TTL != time.Minute || so[0].ISTag != "fake-1" || !so[0].Allow204 || so[0].Preview != -1 {
		t.Fatalf("Refresh: %+v %v", so, err)
	}
	scan(c, message(10, false))
	advance(30 * time.Second)
	scan(c, message(10, false))
	if n := srv.Requests("OPTIONS"); n != 1 {
		t.Errorf("within the TTL: %d OPTIONS", n)
	}
	advance(31 * time.Second)
	scan(c, message(10, false))
	if n := srv.Requests("OPTIONS"); n != 2 {
		t.Errorf("after the TTL: %d OPTIONS, want 2", n)
	}
}

func TestOptionsFields(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Preview: 4096, MaxConnections: 7, ISTag: "engine-42"})
	c := client(t, icap.Options{}, srv.URL())
	so, err := c.Refresh(context.Background())
	if err != nil || len(so) != 1 {
		t.Fatal(so, err)
	}
	want := icap.ServiceOptions{Server: srv.URL(), Methods: []string{"RESPMOD"}, Preview: 4096, Allow204: true, MaxConnections: 7, ISTag: "engine-42", Service: "icaptest fake anti-virus"}
	if got := so[0]; got.Server != want.Server || got.Preview != want.Preview || !got.Allow204 || got.MaxConnections != 7 || got.ISTag != want.ISTag || got.Service != want.Service || len(got.Methods) != 1 {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestNoRespmod(t *testing.T) {
	srv := icaptest.Start(t, icaptest.Options{Methods: []string{"REQMOD"}})
	c := client(t, icap.Options{}, srv.URL())
	if _, err := scan(c, message(10, false)); !errors.Is(err, icap.ErrNoRespmod) || temporary(err) {
		t.Errorf("got %v, want a permanent ErrNoRespmod", err)
	}
	if err := c.Ping(context.Background()); err == nil {
		t.Error("Ping succeeded on a service without RESPMOD")
	}
}

func TestBadOptionsReply(t *testing.T) {
	for name, raw := range map[string]string{
		"no methods":  "ICAP/1.0 200 OK\r\nEncapsulated: null-body=0\r\n\r\n",
		"404":         "ICAP/1.0 404 Service Not Found\r\nEncapsulated: null-body=0\r\n\r\n",
		"bad preview": "ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nPreview: lots\r\nEncapsulated: null-body=0\r\n\r\n",
	} {
		srv := icaptest.Start(t, icaptest.Options{OptionsRaw: raw})
		c := client(t, icap.Options{}, srv.URL())
		if res, err := scan(c, message(10, false)); err == nil {
			t.Errorf("%s: got %+v", name, res)
		}
	}
}

func TestFailover(t *testing.T) {
	down := icaptest.Start(t, icaptest.Options{})
	downURL := down.URL()
	down.Close()
	bad := icaptest.Start(t, icaptest.Options{Preview: -1, Status: 500})
	good := icaptest.Start(t, icaptest.Options{Preview: -1, Signatures: sigs})
	c := client(t, icap.Options{}, downURL, bad.URL(), good.URL())
	for range 3 { // every starting point of the round-robin
		res, err := scan(c, message(10, true))
		if err != nil || !res.Infected || res.Server != good.URL() {
			t.Errorf("got %+v %v", res, err)
		}
	}
	// All down: an error naming each.
	c2 := client(t, icap.Options{}, downURL, bad.URL())
	_, err := scan(c2, message(10, false))
	if err == nil || !strings.Contains(err.Error(), downURL) || !strings.Contains(err.Error(), bad.URL()) || !temporary(err) {
		t.Errorf("all down: %v", err)
	}
}

func TestParseServer(t *testing.T) {
	for in, want := range map[string]string{
		"icap://127.0.0.1/avscan":            "icap://127.0.0.1:1344/avscan",
		"icap://av.example:11344/srv_clamav": "icap://av.example:11344/srv_clamav",
		"icap://[::1]:1344/virus_scan":       "icap://[::1]:1344/virus_scan",
		" icap://h/avscan?allow204=on ":      "icap://h:1344/avscan?allow204=on",
	} {
		s, err := icap.ParseServer(in)
		if err != nil || s.String() != want {
			t.Errorf("%q: got %v %v, want %s", in, s, err, want)
		}
	}
	for _, in := range []string{"", "127.0.0.1:1344", "http://h/avscan", "icap://h", "icap://h/", "icap://h:0/x", "icap://h:99999/x", "icap://u@h/x"} {
		if s, err := icap.ParseServer(in); err == nil {
			t.Errorf("%q: accepted as %v", in, s)
		}
	}
}

// BenchmarkScan1MB: the client's own cost against the in-process fake
// (which keeps no body and answers 204): throughput and allocations per
// scan, so memory does not grow with the message.
func BenchmarkScan1MB(b *testing.B) {
	srv := icaptest.Start(b, icaptest.Options{Preview: 1024})
	s, _ := icap.ParseServer(srv.URL())
	c, err := icap.New(icap.Options{Servers: []icap.Server{s}})
	if err != nil {
		b.Fatal(err)
	}
	m := message(1<<20, false)
	b.SetBytes(int64(len(m)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scan(c, m); err != nil {
			b.Fatal(err)
		}
	}
}
