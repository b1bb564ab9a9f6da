package filter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/d--j/go-milter"
)

// pkt frames one milter packet.
func pkt(code byte, data ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(b, code), data...)
}

// optneg is an MTA's option negotiation: version 6, every action, no
// protocol flags.
var optneg = pkt('O', 0, 0, 0, 6, 0, 0, 0x01, 0xff, 0, 0, 0, 0)

// HostilePackets are the packets of issue 11 that made go-milter v0.10.2
// panic; each is sent after a good option negotiation.
var HostilePackets = map[string][]byte{
	"zero-length":             {0, 0, 0, 0},
	"connect-no-nul":          pkt('C', []byte("host")...),
	"connect-host-only":       pkt('C', []byte("host\x00")...),
	"connect-no-address-nul":  pkt('C', []byte("host\x004\x00\x19127.0.0.1")...),
	"mail-no-nul":             pkt('M', []byte("<a@b>")...),
	"rcpt-no-nul":             pkt('R', []byte("<a@b>")...),
	"huge-length":             {0x1f, 0xff, 0xff, 0xff, 'B'},
	"macro-empty":             pkt('D'),
	"header-one-string":       pkt('L', []byte("Subject")...),
	"optneg-short-after-open": pkt('O', 0, 0),
}

func TestValidPacket(t *testing.T) {
	good := [][]byte{
		pkt('C', []byte("host\x004\x00\x19127.0.0.1\x00")...),
		pkt('C', []byte("host\x00U")...),
		pkt('M', []byte("<a@b>\x00SIZE=1\x00")...),
		pkt('R', []byte("<a@b>\x00")...),
		pkt('H', []byte("helo\x00")...),
		pkt('L', []byte("Subject\x00 hi\x00")...),
		pkt('B', []byte("body")...),
		pkt('B'), pkt('E'), pkt('A'), pkt('Q'), pkt('N'), pkt('T'),
		pkt('D', []byte("C{j}\x00mx\x00")...),
		optneg,
	}
	for _, p := range good {
		if err := validPacket(p[4:]); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for name, p := range HostilePackets {
		if name == "huge-length" || name == "optneg-short-after-open" {
			continue // refused on length / by go-milter itself
		}
		data := p[4:]
		if err := validPacket(data); !errors.Is(err, ErrMalformedPacket) {
			t.Errorf("%s: %v, want ErrMalformedPacket", name, err)
		}
	}
}

// TestHostilePacketsKeepServing sends each hostile packet on its own
// connection, then runs a good transaction: the server must still serve
// (before the guard, each of these panicked go-milter and killed the
// process, test binary included).
func TestHostilePacketsKeepServing(t *testing.T) {
	var mu sync.Mutex
	drops := map[Drop]int{}
	ts := startServerOpts(t, "", nil, func(o *Options) {
		o.OnDrop = func(d Drop) { mu.Lock(); drops[d]++; mu.Unlock() }
	})
	for name, p := range HostilePackets {
		for _, withNeg := range []bool{false, true} {
			c, err := net.Dial("unix", ts.sock)
			if err != nil {
				t.Fatal(err)
			}
			if withNeg {
				c.Write(optneg)
				readPacket(t, c) // the negotiation answer
			}
			c.Write(p)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("%s: the server did not close the connection: %v", name, err)
			}
			c.Close()
		}
		cn := ts.connect(t, allProtocol)
		if o := cn.send(t, basicMsg("Q1")); o.act == nil || o.act.Type != milter.ActionAccept {
			t.Fatalf("after %s: %+v, want accept", name, o.act)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if drops[DropMalformed] < len(HostilePackets) {
		t.Errorf("malformed drops counted %d, want at least %d", drops[DropMalformed], len(HostilePackets))
	}
}

func readPacket(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var n uint32
	if err := binary.Read(c, binary.BigEndian, &n); err != nil {
		t.Fatalf("reading a packet: %v", err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAnnouncedLengthAllocatesNothing: 64 connections announce a 1 MiB
// packet and send one byte of it. Without the guard, go-milter allocates
// the announced length at once (64 MiB here, 512 MiB per connection at
// its own cap); with it, memory grows only with bytes that arrived.
func TestAnnouncedLengthAllocatesNothing(t *testing.T) {
	ts := startServer(t, "")
	var conns []net.Conn
	for range 4 { // warm up: the server's goroutines and buffers
		c, _ := net.Dial("unix", ts.sock)
		c.Write(optneg)
		readPacket(t, c)
		conns = append(conns, c)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 64 {
		c, err := net.Dial("unix", ts.sock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write(optneg)
		readPacket(t, c)
		c.Write([]byte{0, 0x10, 0, 0, 'B'}) // 1 MiB announced, 1 byte sent
	}
	time.Sleep(300 * time.Millisecond) // let the server read what was sent
	runtime.ReadMemStats(&after)
	for _, c := range conns {
		c.Close()
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("64 announced 1 MiB packets allocated %d bytes, want < 16 MiB", grew)
	}
}

// fakeListener fails Accept with errs, then hands out conns.
type fakeListener struct {
	errs  []error
	conns chan net.Conn
}

func (l *fakeListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &net.UnixAddr{} }

func TestAcceptBacksOff(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Err: &osSyscallError{syscall.EMFILE}}
	fl := &fakeListener{conns: make(chan net.Conn, 1)}
	for range 10 {
		fl.errs = append(fl.errs, emfile)
	}
	fl.errs = append(fl.errs, &net.OpError{Op: "accept", Err: syscall.ECONNABORTED})
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	fl.conns <- a
	srv := New(Options{Logger: slog.New(slog.DiscardHandler)})
	var slept []time.Duration
	g := &guardListener{Listener: fl, srv: srv, sleep: func(d time.Duration) { slept = append(slept, d) }}
	c, err := g.Accept()
	if err != nil {
		t.Fatalf("Accept: %v, want the connection after the temporary errors", err)
	}
	if _, ok := c.(*guardConn); !ok {
		t.Errorf("Accept gave %T, want *guardConn", c)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000}
	if len(slept) != len(want) {
		t.Fatalf("slept %v, want %v ms", slept, want)
	}
	for i := range want {
		if slept[i] != want[i]*time.Millisecond {
			t.Errorf("sleep %d: %v, want %v", i, slept[i], want[i]*time.Millisecond)
		}
	}
	if srv.AcceptErrors() != 11 {
		t.Errorf("AcceptErrors %d, want 11", srv.AcceptErrors())
	}
	close(fl.conns)
	if _, err := g.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
	}
}

type osSyscallError struct{ errno syscall.Errno }

func (e *osSyscallError) Error() string { return "accept4: " + e.errno.Error() }
func (e *osSyscallError) Unwrap() error { return e.errno }

// TestMaxConns: connections over the cap are closed at once and counted;
// once one closes, a new one is served.
func TestMaxConns(t *testing.T) {
	var mu sync.Mutex
	drops := map[Drop]int{}
	ts := startServerOpts(t, "", nil, func(o *Options) {
		o.MaxConns = 2
		o.OnDrop = func(d Drop) { mu.Lock(); drops[d]++; mu.Unlock() }
	})
	c1 := ts.connect(t, allProtocol)
	c2 := ts.connect(t, allProtocol)
	extra, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("third connection: read %d, %v; want EOF (closed at once)", n, err)
	}
	if got := ts.srv.Conns(); got != 2 {
		t.Errorf("Conns() = %d, want 2", got)
	}
	mu.Lock()
	if drops[DropLimit] != 1 {
		t.Errorf("limit drops %d, want 1", drops[DropLimit])
	}
	mu.Unlock()
	c1.s.Close()
	c2.send(t, basicMsg("Q2"))
	deadline := time.Now().Add(5 * time.Second)
	for ts.srv.Conns() > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c3 := ts.connect(t, allProtocol)
	if o := c3.send(t, basicMsg("Q3")); o.act == nil || o.act.Type != milter.ActionAccept {
		t.Fatalf("after a slot freed: %+v, want accept", o.act)
	}
}

// TestCallbackPanicIsRecovered: a panic in our own callback code becomes
// an error for that connection, logged and counted, never a crash.
func TestCallbackPanicIsRecovered(t *testing.T) {
	var drops []Drop
	srv := New(Options{Logger: slog.New(slog.DiscardHandler), OnDrop: func(d Drop) { drops = append(drops, d) }})
	s := &session{srv: srv} // no Holder: MailFrom dereferences nil
	resp, err := s.MailFrom("<a@b>", "", nil)
	if err == nil || resp != nil {
		t.Fatalf("MailFrom = %v, %v; want the recovered panic as an error", resp, err)
	}
	if len(drops) != 1 || drops[0] != DropPanic {
		t.Errorf("drops %v, want [panic]", drops)
	}
}

// FuzzServerWire drives the real server over its socket with arbitrary
// bytes, raw and after a good option negotiation; after each input a good
// transaction must still succeed.
func FuzzServerWire(f *testing.F) {
	for _, p := range HostilePackets {
		f.Add(p, true)
		f.Add(p, false)
	}
	f.Add(pkt('C', []byte("host\x004\x00\x19127.0.0.1\x00")...), true)
	f.Fuzz(func(t *testing.T, data []byte, negotiate bool) {
		ts := startServer(t, "")
		c, err := net.Dial("unix", ts.sock)
		if err != nil {
			t.Fatal(err)
		}
		if negotiate {
			c.Write(optneg)
		}
		c.Write(data)
		c.Close()
		cn := ts.connect(t, allProtocol)
		if o := cn.send(t, basicMsg("QF")); o.act == nil || o.act.Type != milter.ActionAccept {
			t.Fatalf("after %q: %+v, want accept", data, o.act)
		}
	})
}

// TestHeaderCapAnsweredAtOnce: the header field that takes a message past
// max_header_size decides the message at once, with the oversize reply:
// at that header when the MTA reads header replies, else at the first body
// chunk (Postfix negotiates SMFIP_NOHDR_REPLY), never at the end; the
// header kept so far is dropped.
func TestHeaderCapAnsweredAtOnce(t *testing.T) {
	ts := startServer(t, "", `max_header_size = "64KB"`)
	big := strings.Repeat("x", 20000)
	for _, tc := range []struct {
		proto    milter.OptProtocol
		atHeader int // the header field answered, 0: the body chunk
		name     string
	}{
		{allProtocol &^ milter.OptNoHeaderReply, 4, "header replies"},
		{allProtocol, 0, "no header replies"},
	} {
		c := ts.connect(t, tc.proto)
		c.macros.Set(milter.MacroQueueId, "QH")
		mustContinue(t, "mail")(c.s.Mail("<a@sender.test>", ""))
		mustContinue(t, "rcpt")(c.s.Rcpt("<bob@example.org>", ""))
		mustContinue(t, "data")(c.s.DataStart())
		var act *milter.Action
		n := 1
		for ; n <= 10; n++ {
			a, err := c.s.HeaderField("X-Big", " "+big, nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.Type != milter.ActionContinue {
				act = a
				break
			}
		}
		if tc.atHeader == 0 {
			if act != nil {
				t.Fatalf("%s: answered at header %d: %+v", tc.name, n, act)
			}
			mustContinue(t, "eoh")(c.s.HeaderEnd())
			a, err := c.s.BodyChunk([]byte("body\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			act, n = a, 0
		}
		if act == nil || act.Type != milter.ActionRejectWithCode || act.SMTPCode != 552 || n != tc.atHeader {
			t.Fatalf("%s: answered %+v at header %d, want 552 at %d", tc.name, act, n, tc.atHeader)
		}
		c.s.Abort(nil)
		// The connection still serves the next message.
		if o := c.send(t, basicMsg("QH2")); o.act == nil || o.act.Type != milter.ActionAccept {
			t.Fatalf("%s: next message: %+v", tc.name, o.act)
		}
	}
	if !strings.Contains(ts.logs.String(), "message-oversize") {
		t.Errorf("no summary line with message-oversize:\n%s", ts.logs.String())
	}
}

// TestMemoryBudget: bodies in flight together hold at most memory_budget
// bytes in memory; the rest go to spool files from their first byte.
func TestMemoryBudget(t *testing.T) {
	ts := startServer(t, "", `memory_budget = "100KB"`) // spool_memory is 64KB
	var conns []*conn
	for i := range 5 {
		c := ts.connect(t, allProtocol)
		c.macros.Set(milter.MacroQueueId, fmt.Sprintf("QM%d", i))
		mustContinue(t, "mail")(c.s.Mail("<a@sender.test>", ""))
		mustContinue(t, "rcpt")(c.s.Rcpt("<bob@example.org>", ""))
		mustContinue(t, "data")(c.s.DataStart())
		mustContinue(t, "eoh")(c.s.HeaderEnd())
		mustContinue(t, "body")(c.s.BodyChunk(bytes.Repeat([]byte("a"), 40000)))
		conns = append(conns, c)
	}
	if used := ts.srv.BodyMemory(); used > 100<<10 {
		t.Errorf("bodies in memory: %d bytes, budget 100 KiB", used)
	}
	files, _ := filepath.Glob(filepath.Join(ts.spool, "mailwarden-*.body"))
	if len(files) != 3 {
		t.Errorf("%d spool files, want 3 (two 40 kB bodies fit the 100 KiB budget)", len(files))
	}
	for _, c := range conns {
		if _, act, err := c.s.End(); err != nil || act.Type != milter.ActionAccept {
			t.Fatalf("end: %v %v", act, err)
		}
	}
	if used := ts.srv.BodyMemory(); used != 0 {
		t.Errorf("after the messages: %d bytes still counted", used)
	}
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGuardConnRecycles: a closed connection gives its reader and packet
// buffer back, the next one reads its own packets from them (nothing of
// the first one's left over), and a Close during a blocked Read ends it.
func TestGuardConnRecycles(t *testing.T) {
	pkt := func(data string) []byte {
		b := make([]byte, 4, 4+len(data))
		binary.BigEndian.PutUint32(b, uint32(len(data)))
		return append(b, data...)
	}
	for i := range 20 {
		client, server := net.Pipe()
		g := &guardConn{Conn: server, srv: &Server{}, release: func() {}}
		want := fmt.Sprintf("Lsubject-%d\x00value %s\x00", i, strings.Repeat("x", i*300))
		go func() {
			client.Write(pkt(want))
			client.Write(pkt("Q")) // a second packet behind the first in the reader
		}()
		got := make([]byte, 4+len(want))
		if _, err := io.ReadFull(g, got); err != nil {
			t.Fatal(err)
		}
		if string(got[4:]) != want {
			t.Fatalf("connection %d read %q, want %q", i, got[4:], want)
		}
		q := make([]byte, 5)
		if _, err := io.ReadFull(g, q); err != nil || q[4] != 'Q' {
			t.Fatalf("connection %d: second packet %q, %v", i, q, err)
		}
		done := make(chan error, 1)
		go func() { _, err := g.Read(make([]byte, 8)); done <- err }()
		time.Sleep(time.Millisecond)
		g.Close()
		if err := <-done; err == nil {
			t.Fatalf("connection %d: Read after Close returned no error", i)
		}
		if _, err := g.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("connection %d: Read on a closed connection: %v, want net.ErrClosed", i, err)
		}
		client.Close()
	}
}
