package e2e_test

// Issue 11: no packet, connection count, header size or reload can take
// the daemon down. Each test runs the real binary.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/d--j/go-milter"
	"github.com/mailwarden/mailwarden/test/harness"
)

const relConfig = `
authserv_id = "mx.e2e.test"
local_domains = ["example.org"]
%s
[store]
backend = "%s"
redis_url = "%s"
[auth.spf]
enabled = false
[auth.dkim]
enabled = false
[auth.dmarc]
enabled = false
[spam]
enabled = false
[virus]
enabled = false
%s
`

func relTOML(top, backend, redisURL, extra string) string {
	if backend == "" {
		backend = "memory"
	}
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:1/0"
	}
	return fmt.Sprintf(relConfig, top, backend, redisURL, extra)
}

func relSock(d *harness.Daemon) string {
	s, ok := strings.CutPrefix(d.Addr(), "unix:")
	if !ok {
		panic("not a unix socket: " + d.Addr())
	}
	return s
}

func relPkt(code byte, data string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(b, code), data...)
}

// relOptneg is an MTA's option negotiation: version 6, all actions.
var relOptneg = relPkt('O', "\x00\x00\x00\x06\x00\x00\x01\xff\x00\x00\x00\x00")

// relHostile are the packets of issue 11.1 (each crashed v0.10.2's parser).
var relHostile = []struct {
	name string
	pkt  []byte
}{
	{"zero-length", []byte{0, 0, 0, 0}},
	{"connect-no-nul", relPkt('C', "host")},
	{"connect-host-only", relPkt('C', "host\x00")},
	{"mail-no-nul", relPkt('M', "<a@b>")},
	{"rcpt-no-nul", relPkt('R', "<a@b>")},
	{"huge-length", []byte{0x1f, 0xff, 0xff, 0xff, 'B'}},
}

// relSession runs one normal milter transaction and returns the final
// action.
func relSession(t *testing.T, sock string, header [][2]string) (*milter.Action, error) {
	t.Helper()
	cl := milter.NewClient("unix", sock, milter.WithReadTimeout(30*time.Second), milter.WithWriteTimeout(30*time.Second),
		milter.WithActions(milter.AllClientSupportedActionMasks))
	macros := milter.NewMacroBag()
	macros.Set(milter.MacroQueueId, fmt.Sprintf("REL%d", time.Now().UnixNano()%1e9))
	s, err := cl.Session(macros)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	steps := []func() (*milter.Action, error){
		func() (*milter.Action, error) {
			return s.Conn("client.e2e.test", milter.FamilyInet, 40000, "192.0.2.10")
		},
		func() (*milter.Action, error) { return s.Helo("client.e2e.test") },
		func() (*milter.Action, error) { return s.Mail("<alice@sender.test>", "") },
		func() (*milter.Action, error) { return s.Rcpt("<bob@example.org>", "") },
		func() (*milter.Action, error) { return s.DataStart() },
	}
	for _, h := range header {
		steps = append(steps, func() (*milter.Action, error) { return s.HeaderField(h[0], h[1], nil) })
	}
	steps = append(steps, func() (*milter.Action, error) { return s.HeaderEnd() })
	for _, st := range steps {
		a, err := st()
		if err != nil {
			return nil, err
		}
		if a.Type != milter.ActionContinue {
			return a, nil
		}
	}
	_, act, err := s.BodyReadFrom(strings.NewReader("Hello Bob.\r\n"))
	return act, err
}

var relHeader = [][2]string{{"From", " alice@sender.test"}, {"To", " bob@example.org"}, {"Subject", " lunch"}}

func relMustServe(t *testing.T, d *harness.Daemon) {
	t.Helper()
	act, err := relSession(t, relSock(d), relHeader)
	if err != nil {
		t.Fatalf("a normal session failed: %v\n%s", err, d.Stderr())
	}
	if act.Type != milter.ActionAccept {
		t.Fatalf("a normal session: %+v, want accept", act)
	}
	if gone, err := d.Exited(); gone {
		t.Fatalf("the daemon exited: %v\n%s", err, d.Stderr())
	}
}

// TestReliabilityHostilePackets (issue 11.1): each hostile packet, raw and
// after a good negotiation, closes only its own connection; a session held
// open meanwhile and new sessions are still served.
func TestReliabilityHostilePackets(t *testing.T) {
	d := harness.StartMailwarden(t, relTOML("", "", "", ""))
	sock := relSock(d)
	// A session in flight across the attack: it must survive.
	idle, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write(relOptneg)
	for _, h := range relHostile {
		for _, neg := range []bool{false, true} {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatalf("%s: dial: %v\n%s", h.name, err, d.Stderr())
			}
			if neg {
				c.Write(relOptneg)
			}
			c.Write(h.pkt)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("%s: connection not closed: %v", h.name, err)
			}
			c.Close()
		}
		relMustServe(t, d)
	}
	// The idle connection negotiated before the attack is still open.
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	var n uint32
	if err := binary.Read(idle, binary.BigEndian, &n); err != nil || n < 13 {
		t.Errorf("the connection negotiated before the attack: %d, %v", n, err)
	}
	if !strings.Contains(d.Stderr(), "malformed milter packet") {
		t.Errorf("no log line for the malformed packets")
	}
}

// relVmRSS is the resident set of pid in bytes.
func relVmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// relFDs is the number of open descriptors of pid.
func relFDs(pid int) int {
	es, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es)
}

// TestReliabilityFDLimit (issue 11.2): under a 1,024 open-file limit,
// 1,100 connections that negotiate and then idle do not stop the daemon.
// With the default cap (max_connections 400) the excess is closed at once;
// with no cap, accept runs out of descriptors (EMFILE) and backs off. Either
// way the daemon keeps serving.
func TestReliabilityFDLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		top  string
		held int // connections the daemon answers, -1: not checked
	}{
		{"cap", "", 400},
		{"no-cap", "[listen]\nmax_connections = 0\n", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := harness.StartMailwardenWith(t, relTOML("", "", "", tc.top), harness.DaemonOptions{NoFile: 1024})
			sock := relSock(d)
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := range 1100 {
				c, err := net.Dial("unix", sock)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				c.Write(relOptneg)
				conns = append(conns, c)
			}
			answered := 0
			for _, c := range conns {
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				var n uint32
				if binary.Read(c, binary.BigEndian, &n) == nil {
					answered++
				}
			}
			fds := relFDs(d.PID())
			t.Logf("%s: %d of 1100 connections negotiated; daemon holds %d descriptors (limit 1024)", tc.name, answered, fds)
			if tc.held >= 0 && answered != tc.held {
				t.Errorf("%d connections served, want max_connections = %d", answered, tc.held)
			}
			if gone, err := d.Exited(); gone {
				t.Fatalf("the daemon exited under the fd limit: %v\n%s", err, d.Stderr())
			}
			// Free slots, more than the connections still waiting in the
			// listen backlog (accepted first, in order); a real session must
			// then complete.
			for _, c := range conns[:300] {
				c.Close()
			}
			conns = conns[300:]
			deadline := time.Now().Add(15 * time.Second)
			for {
				act, err := relSession(t, sock, relHeader)
				if err == nil && act.Type == milter.ActionAccept {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no session completed under the fd limit: %v %v\n%s", act, err, d.Stderr())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if tc.held >= 0 && !strings.Contains(d.Stderr(), "max_connections reached") {
				t.Errorf("no log line for the refused connections")
			}
			if tc.held < 0 && !strings.Contains(d.Stderr(), "accept failed; retrying") {
				t.Errorf("no log line for the accept errors (EMFILE)")
			}
		})
	}
}

// TestReliabilityMemoryBounds (issue 11.3): 20 connections announcing the
// 512 MB packet maximum, 20 announcing 1 MiB and sending one byte, and 4
// sessions sending 60 header fields of 900 kB each leave the daemon's RSS
// within a small bound of its idle RSS.
func TestReliabilityMemoryBounds(t *testing.T) {
	d := harness.StartMailwarden(t, relTOML("", "", "", ""))
	sock := relSock(d)
	relMustServe(t, d)
	base := relVmRSS(t, d.PID())
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 40 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write(relOptneg)
		if i < 20 {
			c.Write([]byte{0x1f, 0xff, 0xff, 0xff, 'B'})
		} else {
			c.Write([]byte{0, 0x10, 0, 0, 'B'})
		}
	}
	big := " " + strings.Repeat("x", 900<<10)
	var header [][2]string
	for range 60 {
		header = append(header, [2]string{"X-Big", big})
	}
	done := make(chan error, 4)
	for range 4 {
		go func() {
			act, err := relSession(t, sock, header)
			if err == nil && (act.Type != milter.ActionRejectWithCode || act.SMTPCode != 552) {
				err = fmt.Errorf("answer %+v, want 552 (max_header_size)", act)
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Errorf("header flood session: %v", err)
		}
	}
	peak := relVmRSS(t, d.PID())
	t.Logf("VmRSS idle %d MB, after the floods %d MB", base>>20, peak>>20)
	if peak-base > 64<<20 {
		t.Errorf("RSS grew by %d MB, want < 64 MB", (peak-base)>>20)
	}
	relMustServe(t, d)
}

// TestReliabilityRedisReloads (issue 11.4): 200 reloads with the Redis
// store leave the daemon's goroutines where they were (go_goroutines).
func TestReliabilityRedisReloads(t *testing.T) {
	addr := harness.StartRedis(t)
	port := opsFreePort(t)
	toml := relTOML("", "redis", "redis://"+addr+"/0", fmt.Sprintf("[metrics]\naddress = \"127.0.0.1:%d\"\n", port))
	d := harness.StartMailwarden(t, toml)
	maddr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := range 5 { // warm up: every lazily started goroutine
		if _, ok := d.ReloadWait(t, toml, 20*time.Second); !ok {
			t.Fatalf("reload %d refused\n%s", i, d.Stderr())
		}
	}
	base := opsMetric(opsScrape(t, maddr), "go_goroutines ")
	for i := range 200 {
		if _, ok := d.ReloadWait(t, toml, 20*time.Second); !ok {
			t.Fatalf("reload %d refused\n%s", i, d.Stderr())
		}
	}
	time.Sleep(500 * time.Millisecond)
	after := opsMetric(opsScrape(t, maddr), "go_goroutines ")
	t.Logf("goroutines: %v before 200 reloads, %v after", base, after)
	if base <= 0 || after > base+5 {
		t.Errorf("goroutines %v after 200 reloads, %v before", after, base)
	}
	relMustServe(t, d)
}

// TestReliabilityEmptyReloadAndLeftovers (issues 11.5, 11.7): spool files
// left in temp_dir are removed at start; a reload to an empty file is
// refused, saying why, and the old config stays in force.
func TestReliabilityEmptyReloadAndLeftovers(t *testing.T) {
	spoolDir := t.TempDir()
	left := filepath.Join(spoolDir, "mailwarden-4242.body")
	os.WriteFile(left, []byte("a body from a killed daemon"), 0o600)
	d := harness.StartMailwarden(t, relTOML("", "", "", fmt.Sprintf("[message]\ntemp_dir = %q\n", spoolDir)))
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("leftover spool file still there after start: %v", err)
	}
	n := len(d.Logs())
	if err := os.WriteFile(d.ConfigPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d.Signal(t, syscall.SIGHUP)
	line := d.WaitLogAfter(t, n, harness.MsgIs("config reload refused"), 20*time.Second)
	if s := fmt.Sprint(line); !strings.Contains(s, "empty file") {
		t.Errorf("refusal does not say why: %v", line)
	}
	relMustServe(t, d)
}

// TestReliabilityConcurrentLargeMessages (issue 11.9) measures the peak
// RSS of the daemon while 100 sessions each send a 20 MB text message at
// once (spam scoring on, the check that reads the decoded text), polling
// /proc/PID/status every 20 ms, and asserts it stays under the bound the
// README documents.
func TestReliabilityConcurrentLargeMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("2 GB through the milter socket")
	}
	d := harness.StartMailwarden(t, strings.Replace(relTOML("", "", "", ""), "[spam]\nenabled = false\n", "", 1))
	sock := relSock(d)
	relMustServe(t, d)
	base := relVmRSS(t, d.PID())
	line := strings.Repeat("lorem ipsum dolor sit amet consectetur adipiscing elit sed do ", 1) + "\r\n"
	body := strings.Repeat(line, (20<<20)/len(line))
	stop := make(chan struct{})
	peakc := make(chan int64)
	go func() {
		var peak int64
		for {
			select {
			case <-stop:
				peakc <- peak
				return
			case <-time.After(20 * time.Millisecond):
				if r := relVmRSS(t, d.PID()); r > peak {
					peak = r
				}
			}
		}
	}()
	const n = 100
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		go func() {
			cl := milter.NewClient("unix", sock, milter.WithReadTimeout(5*time.Minute), milter.WithWriteTimeout(5*time.Minute),
				milter.WithActions(milter.AllClientSupportedActionMasks))
			s, err := cl.Session(milter.NewMacroBag())
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			for _, st := range []func() (*milter.Action, error){
				func() (*milter.Action, error) {
					return s.Conn("client.e2e.test", milter.FamilyInet, 40000, "192.0.2.10")
				},
				func() (*milter.Action, error) { return s.Helo("client.e2e.test") },
				func() (*milter.Action, error) { return s.Mail("<alice@sender.test>", "") },
				func() (*milter.Action, error) { return s.Rcpt("<bob@example.org>", "") },
				func() (*milter.Action, error) { return s.DataStart() },
				func() (*milter.Action, error) { return s.HeaderField("Subject", " big", nil) },
				func() (*milter.Action, error) { return s.HeaderEnd() },
			} {
				if _, err := st(); err != nil {
					errs <- err
					return
				}
			}
			_, _, err = s.BodyReadFrom(strings.NewReader(body))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("session: %v", err)
		}
	}
	close(stop)
	peak := <-peakc
	t.Logf("%d concurrent 20 MB messages in %v: VmRSS idle %d MB, peak %d MB", n, time.Since(start).Round(time.Second), base>>20, peak>>20)
	if peak > 400<<20 {
		t.Errorf("peak RSS %d MB, want < 400 MB (README, Memory)", peak>>20)
	}
}
