package sssp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/virus/sssp"
	"github.com/mailwarden/mailwarden/policy/virus/sssp/sssptest"
)

const pattern = "MAILWARDEN-TEST-VIRUS"

var sigs = map[string]string{pattern: "Test-Fake-Virus"}

func message(n int, infected bool) []byte {
	b := bytes.Repeat([]byte("line of text\r\n"), n/14+1)
	if infected {
		b = append(b, pattern...)
	}
	return b
}

func client(t *testing.T, o sssp.Options, addrs ...string) *sssp.Client {
	t.Helper()
	for _, a := range addrs {
		s, err := sssp.ParseServer(a)
		if err != nil {
			t.Fatal(err)
		}
		o.Servers = append(o.Servers, s)
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	c, err := sssp.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func scan(c *sssp.Client, b []byte) (sssp.Result, error) {
	return c.Scan(context.Background(), func() io.Reader { return bytes.NewReader(b) }, int64(len(b)))
}

func temporary(err error) bool {
	var se *sssp.ServerError
	return errors.As(err, &se) && se.Temporary()
}

func TestCleanAndInfected(t *testing.T) {
	srv := sssptest.Start(t, sssptest.Options{Signatures: sigs})
	c := client(t, sssp.Options{}, srv.Addr())
	for _, n := range []int{0, 10, 1 << 20} {
		if res, err := scan(c, message(n, false)); err != nil || res.Infected {
			t.Errorf("%d clean: %+v %v", n, res, err)
		}
		res, err := scan(c, message(n, true))
		if err != nil || !res.Infected || res.Threat != "Test-Fake-Virus" || res.Server != srv.Addr() {
			t.Errorf("%d infected: %+v %v", n, res, err)
		}
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestOversize(t *testing.T) {
	srv := sssptest.Start(t, sssptest.Options{MaxScanData: 1000})
	c := client(t, sssp.Options{}, srv.Addr())
	res, err := scan(c, message(2000, true))
	if !errors.Is(err, sssp.ErrOversize) || res.Infected || temporary(err) {
		t.Errorf("REJ 4: %+v %v", res, err)
	}
	c2 := client(t, sssp.Options{MaxSize: 100}, srv.Addr())
	if _, err := scan(c2, message(200, false)); !errors.Is(err, sssp.ErrOversize) {
		t.Errorf("MaxSize: %v", err)
	}
	if srv.Scans() != 0 {
		t.Errorf("%d scans accepted", srv.Scans())
	}
	if _, err := c.Scan(context.Background(), func() io.Reader { return strings.NewReader("x") }, -1); !errors.Is(err, sssp.ErrSizeUnknown) {
		t.Errorf("unknown size: %v", err)
	}
}

func TestFailedObjectIsNotClean(t *testing.T) {
	srv := sssptest.Start(t, sssptest.Options{Signatures: sigs, FailObject: true})
	c := client(t, sssp.Options{}, srv.Addr())
	if res, err := scan(c, message(10, false)); !errors.Is(err, sssp.ErrScanFailed) || res.Infected {
		t.Errorf("FAIL line: %+v %v", res, err)
	}
	// A virus found elsewhere still wins.
	if res, err := scan(c, message(10, true)); err != nil || !res.Infected {
		t.Errorf("FAIL and VIRUS: %+v %v", res, err)
	}
}

func TestBadReplies(t *testing.T) {
	for name, raw := range map[string]string{
		"done fail":           "DONE FAIL 0212 Encrypted\n\n",
		"done ok odd code":    "DONE OK 021E Corrupt\n\n",
		"cut":                 "OK 0000 /x\n",
		"cut mid line":        "DONE OK 00",
		"garbage":             "HELLO\n",
		"bad code":            "DONE OK zz Done\n\n",
		"virus without name":  "VIRUS\nDONE OK 0203 x\n\n",
		"rej during scan":     "REJ 1\n",
		"long line":           strings.Repeat("x", 10000) + "\n",
		"control chars":       "DONE OK 0000 a\x00b\n",
		"0203 without VIRUS?": "DONE OK 0203 Virus found\n\n",
	} {
		srv := sssptest.Start(t, sssptest.Options{Reply: raw})
		c := client(t, sssp.Options{Timeout: 2 * time.Second}, srv.Addr())
		res, err := scan(c, message(10, false))
		if name == "0203 without VIRUS?" {
			if err != nil || !res.Infected {
				t.Errorf("%s: %+v %v, want infected", name, res, err)
			}
			continue
		}
		if err == nil || res.Infected || errors.Is(err, sssp.ErrTimeout) {
			t.Errorf("%s: %+v %v, want an error", name, res, err)
		}
	}
	for _, g := range []string{"OK SMTP/1.0", "REJ 2", "hello"} {
		srv := sssptest.Start(t, sssptest.Options{Greeting: g})
		c := client(t, sssp.Options{}, srv.Addr())
		if _, err := scan(c, message(10, false)); !errors.Is(err, sssp.ErrBadReply) {
			t.Errorf("greeting %q: %v", g, err)
		}
	}
}

func TestStallEndsAtDeadline(t *testing.T) {
	srv := sssptest.Start(t, sssptest.Options{Stall: true})
	c := client(t, sssp.Options{Timeout: 300 * time.Millisecond}, srv.Addr())
	start := time.Now()
	res, err := scan(c, message(1000, false))
	if !errors.Is(err, sssp.ErrTimeout) || res.Infected || !temporary(err) {
		t.Errorf("got %+v %v", res, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestMaxConnectionsAndFailover(t *testing.T) {
	srv := sssptest.Start(t, sssptest.Options{Delay: 30 * time.Millisecond})
	down := sssptest.Start(t, sssptest.Options{})
	downAddr := down.Addr()
	down.Close()
	c := client(t, sssp.Options{MaxConnections: 2}, downAddr, srv.Addr())
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := scan(c, message(100, false)); err != nil || res.Server != srv.Addr() {
				t.Errorf("%+v %v", res, err)
			}
		}()
	}
	wg.Wait()
	if srv.MaxActive() > 2 {
		t.Errorf("%d connections at once", srv.MaxActive())
	}
}

func TestParseLine(t *testing.T) {
	for in, want := range map[string]sssp.Line{
		"OK SSSP/1.0":                     {Kind: sssp.KindOK, Arg: "SSSP/1.0"},
		"ACC 4F1A/1":                      {Kind: sssp.KindACC, Arg: "4F1A/1"},
		"REJ 4":                           {Kind: sssp.KindREJ, Code: "4"},
		"VIRUS EICAR-AV-Test /tmp/x":      {Kind: sssp.KindVirus, Arg: "EICAR-AV-Test"},
		"FAIL 0212 /tmp/x.zip":            {Kind: sssp.KindFail, Code: "0212", Arg: "/tmp/x.zip"},
		"OK 0000 /tmp/x":                  {Kind: sssp.KindOK, Code: "0000", Arg: "/tmp/x"},
		"DONE OK 0000 The call succeeded": {Kind: sssp.KindDone, DoneOK: true, Code: "0000", Arg: "The call succeeded"},
		"DONE FAIL 0212 Encrypted":        {Kind: sssp.KindDone, Code: "0212", Arg: "Encrypted"},
		"":                                {Kind: sssp.KindInfo},
		"EVENT ONFILE /tmp/x":             {Kind: sssp.KindInfo, Arg: "ONFILE /tmp/x"},
		"BYE":                             {Kind: sssp.KindBye},
	} {
		got, err := sssp.ParseLine(in)
		if err != nil || got != want {
			t.Errorf("%q: got %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"VIRUS", "DONE", "DONE MAYBE 0000", "DONE OK 12", "FAIL x", "OK", "WHAT", "REJ"} {
		if l, err := sssp.ParseLine(in); err == nil {
			t.Errorf("%q: accepted as %+v", in, l)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"OK SSSP/1.0", "ACC 1", "REJ 4", "VIRUS EICAR /x", "DONE OK 0000 ok", "FAIL 0212 /x", "EVENT x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := sssp.ParseLine(s)
		if err != nil {
			return
		}
		if l.Kind == sssp.KindVirus && (l.Arg == "" || strings.ContainsAny(l.Arg, " \r\n")) {
			t.Fatalf("virus name %q from %q", l.Arg, s)
		}
		if l.Kind == sssp.KindDone && len(l.Code) != 4 {
			t.Fatalf("code %q", l.Code)
		}
	})
}

// FuzzScanReply: whatever a server answers after the data, the client does
// not panic or hang, and calls the message clean only after DONE OK 0000.
func FuzzScanReply(f *testing.F) {
	for _, s := range []string{"DONE OK 0000 ok\n\n", "VIRUS X /p\nDONE OK 0203 v\n\n", "FAIL 0212 /p\nDONE OK 0000 ok\n\n", "DONE FAIL 0001 x\n\n", "OK 0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		if reply == "" || strings.Contains(reply, "\x00") { // "" means the computed reply
			return
		}
		srv := sssptest.Start(t, sssptest.Options{Reply: reply})
		c := client(t, sssp.Options{Timeout: 2 * time.Second}, srv.Addr())
		res, err := scan(c, []byte("data"))
		if err == nil && !res.Infected && !hasDoneOK(reply) {
			t.Fatalf("clean from %q", reply)
		}
		if res.Infected && res.Threat == "" {
			t.Fatal("infected without a name")
		}
	})
}

func hasDoneOK(reply string) bool {
	for line := range strings.SplitSeq(reply, "\n") {
		if l, err := sssp.ParseLine(strings.TrimSuffix(line, "\r")); err == nil && l.Kind == sssp.KindDone && l.DoneOK && l.Code == "0000" {
			return true
		}
	}
	return false
}
