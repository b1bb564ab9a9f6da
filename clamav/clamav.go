// Package clamav is a client for clamd, the ClamAV daemon.
//
// Mechanism. A message is sent with clamd's INSTREAM command (clamd(8)):
// "nINSTREAM\n", then chunks each prefixed with their length as a 4-byte
// big-endian integer, then a zero-length chunk; clamd answers one line,
// "stream: OK", "stream: <signature> FOUND" or "<text> ERROR" (ParseReply).
// clamd decodes MIME and archives itself, so the raw message is sent as is,
// once. clamd refuses streams longer than its StreamMaxLength (clamd.conf)
// with "INSTREAM size limit exceeded. ERROR" and closes the connection, and
// it has no command that reports the limit: the client is told the same
// value (Options.StreamMaxLength) and refuses a larger message before
// sending a byte (ErrOversize).
//
// INSTREAM is spoken here, not through github.com/baruwa-enterprise/clamd
// (still used for PING, VERSION and STATS), because that library sends
// 1 KB chunks (clamd's single receiving thread then spends more CPU and
// several times the wall time on a 10 MB message), bounds only each chunk
// and reply line by its timeout (a slow clamd could hold a message for many
// times the timeout) and drops the last chunk when a reader returns data
// together with io.EOF (so the final bytes of a message, where a virus can
// sit, were never scanned). Here one deadline (the context's, or
// Options.Timeout) bounds the whole scan, failover included, the chunks are
// ChunkSize, and every byte is sent. For the library's commands, the call
// runs in its own goroutine and returns at the deadline; the library's
// per-operation timeout is set to what is left, so an abandoned goroutine
// ends soon after. NewClient of the library refuses a unix socket that does
// not exist yet; a client is made per connection here, so clamd may start
// after us.
//
// Several servers may be given: each scan starts at the next one in turn
// (round-robin) and fails over to the others on connection errors and
// clamd errors, within the same deadline.
package clamav

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/baruwa-enterprise/clamd"
)

// Errors. A *ServerError wraps the cause for one server.
var (
	// ErrOversize: the message is longer than clamd's StreamMaxLength
	// (known before sending, or reported by clamd). Not temporary: the
	// same message will always be too long.
	ErrOversize = errors.New("clamav: message larger than clamd StreamMaxLength")
	// ErrTimeout: the scan deadline passed. Temporary.
	ErrTimeout = errors.New("clamav: scan deadline exceeded")
	// ErrNoServers: the client has no server.
	ErrNoServers = errors.New("clamav: no clamd server configured")
)

// ServerError is a failure talking to one clamd.
type ServerError struct {
	Server string
	Err    error
}

func (e *ServerError) Error() string { return "clamav: " + e.Server + ": " + e.Err.Error() }
func (e *ServerError) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed (everything but
// oversize).
func (e *ServerError) Temporary() bool { return !errors.Is(e.Err, ErrOversize) }

// Server is one clamd address.
type Server struct {
	Network string // "unix" or "tcp"
	Address string // socket path or host:port
}

func (s Server) String() string { return s.Network + ":" + s.Address }

// ParseServer reads "unix:/path", "/path", "tcp:host:port" or "host:port".
func ParseServer(s string) (Server, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "unix:"):
		p := strings.TrimPrefix(s, "unix:")
		if !strings.HasPrefix(p, "/") {
			return Server{}, fmt.Errorf("clamav: %q: unix socket path must be absolute", s)
		}
		return Server{"unix", p}, nil
	case strings.HasPrefix(s, "/"):
		return Server{"unix", s}, nil
	case strings.HasPrefix(s, "tcp:"):
		s = strings.TrimPrefix(s, "tcp:")
	case strings.HasPrefix(s, "inet:"):
		s = strings.TrimPrefix(s, "inet:")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return Server{}, fmt.Errorf("clamav: %q: want unix:/path or tcp:host:port", s)
	}
	return Server{"tcp", s}, nil
}

// Options configures a Client.
type Options struct {
	// Servers are tried round-robin with failover.
	Servers []Server
	// StreamMaxLength is clamd's StreamMaxLength; 0 means no check here.
	StreamMaxLength int64
	// Timeout bounds a whole scan (or ping) when the context has no
	// earlier deadline; 0 means 2 minutes.
	Timeout time.Duration
	// ConnectTimeout bounds each connection attempt; 0 means 5 s.
	ConnectTimeout time.Duration
}

// Client talks to one or more clamd servers. It is safe for concurrent use.
type Client struct {
	opts Options
	next atomic.Uint64
}

// New checks the options and returns a Client. It does not connect.
func New(opts Options) (*Client, error) {
	if len(opts.Servers) == 0 {
		return nil, ErrNoServers
	}
	for _, s := range opts.Servers {
		if s.Network != "unix" && s.Network != "tcp" {
			return nil, fmt.Errorf("clamav: %s: unsupported network", s)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	return &Client{opts: opts}, nil
}

// Result is the outcome of a scan that clamd completed.
type Result struct {
	Infected  bool
	Signature string // with Infected
	Server    string // the clamd that answered
}

// Scan streams the message that open returns to clamd. open is called once
// per attempt, so a failover resends the whole message; size is the number
// of bytes it yields (-1 if unknown: then the length is counted while
// streaming).
func (c *Client) Scan(ctx context.Context, open func() io.Reader, size int64) (Result, error) {
	if c.opts.StreamMaxLength > 0 && size > c.opts.StreamMaxLength {
		return Result{}, fmt.Errorf("%w (%d > %d bytes)", ErrOversize, size, c.opts.StreamMaxLength)
	}
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	var errs []error
	for _, srv := range c.order() {
		res, err := c.scanOne(ctx, srv, open())
		if err == nil {
			return res, nil
		}
		errs = append(errs, err)
		if errors.Is(err, ErrOversize) || errors.Is(err, ErrTimeout) {
			break
		}
	}
	return Result{}, errors.Join(errs...)
}

// ScanReader is Scan for a reader that can be read only once: it fails over
// to another server only while nothing has been read.
func (c *Client) ScanReader(ctx context.Context, r io.Reader, size int64) (Result, error) {
	cr := &countReader{r: r}
	var errs []error
	if c.opts.StreamMaxLength > 0 && size > c.opts.StreamMaxLength {
		return Result{}, fmt.Errorf("%w (%d > %d bytes)", ErrOversize, size, c.opts.StreamMaxLength)
	}
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	for _, srv := range c.order() {
		res, err := c.scanOne(ctx, srv, cr)
		if err == nil {
			return res, nil
		}
		errs = append(errs, err)
		if cr.n.Load() > 0 || errors.Is(err, ErrOversize) || errors.Is(err, ErrTimeout) {
			break
		}
	}
	return Result{}, errors.Join(errs...)
}

type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Ping sends PING to every server and returns nil if one answers PONG.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	var errs []error
	for _, srv := range c.order() {
		err := c.run(ctx, srv, func(cl *clamd.Client) error {
			ok, err := cl.Ping(ctx)
			if err == nil && !ok {
				err = errors.New("no PONG")
			}
			return err
		})
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if errors.Is(err, ErrTimeout) {
			break
		}
	}
	return errors.Join(errs...)
}

// Version returns the VERSION reply of the first server that answers, e.g.
// "ClamAV 1.4.6/27470/Mon Nov 23 09:26:10 2026".
func (c *Client) Version(ctx context.Context) (string, error) {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	var errs []error
	for _, srv := range c.order() {
		var v string
		err := c.run(ctx, srv, func(cl *clamd.Client) (err error) {
			v, err = cl.Version(ctx)
			return err
		})
		if err == nil {
			return strings.TrimRight(v, "\x00\n"), nil
		}
		errs = append(errs, err)
		if errors.Is(err, ErrTimeout) {
			break
		}
	}
	return "", errors.Join(errs...)
}

// MaxThreads is the number of scans the servers run at once: the sum of
// each server's thread pool maximum, from clamd's STATS reply
// ("THREADS: live 1  idle 0 max 10 idle-timeout 30"; clamd.conf MaxThreads,
// 10 by default). Every server must answer: a scan may go to any of them.
func (c *Client) MaxThreads(ctx context.Context) (int, error) {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	total := 0
	for _, srv := range c.opts.Servers {
		var st string
		err := c.run(ctx, srv, func(cl *clamd.Client) (err error) {
			st, err = cl.Stats(ctx)
			return err
		})
		if err != nil {
			return 0, err
		}
		n, err := ParseMaxThreads(st)
		if err != nil {
			return 0, &ServerError{srv.String(), err}
		}
		total += n
	}
	return total, nil
}

// ErrNoThreads means a STATS reply had no thread pool maximum.
var ErrNoThreads = errors.New("clamav: STATS reply without \"THREADS: ... max N\"")

// ParseMaxThreads returns the "max" of the THREADS line of a STATS reply.
func ParseMaxThreads(stats string) (int, error) {
	for line := range strings.SplitSeq(stats, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "THREADS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "max" {
				if n, err := strconv.Atoi(f[i+1]); err == nil && n > 0 {
					return n, nil
				}
			}
		}
	}
	return 0, ErrNoThreads
}

// Servers returns the configured servers.
func (c *Client) Servers() []Server { return c.opts.Servers }

func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// order returns the servers starting with the next one in turn.
func (c *Client) order() []Server {
	n := len(c.opts.Servers)
	start := int(c.next.Add(1)-1) % n
	out := make([]Server, 0, n)
	for i := range n {
		out = append(out, c.opts.Servers[(start+i)%n])
	}
	return out
}

// run calls fn with a library client for srv, bounded by ctx's deadline
// even when the library is not.
func (c *Client) run(ctx context.Context, srv Server, fn func(*clamd.Client) error) error {
	dl, _ := ctx.Deadline() // always set by c.deadline
	left := time.Until(dl)
	if left <= 0 {
		return &ServerError{srv.String(), ErrTimeout}
	}
	cl, err := clamd.NewClient(srv.Network, srv.Address)
	if err != nil {
		return &ServerError{srv.String(), err}
	}
	cl.SetConnRetries(0)
	cl.SetConnTimeout(min(c.opts.ConnectTimeout, left))
	// The library sets this again before each chunk and reply line; with
	// what is left of the deadline, an abandoned call still ends soon.
	cl.SetCmdTimeout(left)
	done := make(chan error, 1)
	go func() {
		defer func() {
			if x := recover(); x != nil {
				done <- fmt.Errorf("clamav: client panicked: %v", x)
			}
		}()
		done <- fn(cl)
	}()
	select {
	case err := <-done:
		if err != nil {
			if ctx.Err() != nil || isTimeout(err) && time.Now().After(dl) {
				err = ErrTimeout
			}
			return &ServerError{srv.String(), classify(err)}
		}
		return nil
	case <-ctx.Done():
		return &ServerError{srv.String(), ErrTimeout}
	}
}

// ChunkSize is the size of the INSTREAM chunks sent to clamd. clamd's
// one receiving thread handles every chunk of every stream before a scan
// starts, so chunks of the library's 1 KB cost clamd ~40 % more CPU and
// several times the wall time on a 10 MB message (test/bench/compare.sh,
// BIG=50), and cost us one read, one write and one allocation each.
const ChunkSize = 256 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 4+ChunkSize); return &b }}

// scanOne streams r to srv with INSTREAM (clamd(8)): "nINSTREAM\n", chunks
// of ChunkSize each prefixed with its length as a 4-byte big-endian
// integer, a zero-length chunk, then one reply line. The context's
// deadline bounds the whole exchange, dial included.
func (c *Client) scanOne(ctx context.Context, srv Server, r io.Reader) (Result, error) {
	g := &guardReader{r: r, ctx: ctx, max: c.opts.StreamMaxLength}
	dl, _ := ctx.Deadline() // always set by c.deadline
	if time.Until(dl) <= 0 {
		return Result{}, &ServerError{srv.String(), ErrTimeout}
	}
	d := net.Dialer{Timeout: min(c.opts.ConnectTimeout, time.Until(dl))}
	conn, err := d.DialContext(ctx, srv.Network, srv.Address)
	if err != nil {
		if ctx.Err() != nil {
			err = ErrTimeout
		}
		return Result{}, &ServerError{srv.String(), classify(err)}
	}
	defer conn.Close()
	conn.SetDeadline(dl)
	// A cancelled context (not only a passed deadline) ends the exchange.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	werr := c.send(conn, g)
	if werr != nil && (g.oversize.Load() || errors.Is(werr, ErrTimeout)) {
		err := werr
		if g.oversize.Load() {
			err = ErrOversize
		}
		return Result{}, &ServerError{srv.String(), err}
	}
	// After a failed write clamd may still have said why before closing
	// ("INSTREAM size limit exceeded. ERROR"): read what it sent.
	line, rerr := bufio.NewReaderSize(conn, 512).ReadString('\n')
	if rerr == nil || werr != nil && line != "" {
		if rep, err := ParseReply(line); err == nil {
			switch rep.Status {
			case ReplyOK:
				return Result{Server: srv.String()}, nil
			case ReplyFound:
				return Result{Infected: true, Signature: rep.Signature, Server: srv.String()}, nil
			}
			if werr != nil {
				// clamd cut the stream before its end, after fewer bytes
				// than we were told it takes: a configuration mismatch,
				// an error (temporary) rather than a verdict on the message.
				return Result{}, &ServerError{srv.String(), fmt.Errorf("clamd: %s (clamd closed the stream after %d bytes: is its StreamMaxLength lower than the %d configured here?)", rep.Message, g.n.Load(), c.opts.StreamMaxLength)}
			}
			return Result{}, &ServerError{srv.String(), classify(fmt.Errorf("clamd: %s", rep.Message))}
		} else if werr == nil {
			return Result{}, &ServerError{srv.String(), err}
		}
	}
	err = werr
	if err == nil {
		err = rerr
	}
	switch {
	case ctx.Err() != nil || isTimeout(err):
		err = ErrTimeout
	case werr == nil && rerr == io.EOF:
		err = errors.New("clamd closed the connection without a reply")
	case werr != nil && g.n.Load() > 0 && (errors.Is(werr, syscall.EPIPE) || errors.Is(werr, syscall.ECONNRESET)):
		// clamd closes the connection in the middle of a stream longer
		// than its StreamMaxLength.
		err = fmt.Errorf("%w (clamd closed the stream after %d bytes: is its StreamMaxLength lower than the %d configured here?)", werr, g.n.Load(), c.opts.StreamMaxLength)
	}
	return Result{}, &ServerError{srv.String(), classify(err)}
}

// send writes the INSTREAM command, the chunks and the end marker, one
// write per chunk (its length prefix in the same buffer).
func (c *Client) send(conn net.Conn, r io.Reader) error {
	if _, err := io.WriteString(conn, "nINSTREAM\n"); err != nil {
		return err
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, err := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf[:4], uint32(n))
			if _, werr := conn.Write(buf[:4+n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	_, err := conn.Write([]byte{0, 0, 0, 0})
	return err
}

// classify maps the library's plain-text errors to ours.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrTimeout) || errors.Is(err, ErrOversize) {
		return err
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "size limit exceeded"):
		// "INSTREAM size limit exceeded. ERROR"
		return fmt.Errorf("%w: clamd said %q", ErrOversize, msg)
	case strings.Contains(msg, "does not exist"), errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("clamd socket missing (is clamd running?): %w", err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connection refused (is clamd running?): %w", err)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// guardReader is what a scan reads. It never returns data together with
// io.EOF (a reader that does is still read to its end), stops at the scan
// deadline, and stops before exceeding StreamMaxLength (clamd would refuse
// the stream and close the connection in the middle of our writes).
type guardReader struct {
	r        io.Reader
	ctx      context.Context
	max      int64
	n        atomic.Int64 // read by Scan while an abandoned call may still run
	eof      bool
	oversize atomic.Bool
}

func (g *guardReader) Read(p []byte) (int, error) {
	if g.eof {
		return 0, io.EOF
	}
	if err := g.ctx.Err(); err != nil {
		return 0, ErrTimeout
	}
	n, err := g.r.Read(p)
	if total := g.n.Add(int64(n)); g.max > 0 && total > g.max {
		g.oversize.Store(true)
		return 0, ErrOversize
	}
	if err == io.EOF {
		g.eof = true
		if n > 0 {
			return n, nil // EOF comes with the next call
		}
	}
	return n, err
}
