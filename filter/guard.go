package filter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Drop says why a connection was closed by the filter itself rather than
// by the MTA: the reason label of the drop metric and log line.
type Drop string

// The drop reasons.
const (
	// DropMalformed: a milter packet that breaks the framing (length 0,
	// over MaxPacket, or a command without the strings it must carry).
	DropMalformed Drop = "malformed"
	// DropLimit: more concurrent MTA connections than Options.MaxConns.
	DropLimit Drop = "limit"
	// DropPanic: our code panicked in a session callback.
	DropPanic Drop = "panic"
)

// MaxPacket is the largest milter packet (command byte and data) we read.
// The largest an MTA sends is a body chunk of the biggest negotiable size,
// SMFIC_BODY with 1 MiB (SMFIP_MDS_1M); headers, macros and envelope
// commands are far smaller (Postfix caps a header at 100 kB by default).
const MaxPacket = 1<<20 + 1

// ErrMalformedPacket reports a milter packet refused before it reached the
// protocol library.
var ErrMalformedPacket = errors.New("filter: malformed milter packet")

// validPacket checks one milter packet (command byte first) for the
// structure go-milter's decoder relies on without checking it. Milter
// protocol (libmilter's mfdef.h / engine.c): every string argument is
// NUL-terminated; SMFIC_CONNECT is "host\0", a family byte and, unless the
// family is SMFIA_UNKNOWN ('U'), a 2-byte port and "address\0".
func validPacket(p []byte) error {
	if len(p) == 0 {
		return fmt.Errorf("%w: empty packet", ErrMalformedPacket)
	}
	code, data := p[0], p[1:]
	switch code {
	case 'C': // SMFIC_CONNECT
		i := bytes.IndexByte(data, 0)
		if i < 0 {
			return fmt.Errorf("%w: connect without a NUL after the host name", ErrMalformedPacket)
		}
		rest := data[i+1:]
		if len(rest) < 1 {
			return fmt.Errorf("%w: connect without a protocol family", ErrMalformedPacket)
		}
		if rest[0] != 'U' && (len(rest) < 3 || bytes.IndexByte(rest[3:], 0) < 0) {
			return fmt.Errorf("%w: connect without port and NUL-terminated address", ErrMalformedPacket)
		}
	case 'M', 'R', 'H': // SMFIC_MAIL, SMFIC_RCPT, SMFIC_HELO
		if bytes.IndexByte(data, 0) < 0 {
			return fmt.Errorf("%w: command %q without a NUL-terminated argument", ErrMalformedPacket, code)
		}
	case 'L': // SMFIC_HEADER: "name\0value\0"
		if bytes.Count(data, []byte{0}) != 2 || data[len(data)-1] != 0 {
			return fmt.Errorf("%w: header without two NUL-terminated strings", ErrMalformedPacket)
		}
	case 'D': // SMFIC_MACRO: the command byte it is for, then pairs
		if len(data) < 1 {
			return fmt.Errorf("%w: macro without a command", ErrMalformedPacket)
		}
	case 'O': // SMFIC_OPTNEG: version, actions, protocol
		if len(data) < 12 {
			return fmt.Errorf("%w: short option negotiation", ErrMalformedPacket)
		}
	}
	return nil
}

// guardConn validates the milter framing of what the MTA sends before
// go-milter reads it: each packet is read whole (up to smallPacket at its
// announced length; a longer one's buffer grows only as bytes arrive, so a
// hostile length allocates at most 64 KB), checked, and only then handed
// on. A bad packet closes this connection only.
type guardConn struct {
	net.Conn
	// mu is held by Read, and by Close once the connection is closed
	// (which ends a Read blocked on it) to give the buffers back.
	mu      sync.Mutex
	closed  bool
	br      *bufio.Reader // nil until the first read
	srv     *Server
	pending []byte // a validated packet (length prefix included) not yet read
	// buf holds small packets; it is reused once the previous packet was
	// read whole (go-milter copies each packet into its own buffer).
	buf     []byte
	release func()
	once    sync.Once
}

func (c *guardConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.pending) == 0 {
		c.pending = nil
		pkt, err := c.readPacket()
		if err != nil {
			return 0, err
		}
		c.pending = pkt
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// smallPacket is the largest packet read into a buffer of its announced
// size at once: the default body chunk (65535 bytes), every header and
// command. Larger ones grow as bytes arrive.
const smallPacket = 64 << 10

func (c *guardConn) readPacket() ([]byte, error) {
	if c.br == nil {
		// One read syscall takes a length prefix and its packet (or
		// several packets) instead of one per prefix and one or more per
		// packet.
		c.br = readerPool.Get().(*bufio.Reader)
		c.br.Reset(c.Conn)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxPacket {
		return nil, c.refuse(fmt.Errorf("%w: length %d (want 1 to %d)", ErrMalformedPacket, n, MaxPacket))
	}
	var pkt []byte
	if n <= smallPacket {
		if cap(c.buf) < int(4+n) {
			if c.buf == nil {
				c.buf = packetPool.Get().([]byte)
			}
			if cap(c.buf) < int(4+n) {
				c.buf = make([]byte, 4+n, min(max(int(4+n), 2*cap(c.buf)), smallPacket+4))
			}
		}
		pkt = c.buf[:4+n]
		copy(pkt, hdr[:])
		if _, err := io.ReadFull(c.br, pkt[4:]); err != nil {
			return nil, err
		}
	} else {
		var b bytes.Buffer
		b.Write(hdr[:])
		if _, err := io.CopyN(&b, c.br, int64(n)); err != nil {
			return nil, err
		}
		pkt = b.Bytes()
	}
	if err := validPacket(pkt[4:]); err != nil {
		return nil, c.refuse(err)
	}
	return pkt, nil
}

func (c *guardConn) refuse(err error) error {
	c.srv.drop(DropMalformed, "closing an MTA connection: malformed milter packet", "remote", c.RemoteAddr().String(), "error", err)
	c.Conn.Close()
	return err
}

func (c *guardConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.release()
		// A connection per message (as Postfix opens them) allocated a
		// 16 KB reader and its packet buffer each time: most of what
		// the milter side allocated.
		c.mu.Lock()
		c.closed = true
		if c.br != nil {
			c.br.Reset(nil)
			readerPool.Put(c.br)
			c.br = nil
		}
		if c.buf != nil && cap(c.buf) <= smallPacket+4 {
			packetPool.Put(c.buf[:0])
		}
		c.buf, c.pending = nil, nil
		c.mu.Unlock()
	})
	return err
}

var (
	// readerPool holds the connections' 16 KB readers.
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	// packetPool holds small packet buffers (see guardConn.buf).
	packetPool = sync.Pool{New: func() any { return make([]byte, 0, 4<<10) }}
)

// guardListener accepts MTA connections for go-milter: temporary accept
// errors (out of file descriptors, a connection aborted before accept)
// back off and retry instead of stopping the server, as net/http does;
// connections over the cap are closed at once.
type guardListener struct {
	net.Listener
	srv    *Server
	active atomic.Int64
	sleep  func(time.Duration) // time.Sleep; tests pass their own
}

// Backoff bounds for temporary accept errors (net/http's values).
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func (l *guardListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !temporary(err) {
				return nil, err
			}
			if delay == 0 {
				delay = acceptBackoffMin
			} else {
				delay = min(2*delay, acceptBackoffMax)
			}
			l.srv.accErr.Add(1)
			l.srv.rateLog("accept failed; retrying", "error", err, "retry_in", delay.String())
			l.sleep(delay)
			continue
		}
		delay = 0
		if max := l.srv.opts.MaxConns; max > 0 && l.active.Load() >= int64(max) {
			// Count before closing: whoever sees the close may look at the count.
			l.srv.drop(DropLimit, "refusing an MTA connection: max_connections reached", "max_connections", max)
			c.Close()
			continue
		}
		l.active.Add(1)
		return &guardConn{Conn: c, srv: l.srv, release: func() { l.active.Add(-1) }}, nil
	}
}

// temporary reports accept errors worth retrying: resource exhaustion and
// connections that died before we took them.
func temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// drop counts a connection we closed and logs it, at most once per
// rateLogEvery per process (a flood must not flood the log).
func (s *Server) drop(why Drop, msg string, args ...any) {
	if s.opts.OnDrop != nil {
		s.opts.OnDrop(why)
	}
	s.rateLog(msg, append(args, "reason", string(why))...)
}

const rateLogEvery = 10 * time.Second

func (s *Server) rateLog(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	s.suppressed.Add(1)
	if now-last < int64(rateLogEvery) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	n := s.suppressed.Swap(0)
	s.opts.Logger.Warn(msg, append(args, "events_since_last_line", n)...)
}
