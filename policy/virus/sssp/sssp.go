// Package sssp is a client for Sophos's SSSP (the Sophos Simple Scanning
// Protocol of the SAV Dynamic Interface, savdid), for using a Sophos engine
// as a second anti-virus. It imports nothing from this module.
//
// Mechanism (SAVDI user manual, "SSSP"): the server greets with
// "OK SSSP/1.0"; the client answers "SSSP/1.0" and is accepted with
// "ACC <id>"; "SCANDATA <length>" is accepted ("ACC") or rejected
// ("REJ <code>", REJ 4: more data than the server's maxscandata), then the
// length bytes follow; the server reports per object "VIRUS <name> <path>",
// "OK <code> <path>" or "FAIL <code> <path>" (and EVENT/TYPE/FILE lines
// when asked for), then "DONE OK|FAIL <code> <text>" and an empty line.
// "BYE" ends the session.
//
// Verdicts, failing closed: any VIRUS line is infected; otherwise DONE OK
// 0000 without a FAIL line is clean; DONE FAIL, a FAIL line (an object the
// engine could not scan: encrypted, corrupt), a REJ, an unknown line or a
// cut connection is an error; REJ 4 and a message above Options.MaxSize
// are ErrOversize. One deadline bounds the whole scan, failover included;
// at most Options.MaxConnections scans run at once.
package sssp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Errors. A *ServerError wraps the cause for one server.
var (
	// ErrOversize: larger than Options.MaxSize, or refused by the server
	// (REJ 4). Not temporary.
	ErrOversize = errors.New("sssp: message larger than the scanner accepts")
	// ErrTimeout: the scan deadline passed. Temporary.
	ErrTimeout = errors.New("sssp: scan deadline exceeded")
	// ErrNoServers: the client has no server.
	ErrNoServers = errors.New("sssp: no SSSP server configured")
	// ErrBadReply: the server's reply is not SSSP.
	ErrBadReply = errors.New("sssp: malformed reply")
	// ErrRejected: the server refused a request (REJ).
	ErrRejected = errors.New("sssp: request rejected")
	// ErrScanFailed: the engine could not scan (part of) the message
	// (DONE FAIL or a FAIL line).
	ErrScanFailed = errors.New("sssp: scan failed")
	// ErrSizeUnknown: SCANDATA needs the length first.
	ErrSizeUnknown = errors.New("sssp: message size unknown")
)

// ServerError is a failure talking to one SSSP server.
type ServerError struct {
	Server string
	Err    error
}

func (e *ServerError) Error() string { return "sssp: " + e.Server + ": " + e.Err.Error() }
func (e *ServerError) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed (not for
// oversize, and not for an object the engine cannot scan).
func (e *ServerError) Temporary() bool {
	return !errors.Is(e.Err, ErrOversize) && !errors.Is(e.Err, ErrSizeUnknown) && !errors.Is(e.Err, errFailLine)
}

var errFailLine = fmt.Errorf("%w: an object could not be scanned", ErrScanFailed)

// Server is one savdid address.
type Server struct {
	Network string // "unix" or "tcp"
	Address string
}

func (s Server) String() string { return s.Network + ":" + s.Address }

// ParseServer reads "unix:/path", "/path", "tcp:host:port" or "host:port".
func ParseServer(s string) (Server, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "unix:"):
		p := strings.TrimPrefix(s, "unix:")
		if !strings.HasPrefix(p, "/") {
			return Server{}, fmt.Errorf("sssp: %q: unix socket path must be absolute", s)
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
		return Server{}, fmt.Errorf("sssp: %q: want unix:/path or tcp:host:port", s)
	}
	return Server{"tcp", s}, nil
}

// Options configures a Client.
type Options struct {
	Servers []Server
	// Timeout bounds a whole scan when the context has no earlier
	// deadline; 0 means 2 minutes.
	Timeout time.Duration
	// ConnectTimeout bounds each connection attempt; 0 means 5 s.
	ConnectTimeout time.Duration
	// MaxSize refuses larger messages before connecting; 0: no limit
	// here (savdid's maxscandata then answers REJ 4).
	MaxSize int64
	// MaxConnections caps concurrent scans; 0 means 16.
	MaxConnections int
	// Dial, if set, replaces net.Dialer (tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Result is the outcome of a scan that a server completed.
type Result struct {
	Infected bool
	Threat   string // with Infected (the first VIRUS line's name)
	Server   string
}

// Client talks to one or more savdid servers; safe for concurrent use.
type Client struct {
	opts  Options
	slots chan struct{}
	next  atomic.Uint64
}

// New checks the options and returns a Client. It does not connect.
func New(opts Options) (*Client, error) {
	if len(opts.Servers) == 0 {
		return nil, ErrNoServers
	}
	for _, s := range opts.Servers {
		if s.Network != "unix" && s.Network != "tcp" {
			return nil, fmt.Errorf("sssp: %s: unsupported network", s)
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 16
	}
	if opts.Dial == nil {
		d := &net.Dialer{}
		opts.Dial = d.DialContext
	}
	return &Client{opts: opts, slots: make(chan struct{}, opts.MaxConnections)}, nil
}

// Servers returns the configured servers.
func (c *Client) Servers() []Server { return c.opts.Servers }

// Scan sends the message that open returns (called once per attempt;
// size is what it yields and must be known).
func (c *Client) Scan(ctx context.Context, open func() io.Reader, size int64) (Result, error) {
	first := c.opts.Servers[0].String()
	if size < 0 {
		return Result{}, &ServerError{first, ErrSizeUnknown}
	}
	if c.opts.MaxSize > 0 && size > c.opts.MaxSize {
		return Result{}, &ServerError{first, fmt.Errorf("%w (%d > %d bytes)", ErrOversize, size, c.opts.MaxSize)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return Result{}, &ServerError{first, fmt.Errorf("%w (waiting for one of %d connections)", ErrTimeout, c.opts.MaxConnections)}
	}
	var errs []error
	for _, srv := range c.order() {
		res, err := c.session(ctx, srv, func(cn *session) (Result, error) { return cn.scan(open(), size) })
		if err == nil {
			res.Server = srv.String()
			return res, nil
		}
		errs = append(errs, err)
		if errors.Is(err, ErrOversize) || errors.Is(err, ErrTimeout) {
			break
		}
	}
	return Result{}, errors.Join(errs...)
}

// Ping opens a session with every server and returns nil if one accepts.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var errs []error
	for _, srv := range c.opts.Servers {
		_, err := c.session(ctx, srv, func(*session) (Result, error) { return Result{}, nil })
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Client) order() []Server {
	n := len(c.opts.Servers)
	start := int(c.next.Add(1)-1) % n
	out := make([]Server, 0, n)
	for i := range n {
		out = append(out, c.opts.Servers[(start+i)%n])
	}
	return out
}

type session struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// session connects, greets, runs fn, says BYE.
func (c *Client) session(ctx context.Context, srv Server, fn func(*session) (Result, error)) (Result, error) {
	fail := func(err error) error {
		if ctx.Err() != nil || isTimeout(err) {
			err = fmt.Errorf("%w: %v", ErrTimeout, err)
		}
		return &ServerError{srv.String(), err}
	}
	dctx, dcancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	nc, err := c.opts.Dial(dctx, srv.Network, srv.Address)
	dcancel()
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			err = fmt.Errorf("cannot connect (is savdid running?): %w", err)
		}
		return Result{}, fail(err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	s := &session{nc: nc, br: bufio.NewReaderSize(nc, 4096), bw: bufio.NewWriterSize(nc, 64<<10)}
	line, err := s.line()
	if err != nil {
		return Result{}, fail(err)
	}
	if g, err := ParseLine(line); err != nil || g.Kind != KindOK || !strings.HasPrefix(g.Arg, "SSSP/1.") {
		return Result{}, fail(fmt.Errorf("%w: greeting %q", ErrBadReply, trunc(line)))
	}
	if err := s.request("SSSP/1.0"); err != nil {
		return Result{}, fail(err)
	}
	res, err := fn(s)
	if err != nil {
		return Result{}, fail(err)
	}
	// BYE is a courtesy: the verdict is already known. Waiting for the
	// server's BYE keeps it from counting a closing session against its
	// connection limit.
	fmt.Fprint(s.bw, "BYE\n")
	if s.bw.Flush() == nil {
		for range 4 {
			line, err := s.line()
			if err != nil || strings.TrimSpace(line) == "BYE" {
				break
			}
		}
	}
	return res, nil
}

func (s *session) line() (string, error) {
	var b []byte
	for {
		frag, err := s.br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrBadReply, maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return "", fmt.Errorf("%w: connection closed (%d bytes of a line)", io.ErrUnexpectedEOF, len(b))
		}
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}

const maxLine = 4096

// request sends a command and expects ACC.
func (s *session) request(cmd string) error {
	fmt.Fprintf(s.bw, "%s\n", cmd)
	if err := s.bw.Flush(); err != nil {
		return err
	}
	line, err := s.line()
	if err != nil {
		return err
	}
	l, err := ParseLine(line)
	if err != nil {
		return err
	}
	switch l.Kind {
	case KindACC:
		return nil
	case KindREJ:
		if l.Code == "4" {
			return fmt.Errorf("%w (REJ 4)", ErrOversize)
		}
		return fmt.Errorf("%w: %s: REJ %s", ErrRejected, strings.Fields(cmd)[0], l.Code)
	}
	return fmt.Errorf("%w: %q after %s", ErrBadReply, trunc(line), strings.Fields(cmd)[0])
}

func (s *session) scan(r io.Reader, size int64) (Result, error) {
	if err := s.request(fmt.Sprintf("SCANDATA %d", size)); err != nil {
		return Result{}, err
	}
	n, err := io.Copy(s.bw, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("sssp: the message yielded %d bytes where %d were announced", n, size)
	}
	if err != nil {
		return Result{}, err
	}
	if err := s.bw.Flush(); err != nil {
		return Result{}, err
	}
	var res Result
	failed := false
	for {
		line, err := s.line()
		if err != nil {
			return Result{}, err
		}
		l, err := ParseLine(line)
		if err != nil {
			return Result{}, err
		}
		switch l.Kind {
		case KindVirus:
			if !res.Infected {
				res = Result{Infected: true, Threat: l.Arg}
			}
		case KindFail:
			failed = true
		case KindOK, KindInfo:
		case KindDone:
			// The message ends with an empty line; we do not wait for
			// it, BYE follows and the connection closes.
			switch {
			case res.Infected:
				return res, nil
			case !l.DoneOK:
				return Result{}, fmt.Errorf("%w: DONE FAIL %s %s", ErrScanFailed, l.Code, l.Arg)
			case failed:
				return Result{}, errFailLine
			case l.Code == "0203":
				// "Virus found" without a VIRUS line: still a find.
				return Result{Infected: true, Threat: "unnamed (SAVI 0203)"}, nil
			case l.Code != "0000":
				return Result{}, fmt.Errorf("%w: DONE OK %s %s", ErrScanFailed, l.Code, l.Arg)
			}
			return Result{}, nil
		default:
			return Result{}, fmt.Errorf("%w: %q during a scan", ErrBadReply, trunc(line))
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func trunc(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
