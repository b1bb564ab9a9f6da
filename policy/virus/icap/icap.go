// Package icap is a streaming ICAP client (RFC 3507) for anti-virus
// engines: nearly every commercial engine (Kaspersky, ESET, Sophos,
// Symantec, Trend Micro, McAfee, F-Secure, Check Point) and c-icap's
// virus_scan service speak it. It imports nothing from this module.
//
// Mechanism. Each server is asked OPTIONS (RFC 3507 §4.10) before its first
// scan and again when the reply's Options-TTL has passed: Methods must
// offer RESPMOD; Preview, Allow: 204, Max-Connections and ISTag are kept.
// A message is sent as the body of a fake HTTP exchange (§4.8): a "GET"
// request header, an "HTTP/1.1 200 OK" response header with Content-Type
// message/rfc822 and Content-Length, and the message as a chunked res-body,
// streamed from the caller's reader, so memory does not grow with the
// message. With a Preview the first bytes go first, the last chunk marked
// "ieof" when the message fits (§4.5); after "100 Continue" the rest
// follows. "Allow: 204" lets the server answer "unmodified" without echoing.
//
// Verdicts, failing closed (never "clean" on doubt):
//   - 204 No Content: clean (unless it carries a threat field).
//   - 200 with a threat field (X-Infection-Found, X-Violations-Found,
//     X-Virus-ID, X-Virus-Name, or Options.ThreatHeaders) in the ICAP or the
//     encapsulated HTTP header: infected, with the threat's name.
//   - 200 whose encapsulated HTTP status is not 2xx (c-icap answers 403 and
//     a notice page): infected, named after the status when no field names
//     the threat.
//   - 200 echoing the body byte for byte under a 2xx status: clean from
//     a server that does not offer 204 (its only way to say clean), but
//     ErrUnscanned from one that does: c-icap streams an object above its
//     MaxObjectSize back unscanned that way.
//   - 200 with any other body (modified, cut, removed): ErrModified.
//   - 204 to a preview that did not hold the whole message: the server
//     decided without seeing it (c-icap does that for an object above its
//     MaxObjectSize): ErrUnscanned.
//   - 4xx/5xx, a malformed or truncated reply, a timeout: a *ServerError.
//
// Bounds: one deadline (the context's, or Options.Timeout) covers a whole
// scan including OPTIONS, waiting for a connection and failover; a message
// larger than Options.MaxSize is refused before a byte is sent
// (ErrOversize); each server gets at most min(Options.MaxConnections, its
// Max-Connections) connections, and kept-alive connections are reused.
// Several servers are tried round-robin, failing over on errors.
package icap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Errors. A *ServerError wraps the cause for one server.
var (
	// ErrOversize: the message is larger than Options.MaxSize. Not
	// temporary.
	ErrOversize = errors.New("icap: message larger than max_size")
	// ErrTimeout: the scan deadline passed. Temporary.
	ErrTimeout = errors.New("icap: scan deadline exceeded")
	// ErrNoServers: the client has no server.
	ErrNoServers = errors.New("icap: no ICAP server configured")
	// ErrModified: the server returned a changed body without naming a
	// threat; the message was not passed as clean. Not temporary.
	ErrModified = errors.New("icap: server modified the message without naming a threat")
	// ErrUnscanned: the server passed the message on without a verdict:
	// a 204 to a preview before it had seen the whole message, or an
	// unchanged 200 echo from a server that offers 204 (c-icap does both
	// for an object above its MaxObjectSize). Not temporary.
	ErrUnscanned = errors.New("icap: server passed the message without scanning it")
	// ErrNoRespmod: the service does not offer RESPMOD. Not temporary.
	ErrNoRespmod = errors.New("icap: service does not offer RESPMOD")
	// ErrSource: the message could not be read from the caller's reader.
	ErrSource = errors.New("icap: reading the message")
)

// ServerError is a failure talking to one ICAP server.
type ServerError struct {
	Server string
	// Status is the ICAP status of an error reply, 0 for other failures.
	Status int
	Err    error
}

func (e *ServerError) Error() string { return "icap: " + e.Server + ": " + e.Err.Error() }
func (e *ServerError) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed: not for
// oversize, a modified or partial answer, a service without RESPMOD, or
// a 4xx status other than 408 Request Timeout, 501 or 505.
func (e *ServerError) Temporary() bool {
	for _, p := range []error{ErrOversize, ErrModified, ErrUnscanned, ErrNoRespmod} {
		if errors.Is(e.Err, p) {
			return false
		}
	}
	switch {
	case e.Status == 408:
		return true
	case e.Status >= 400 && e.Status < 500, e.Status == 501, e.Status == 505:
		return false
	}
	return true
}

// Server is one ICAP service.
type Server struct {
	Addr    string // host:port
	Service string // the path, without the leading "/": "avscan"
}

// String is the service's ICAP URI (RFC 3507 §4.2).
func (s Server) String() string { return "icap://" + s.Addr + "/" + s.Service }

// DefaultPort is ICAP's registered port (RFC 3507 §4.2).
const DefaultPort = "1344"

// ParseServer reads "icap://host[:port]/service[?query]".
func ParseServer(s string) (Server, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Scheme != "icap" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return Server{}, fmt.Errorf("icap: %q: want icap://host[:port]/service", s)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = DefaultPort
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return Server{}, fmt.Errorf("icap: %q: bad port", s)
	}
	svc := strings.TrimPrefix(u.EscapedPath(), "/")
	if svc == "" {
		return Server{}, fmt.Errorf("icap: %q: no service name (icap://host/avscan)", s)
	}
	if u.RawQuery != "" {
		svc += "?" + u.RawQuery
	}
	if strings.ContainsAny(svc, " \r\n\t") {
		return Server{}, fmt.Errorf("icap: %q: bad service name", s)
	}
	return Server{Addr: net.JoinHostPort(host, port), Service: svc}, nil
}

// Options configures a Client.
type Options struct {
	// Servers are tried round-robin with failover.
	Servers []Server
	// Timeout bounds a whole scan when the context has no earlier
	// deadline; 0 means 2 minutes.
	Timeout time.Duration
	// ConnectTimeout bounds each connection attempt; 0 means 5 s.
	ConnectTimeout time.Duration
	// MaxSize refuses larger messages (ErrOversize); 0 means no limit
	// here (the server's own limit then decides, see ErrUnscanned).
	MaxSize int64
	// MaxConnections caps the connections to each server; the server's
	// Max-Connections lowers it. 0 means 16.
	MaxConnections int
	// NoPreview sends every message whole even when the server offers a
	// Preview.
	NoPreview bool
	// ThreatHeaders are vendor fields naming a threat, beyond
	// ThreatHeaders.
	ThreatHeaders []string
	// UserAgent is sent with every request; "" means "mailwarden".
	UserAgent string
	// Now is the clock for Options-TTL and idle connections; nil means
	// time.Now.
	Now func() time.Time
	// Dial, if set, replaces net.Dialer (tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ServiceOptions is what a server's OPTIONS reply says (RFC 3507 §4.10.2).
type ServiceOptions struct {
	Server  string
	Methods []string
	// Preview is the number of bytes to send first; -1 when the server
	// wants no preview.
	Preview        int
	Allow204       bool
	MaxConnections int // 0: not limited
	// TTL is Options-TTL; 0 means the reply does not expire.
	TTL     time.Duration
	ISTag   string
	Service string
}

// Result is the outcome of a scan that a server completed.
type Result struct {
	Infected bool
	Threat   string // with Infected
	Server   string // the service that answered
	ISTag    string // the service's ISTag (its engine and signature state)
}

// Client talks to one or more ICAP servers. It is safe for concurrent use.
type Client struct {
	opts     Options
	threats  []string
	backends []*backend
	next     atomic.Uint64
}

// New checks the options and returns a Client. It does not connect.
func New(opts Options) (*Client, error) {
	if len(opts.Servers) == 0 {
		return nil, ErrNoServers
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
	if opts.UserAgent == "" {
		opts.UserAgent = "mailwarden"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Dial == nil {
		d := &net.Dialer{}
		opts.Dial = d.DialContext
	}
	c := &Client{opts: opts, threats: append(append([]string(nil), ThreatHeaders...), opts.ThreatHeaders...)}
	for _, s := range opts.Servers {
		if s.Addr == "" || s.Service == "" {
			return nil, fmt.Errorf("icap: server %q: address and service required", s)
		}
		c.backends = append(c.backends, &backend{c: c, srv: s, limit: opts.MaxConnections, wake: make(chan struct{})})
	}
	return c, nil
}

// Servers returns the configured servers.
func (c *Client) Servers() []Server { return c.opts.Servers }

// Scan sends the message that open returns to the servers in turn until
// one completes the scan. open is called once per attempt (and once more
// to compare an echoed body), so a failover resends the whole message;
// size is the number of bytes it yields, -1 if unknown (then no
// Content-Length is sent and MaxSize is counted while streaming).
func (c *Client) Scan(ctx context.Context, open func() io.Reader, size int64) (Result, error) {
	if c.opts.MaxSize > 0 && size > c.opts.MaxSize {
		return Result{}, &ServerError{Server: c.backends[0].srv.String(), Err: fmt.Errorf("%w (%d > %d bytes)", ErrOversize, size, c.opts.MaxSize)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var errs []error
	for _, b := range c.order() {
		res, err := b.scan(ctx, open, size)
		if err == nil {
			return res, nil
		}
		errs = append(errs, err)
		if errors.Is(err, ErrOversize) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrSource) {
			break
		}
	}
	return Result{}, errors.Join(errs...)
}

// Refresh asks every server for OPTIONS now (at start and on reload) and
// returns the replies of those that answered, and the others' errors.
func (c *Client) Refresh(ctx context.Context) ([]ServiceOptions, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var out []ServiceOptions
	var errs []error
	for _, b := range c.backends {
		so, err := b.options(ctx, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, so)
	}
	return out, errors.Join(errs...)
}

// Ping asks every server for OPTIONS and returns nil if one offers RESPMOD.
func (c *Client) Ping(ctx context.Context) error {
	so, err := c.Refresh(ctx)
	if len(so) > 0 {
		return nil
	}
	return err
}

// Close closes idle connections. The Client stays usable.
func (c *Client) Close() error {
	for _, b := range c.backends {
		b.mu.Lock()
		idle := b.idle
		b.idle = nil
		b.mu.Unlock()
		for _, cn := range idle {
			cn.nc.Close()
		}
	}
	return nil
}

func (c *Client) order() []*backend {
	n := len(c.backends)
	start := int(c.next.Add(1)-1) % n
	out := make([]*backend, 0, n)
	for i := range n {
		out = append(out, c.backends[(start+i)%n])
	}
	return out
}

// backend is one server: its OPTIONS, its connection slots, its idle
// connections.
type backend struct {
	c   *Client
	srv Server

	optMu sync.Mutex // one OPTIONS request at a time

	mu      sync.Mutex
	so      *ServiceOptions
	expires time.Time // zero: never
	limit   int       // connection slots
	active  int
	wake    chan struct{} // closed when a slot frees or the limit changes
	idle    []*conn
}

type conn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	reused bool
	since  time.Time // idle since
}

// idleTimeout is how long an idle connection is kept (c-icap's
// KeepAliveTimeout defaults to 600 s; commercial engines are often lower).
const idleTimeout = 30 * time.Second

func (b *backend) fail(status int, err error) error {
	if se, ok := err.(*ServerError); ok {
		return se
	}
	return &ServerError{Server: b.srv.String(), Status: status, Err: err}
}

// options returns the server's OPTIONS, asking again when they expired
// (or when force is set).
func (b *backend) options(ctx context.Context, force bool) (ServiceOptions, error) {
	valid := func() (ServiceOptions, bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.so != nil && (b.expires.IsZero() || b.c.opts.Now().Before(b.expires)) {
			return *b.so, true
		}
		return ServiceOptions{}, false
	}
	if so, ok := valid(); ok && !force {
		return so, nil
	}
	b.optMu.Lock()
	defer b.optMu.Unlock()
	if so, ok := valid(); ok && !force {
		return so, nil // fetched while we waited
	}
	var so ServiceOptions
	err := b.do(ctx, func(cn *conn) (bool, error) {
		var err error
		so, err = b.optionsRequest(cn)
		return err == nil, err
	})
	if err != nil {
		return ServiceOptions{}, err
	}
	b.mu.Lock()
	b.so = &so
	b.expires = time.Time{}
	if so.TTL > 0 {
		b.expires = b.c.opts.Now().Add(so.TTL)
	}
	b.limit = b.c.opts.MaxConnections
	if so.MaxConnections > 0 && so.MaxConnections < b.limit {
		b.limit = so.MaxConnections
	}
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
	if !hasMethod(so.Methods, "RESPMOD") {
		return so, b.fail(0, fmt.Errorf("%w (Methods: %s)", ErrNoRespmod, strings.Join(so.Methods, ", ")))
	}
	return so, nil
}

func hasMethod(ms []string, m string) bool {
	for _, x := range ms {
		if strings.EqualFold(x, m) {
			return true
		}
	}
	return false
}

func (b *backend) acquire(ctx context.Context) error {
	for {
		b.mu.Lock()
		if b.active < b.limit {
			b.active++
			b.mu.Unlock()
			return nil
		}
		ch := b.wake
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return b.fail(0, fmt.Errorf("%w (waiting for one of %d connections)", ErrTimeout, b.limit))
		}
	}
}

func (b *backend) release() {
	b.mu.Lock()
	b.active--
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// Active is the number of connections in use to each server (for tests
// and metrics).
func (c *Client) Active() []int {
	var out []int
	for _, b := range c.backends {
		b.mu.Lock()
		out = append(out, b.active)
		b.mu.Unlock()
	}
	return out
}

func (b *backend) get(ctx context.Context) (*conn, error) {
	now := b.c.opts.Now()
	b.mu.Lock()
	for len(b.idle) > 0 {
		cn := b.idle[len(b.idle)-1]
		b.idle = b.idle[:len(b.idle)-1]
		if now.Sub(cn.since) < idleTimeout {
			b.mu.Unlock()
			cn.reused = true
			return cn, nil
		}
		cn.nc.Close()
	}
	b.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, b.c.opts.ConnectTimeout)
	defer cancel()
	nc, err := b.c.opts.Dial(dctx, "tcp", b.srv.Addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, b.fail(0, ErrTimeout)
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			err = fmt.Errorf("connection refused (is the ICAP server running?): %w", err)
		}
		return nil, b.fail(0, err)
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 32<<10), bw: bufio.NewWriterSize(nc, 64<<10)}, nil
}

func (b *backend) put(cn *conn) {
	cn.since = b.c.opts.Now()
	cn.reused = false
	b.mu.Lock()
	b.idle = append(b.idle, cn)
	b.mu.Unlock()
}

// staleError marks a kept-alive connection that the server had closed
// before our request: the request is sent again on a new connection.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// do runs one request on a connection of b, within a connection slot and
// ctx's deadline. fn reports whether the connection may be kept.
func (b *backend) do(ctx context.Context, fn func(*conn) (bool, error)) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	for attempt := 0; ; attempt++ {
		cn, err := b.get(ctx)
		if err != nil {
			return err
		}
		if dl, ok := ctx.Deadline(); ok {
			cn.nc.SetDeadline(dl)
		}
		// Cancelling ctx unblocks every read and write at once.
		stop := context.AfterFunc(ctx, func() { cn.nc.SetDeadline(time.Unix(1, 0)) })
		keep, err := fn(cn)
		if stopped := stop(); err == nil && keep && stopped {
			cn.nc.SetDeadline(time.Time{})
			b.put(cn)
		} else {
			cn.nc.Close()
		}
		var stale *staleError
		if errors.As(err, &stale) {
			if cn.reused && attempt == 0 && ctx.Err() == nil {
				continue
			}
			err = stale.err
		}
		if err != nil && (ctx.Err() != nil || isTimeout(err)) && !errors.Is(err, ErrSource) && !errors.Is(err, ErrOversize) {
			return b.fail(0, fmt.Errorf("%w: %v", ErrTimeout, err))
		}
		if err != nil {
			return b.fail(0, err)
		}
		return nil
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (b *backend) writeHead(cn *conn, method string, lines ...string) {
	fmt.Fprintf(cn.bw, "%s %s ICAP/1.0\r\n", method, b.srv)
	host, _, _ := net.SplitHostPort(b.srv.Addr)
	fmt.Fprintf(cn.bw, "Host: %s\r\nUser-Agent: %s\r\n", host, b.c.opts.UserAgent)
	for _, l := range lines {
		cn.bw.WriteString(l + "\r\n")
	}
	cn.bw.WriteString("\r\n")
}

// readResponse reads a response; nothing at all on a kept-alive
// connection is a stale connection.
func readResponse(cn *conn) (*Response, error) {
	r, err := ReadResponse(cn.br)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return nil, &staleError{fmt.Errorf("%w: connection closed before a response", ErrTruncated)}
		}
		return nil, err
	}
	return r, nil
}

// optionsRequest: RFC 3507 §4.10.
func (b *backend) optionsRequest(cn *conn) (ServiceOptions, error) {
	b.writeHead(cn, "OPTIONS", "Encapsulated: null-body=0")
	if err := cn.bw.Flush(); err != nil {
		return ServiceOptions{}, &staleError{err}
	}
	r, err := readResponse(cn)
	if err != nil {
		return ServiceOptions{}, err
	}
	if r.Status != 200 {
		return ServiceOptions{}, b.fail(r.Status, fmt.Errorf("OPTIONS: %d %s", r.Status, r.Reason))
	}
	if err := skipEncapsulated(cn.br, r); err != nil {
		return ServiceOptions{}, err
	}
	return parseOptions(b.srv.String(), r.Header)
}

// parseOptions reads the fields of an OPTIONS reply (RFC 3507 §4.10.2).
func parseOptions(server string, h Header) (ServiceOptions, error) {
	so := ServiceOptions{Server: server, Preview: -1, ISTag: strings.Trim(h.Get("ISTag"), `"`), Service: h.Get("Service")}
	for _, v := range h["Methods"] {
		for m := range strings.SplitSeq(v, ",") {
			if m = strings.TrimSpace(m); m != "" {
				so.Methods = append(so.Methods, strings.ToUpper(m))
			}
		}
	}
	if len(so.Methods) == 0 {
		return so, fmt.Errorf("%w: OPTIONS reply without Methods", ErrBadReply)
	}
	num := func(name string) (int, bool, error) {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, false, fmt.Errorf("%w: OPTIONS %s: %q", ErrBadReply, name, trunc(v))
		}
		return n, true, nil
	}
	if n, ok, err := num("Preview"); err != nil {
		return so, err
	} else if ok {
		so.Preview = n
	}
	var err error
	if so.MaxConnections, _, err = num("Max-Connections"); err != nil {
		return so, err
	}
	ttl, _, err := num("Options-TTL")
	if err != nil {
		return so, err
	}
	so.TTL = time.Duration(ttl) * time.Second
	for _, v := range h["Allow"] {
		for a := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(a) == "204" {
				so.Allow204 = true
			}
		}
	}
	return so, nil
}

// skipEncapsulated reads and drops what a response encapsulates (an
// OPTIONS opt-body, an error page), bounded.
func skipEncapsulated(br *bufio.Reader, r *Response) error {
	if len(r.Encapsulated) == 0 {
		return nil
	}
	last := r.Encapsulated[len(r.Encapsulated)-1]
	if _, err := io.CopyN(io.Discard, br, last.Offset); err != nil {
		return fmt.Errorf("%w: in the encapsulated header", ErrTruncated)
	}
	if last.Name == "null-body" {
		return nil
	}
	n, err := io.Copy(io.Discard, io.LimitReader(NewChunkedReader(br), maxHeaderBytes+1))
	if err != nil {
		return err
	}
	if n > maxHeaderBytes {
		return fmt.Errorf("%w: encapsulated body larger than %d bytes", ErrBadReply, maxHeaderBytes)
	}
	return nil
}

const (
	// The fake HTTP request the message is the response to (RFC 3507
	// §4.8.2 shows a RESPMOD carrying req-hdr and res-hdr).
	fakeRequest = "GET http://mailwarden.invalid/message.eml HTTP/1.1\r\nHost: mailwarden.invalid\r\n\r\n"
	maxPreview  = 1 << 20
	writeGrace  = 250 * time.Millisecond
	chunkSize   = 32 << 10
)

func (b *backend) scan(ctx context.Context, open func() io.Reader, size int64) (Result, error) {
	so, err := b.options(ctx, false)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = b.do(ctx, func(cn *conn) (bool, error) {
		var keep bool
		var err error
		res, keep, err = b.respmod(cn, so, open, size)
		return keep, err
	})
	if err != nil {
		return Result{}, err
	}
	res.Server, res.ISTag = b.srv.String(), so.ISTag
	return res, nil
}

// source counts what is read from the message and enforces MaxSize.
type source struct {
	r    io.Reader
	n    int64
	max  int64
	size int64
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.max > 0 && s.n > s.max {
		return n, fmt.Errorf("%w (more than %d bytes)", ErrOversize, s.max)
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", ErrSource, err)
	}
	if err == io.EOF && s.size >= 0 && s.n != s.size {
		err = fmt.Errorf("%w: %d bytes where %d were announced", ErrSource, s.n, s.size)
	}
	return n, err
}

// respmod sends one RESPMOD (RFC 3507 §4.8) and reads the verdict.
func (b *backend) respmod(cn *conn, so ServiceOptions, open func() io.Reader, size int64) (Result, bool, error) {
	src := &source{r: open(), max: b.c.opts.MaxSize, size: size}
	resHdr := "HTTP/1.1 200 OK\r\nContent-Type: message/rfc822\r\n"
	if size >= 0 {
		resHdr += "Content-Length: " + strconv.FormatInt(size, 10) + "\r\n"
	}
	resHdr += "\r\n"
	preview := -1
	if !b.c.opts.NoPreview && so.Preview >= 0 {
		preview = min(so.Preview, maxPreview)
	}
	lines := []string{"Allow: 204"}
	if preview >= 0 {
		lines = append(lines, "Preview: "+strconv.Itoa(preview))
	}
	// RFC 3507 §4.4.1: offsets of each part from the start of the
	// encapsulated message.
	lines = append(lines, fmt.Sprintf("Encapsulated: req-hdr=0, res-hdr=%d, res-body=%d", len(fakeRequest), len(fakeRequest)+len(resHdr)))
	b.writeHead(cn, "RESPMOD", lines...)
	cn.bw.WriteString(fakeRequest)
	cn.bw.WriteString(resHdr)

	if preview >= 0 {
		buf := make([]byte, preview+1)
		n, err := io.ReadFull(src, buf)
		ieof := false
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			ieof = true
		case err != nil:
			return Result{}, false, err
		}
		// One byte more than the preview was read to learn whether the
		// message fits; it leads the rest.
		pv, extra := buf[:min(n, preview)], buf[min(n, preview):n]
		writeChunk(cn.bw, pv)
		if ieof {
			// RFC 3507 §4.5: "ieof" says the preview is the whole body.
			cn.bw.WriteString("0; ieof\r\n\r\n")
		} else {
			cn.bw.WriteString("0\r\n\r\n")
		}
		if err := cn.bw.Flush(); err != nil {
			return Result{}, false, &staleError{err}
		}
		r, err := readResponse(cn)
		if err != nil {
			return Result{}, false, err
		}
		if r.Status != 100 {
			if r.Status == 204 && !ieof {
				if name, ok := Threat(r.Header, b.c.threats); ok {
					return Result{Infected: true, Threat: name}, false, nil
				}
				return Result{}, false, b.fail(0, fmt.Errorf("%w (after a %d-byte preview)", ErrUnscanned, preview))
			}
			return b.verdict(cn, so, r, open, size)
		}
		if ieof {
			return Result{}, false, fmt.Errorf("%w: 100 Continue after a preview marked ieof", ErrBadReply)
		}
		src.r = io.MultiReader(bytes.NewReader(extra), src.r)
		src.n -= int64(len(extra))
	}

	// The rest of the body, written while the reply is read: a server
	// may answer (an error, a verdict) before it has read everything.
	wdone := make(chan error, 1)
	go func() {
		err := writeBody(cn.bw, src)
		if errors.Is(err, ErrOversize) || errors.Is(err, ErrSource) {
			// Our side failed: stop waiting for a reply.
			cn.nc.SetReadDeadline(time.Unix(1, 0))
		}
		wdone <- err
	}()
	r, rerr := readResponse(cn)
	// A server that answered before reading the whole body (an error,
	// or a verdict without our data) may never read the rest: give the
	// writer a moment, then stop it; such a connection is not reused.
	keep := true
	if rerr == nil {
		cn.nc.SetWriteDeadline(time.Now().Add(writeGrace))
	}
	werr := <-wdone
	if werr != nil && isTimeout(werr) && rerr == nil {
		keep, werr = false, nil
	}
	if errors.Is(werr, ErrOversize) || errors.Is(werr, ErrSource) {
		return Result{}, false, werr
	}
	if rerr != nil {
		if werr != nil {
			rerr = fmt.Errorf("%w (sending: %v)", rerr, werr)
		}
		return Result{}, false, rerr
	}
	if werr != nil {
		return Result{}, false, werr
	}
	if r.Status == 100 {
		return Result{}, false, fmt.Errorf("%w: 100 Continue without a preview", ErrBadReply)
	}
	res, k, err := b.verdict(cn, so, r, open, size)
	return res, k && keep, err
}

func writeChunk(w *bufio.Writer, p []byte) {
	if len(p) == 0 {
		return
	}
	fmt.Fprintf(w, "%x\r\n", len(p))
	w.Write(p)
	w.WriteString("\r\n")
}

// writeBody sends what is left of the message as chunks, then the last
// chunk (RFC 9112 §7.1).
func writeBody(w *bufio.Writer, src io.Reader) error {
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		writeChunk(w, buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	w.WriteString("0\r\n\r\n")
	return w.Flush()
}

// verdict reads a final response (RFC 3507 §4.3.3) to RESPMOD.
func (b *backend) verdict(cn *conn, so ServiceOptions, r *Response, open func() io.Reader, size int64) (Result, bool, error) {
	switch {
	case r.Status == 204:
		if name, ok := Threat(r.Header, b.c.threats); ok {
			return Result{Infected: true, Threat: name}, false, nil
		}
		if n := len(r.Encapsulated); n > 0 && (r.Encapsulated[n-1].Name != "null-body" || r.Encapsulated[n-1].Offset != 0) {
			return Result{}, false, fmt.Errorf("%w: 204 with an encapsulated message", ErrBadReply)
		}
		return Result{}, true, nil
	case r.Status != 200:
		return Result{}, false, b.fail(r.Status, fmt.Errorf("RESPMOD: %d %s", r.Status, r.Reason))
	}
	if name, ok := Threat(r.Header, b.c.threats); ok {
		return Result{Infected: true, Threat: name}, false, nil
	}
	secs := r.Encapsulated
	if secs[0].Offset != 0 {
		return Result{}, false, fmt.Errorf("%w: Encapsulated does not start at 0", ErrBadReply)
	}
	httpStatus := 0
	for i, s := range secs[:len(secs)-1] {
		n := secs[i+1].Offset - s.Offset
		buf := make([]byte, n)
		if _, err := io.ReadFull(cn.br, buf); err != nil {
			return Result{}, false, fmt.Errorf("%w: in the encapsulated %s", ErrTruncated, s.Name)
		}
		if s.Name != "res-hdr" {
			continue
		}
		st, h, err := HTTPStatus(buf)
		if err != nil {
			return Result{}, false, err
		}
		if name, ok := Threat(h, b.c.threats); ok {
			return Result{Infected: true, Threat: name}, false, nil
		}
		httpStatus = st
	}
	body := secs[len(secs)-1]
	if httpStatus != 0 && (httpStatus < 200 || httpStatus > 299) {
		// The engine replaced the message with a block page.
		return Result{Infected: true, Threat: fmt.Sprintf("ICAP-Blocked (HTTP %d)", httpStatus)}, false, nil
	}
	if httpStatus == 0 || body.Name != "res-body" {
		return Result{}, false, b.fail(0, fmt.Errorf("%w (200 with Encapsulated: %s)", ErrModified, r.Header.Get("Encapsulated")))
	}
	// A 200 that echoes the message unchanged is a clean verdict from a
	// server that does not use 204; compare while reading.
	same, err := sameBody(NewChunkedReader(cn.br), open())
	if err != nil {
		return Result{}, false, err
	}
	if !same {
		return Result{}, false, b.fail(0, ErrModified)
	}
	if so.Allow204 {
		// It could have said 204 (we sent Allow: 204) but streamed the
		// message back: c-icap does so, unscanned, above MaxObjectSize.
		return Result{}, true, b.fail(0, fmt.Errorf("%w (an unchanged 200 echo from a server that offers 204)", ErrUnscanned))
	}
	return Result{}, true, nil
}

// sameBody reads the echoed body and reports whether it equals the
// original; it stops at the first difference (the connection is then
// closed, not reused).
func sameBody(echo *ChunkedReader, orig io.Reader) (bool, error) {
	a, o := make([]byte, chunkSize), make([]byte, chunkSize)
	for {
		n, err := io.ReadFull(echo, a)
		end := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !end {
			return false, err
		}
		if m, _ := io.ReadFull(orig, o[:n]); m != n || !bytes.Equal(a[:n], o[:n]) {
			return false, nil
		}
		if end {
			// The original must end here too.
			var one [1]byte
			k, _ := io.ReadFull(orig, one[:])
			return k == 0, nil
		}
	}
}
