// Package icaptest is a fake ICAP anti-virus service (RFC 3507) for tests:
// it answers OPTIONS and RESPMOD on 127.0.0.1, finds "signatures" by
// substring in the encapsulated body, reports them in the style of one
// engine or another, honours Preview, "ieof", "Allow: 204" and keep-alive,
// counts concurrent connections against the Max-Connections it advertises,
// and can misbehave on purpose (stall, 500, malformed or truncated replies,
// answering before reading the body). Tests of the real c-icap live in
// test/ (harness.StartCICAP).
package icaptest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Style is how the fake reports an infection.
type Style int

const (
	// StyleInfectionFound: 200, X-Infection-Found, encapsulated 403 page
	// (c-icap's virus_scan).
	StyleInfectionFound Style = iota
	// StyleVirusID: 200, X-Virus-ID, encapsulated 200 with a replaced body.
	StyleVirusID
	// StyleViolations: 200, X-Violations-Found (folded lines), 403 page.
	StyleViolations
	// StyleHTTPStatus: 200 with an encapsulated 403 and no threat field.
	StyleHTTPStatus
	// StyleModified: 200 with an encapsulated 200 and a changed body, no
	// threat field.
	StyleModified
)

// Options describes the fake's behaviour.
type Options struct {
	// Service is the path served; "" means "avscan".
	Service string
	// Signatures maps a byte pattern to a threat name.
	Signatures map[string]string
	Style      Style
	// Preview is the advertised Preview size; -1 advertises none. The
	// zero value advertises 0 (only headers first), so set it.
	Preview int
	// MaxConnections is advertised; 0 advertises none. Connections beyond
	// it are counted (Violations) and answered 503.
	MaxConnections int
	// TTL is the advertised Options-TTL in seconds (0: none).
	TTL int
	// ISTag is advertised and sent with every reply; "" means "fake-1".
	ISTag string
	// Methods advertised; nil means RESPMOD.
	Methods []string
	// NoAllow204 echoes clean messages with 200 instead of 204.
	NoAllow204 bool
	// EchoUnscanned advertises Allow: 204 but echoes clean messages with
	// 200 (c-icap above its MaxObjectSize without a preview).
	EchoUnscanned bool
	// PreviewVerdict answers 204 right after a preview without ieof
	// (c-icap does so for objects above its MaxObjectSize).
	PreviewVerdict bool
	// ContinueAfterIEOF sends 100 Continue even after "ieof" (broken).
	ContinueAfterIEOF bool
	// Stall reads requests but never answers RESPMOD.
	Stall bool
	// Delay is slept before each RESPMOD answer.
	Delay time.Duration
	// Status answers every RESPMOD with this ICAP status (500, 404...).
	Status int
	// Early answers Status (or 500) as soon as the RESPMOD header has
	// arrived, without reading the body, and closes.
	Early bool
	// Raw is written instead of the computed RESPMOD answer, then the
	// connection is closed (malformed or truncated replies).
	Raw string
	// OptionsRaw, if set, is written instead of the OPTIONS answer.
	OptionsRaw string
	// Keep records each received body (see Bodies).
	Keep bool
}

// Server is a running fake ICAP service.
type Server struct {
	opts Options
	ln   net.Listener

	mu         sync.Mutex
	conns      map[net.Conn]bool
	counts     map[string]int
	active     int
	maxActive  int
	violations int
	bodies     [][]byte
	ieof       int
	previews   int
	accepted   int
	closed     bool
	wg         sync.WaitGroup
}

// Start starts a fake ICAP service and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Service == "" {
		opts.Service = "avscan"
	}
	if opts.ISTag == "" {
		opts.ISTag = "fake-1"
	}
	if opts.Methods == nil {
		opts.Methods = []string{"RESPMOD"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("icaptest: %v", err)
	}
	s := &Server{opts: opts, ln: ln, conns: map[net.Conn]bool{}, counts: map[string]int{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// URL is "icap://127.0.0.1:port/<service>".
func (s *Server) URL() string { return "icap://" + s.ln.Addr().String() + "/" + s.opts.Service }

// Addr is the listening host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Requests is the number of requests received with the method.
func (s *Server) Requests(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[method]
}

// MaxActive is the largest number of connections open at once.
func (s *Server) MaxActive() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxActive
}

// Accepted is the number of connections accepted.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Violations is the number of connections beyond MaxConnections.
func (s *Server) Violations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.violations
}

// Previews and IEOF count RESPMODs that came with a preview, and those
// whose preview was marked ieof.
func (s *Server) Previews() (previews, ieof int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.previews, s.ieof
}

// Bodies returns every complete body received (with Keep).
func (s *Server) Bodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

// DropConnections closes every open connection (as a server does with
// idle kept-alive ones) and keeps listening.
func (s *Server) DropConnections() {
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // let the handlers notice
}

// Close stops the server and drops every connection.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.accepted++
		s.active++
		s.maxActive = max(s.maxActive, s.active)
		over := s.opts.MaxConnections > 0 && s.active > s.opts.MaxConnections
		if over {
			s.violations++
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			if over {
				fmt.Fprint(c, "ICAP/1.0 503 Service Overloaded\r\nEncapsulated: null-body=0\r\n\r\n")
			} else {
				s.handle(c)
			}
			s.mu.Lock()
			delete(s.conns, c)
			s.active--
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// handle serves requests on one connection until it closes.
func (s *Server) handle(c net.Conn) {
	br := bufio.NewReader(c)
	tp := textproto.NewReader(br)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		method, _, _ := strings.Cut(line, " ")
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.counts[method]++
		s.mu.Unlock()
		switch method {
		case "OPTIONS":
			if s.opts.OptionsRaw != "" {
				io.WriteString(c, s.opts.OptionsRaw)
				return
			}
			io.WriteString(c, s.optionsReply())
		case "RESPMOD":
			if !s.respmod(c, br, h) {
				return
			}
		default:
			fmt.Fprint(c, "ICAP/1.0 405 Method Not Allowed\r\nEncapsulated: null-body=0\r\n\r\n")
			return
		}
	}
}

func (s *Server) optionsReply() string {
	var b strings.Builder
	b.WriteString("ICAP/1.0 200 OK\r\n")
	fmt.Fprintf(&b, "Methods: %s\r\n", strings.Join(s.opts.Methods, ", "))
	fmt.Fprintf(&b, "Service: icaptest fake anti-virus\r\nISTag: \"%s\"\r\n", s.opts.ISTag)
	if s.opts.Preview >= 0 {
		fmt.Fprintf(&b, "Preview: %d\r\nTransfer-Preview: *\r\n", s.opts.Preview)
	}
	if !s.opts.NoAllow204 {
		b.WriteString("Allow: 204\r\n")
	}
	if s.opts.MaxConnections > 0 {
		fmt.Fprintf(&b, "Max-Connections: %d\r\n", s.opts.MaxConnections)
	}
	if s.opts.TTL > 0 {
		fmt.Fprintf(&b, "Options-TTL: %d\r\n", s.opts.TTL)
	}
	b.WriteString("Encapsulated: null-body=0\r\n\r\n")
	return b.String()
}

// respmod answers one RESPMOD; false closes the connection.
func (s *Server) respmod(c net.Conn, br *bufio.Reader, h textproto.MIMEHeader) bool {
	if s.opts.Early {
		st := s.opts.Status
		if st == 0 {
			st = 500
		}
		fmt.Fprintf(c, "ICAP/1.0 %d Early\r\nEncapsulated: null-body=0\r\n\r\n", st)
		return false
	}
	// Encapsulated: req-hdr=0, res-hdr=N, res-body=M
	var hdrLen int64
	hasBody := false
	for part := range strings.SplitSeq(h.Get("Encapsulated"), ",") {
		name, off, _ := strings.Cut(strings.TrimSpace(part), "=")
		n, _ := strconv.ParseInt(off, 10, 64)
		if strings.HasSuffix(name, "-body") {
			hdrLen = n
			hasBody = name != "null-body"
		}
	}
	hdrs := make([]byte, hdrLen)
	if _, err := io.ReadFull(br, hdrs); err != nil {
		return false
	}
	resHdr := hdrs
	if i := bytes.Index(hdrs, []byte("\r\n\r\n")); i >= 0 && bytes.HasPrefix(hdrs, []byte("GET ")) {
		resHdr = hdrs[i+4:]
	}
	var body bytes.Buffer
	// A body nobody looks at is not kept (benchmarks of the client).
	var sink io.Writer = &body
	if !s.opts.Keep && len(s.opts.Signatures) == 0 && !s.opts.NoAllow204 && !s.opts.EchoUnscanned {
		sink = io.Discard
	}
	complete := true
	if hasBody {
		ieof, err := readChunks(br, sink)
		if err != nil {
			return false
		}
		if pv := h.Get("Preview"); pv != "" {
			s.mu.Lock()
			s.previews++
			if ieof {
				s.ieof++
			}
			s.mu.Unlock()
			switch {
			case ieof && s.opts.ContinueAfterIEOF:
				fmt.Fprint(c, "ICAP/1.0 100 Continue\r\n\r\n")
			case ieof:
			case s.opts.PreviewVerdict:
				complete = false
			default:
				fmt.Fprint(c, "ICAP/1.0 100 Continue\r\n\r\n")
				if _, err := readChunks(br, sink); err != nil {
					return false
				}
			}
		}
	}
	if s.opts.Keep && complete {
		s.mu.Lock()
		s.bodies = append(s.bodies, bytes.Clone(body.Bytes()))
		s.mu.Unlock()
	}
	if s.opts.Stall {
		io.Copy(io.Discard, br)
		return false
	}
	if s.opts.Delay > 0 {
		time.Sleep(s.opts.Delay)
	}
	if s.opts.Raw != "" {
		io.WriteString(c, s.opts.Raw)
		return false
	}
	if s.opts.Status != 0 {
		fmt.Fprintf(c, "ICAP/1.0 %d Failed\r\nISTag: \"%s\"\r\nEncapsulated: null-body=0\r\n\r\n", s.opts.Status, s.opts.ISTag)
		return true
	}
	threat := ""
	for pat, name := range s.opts.Signatures {
		if bytes.Contains(body.Bytes(), []byte(pat)) {
			threat = name
		}
	}
	if threat == "" || !complete {
		if !s.opts.NoAllow204 && !s.opts.EchoUnscanned && strings.Contains(h.Get("Allow"), "204") || !complete {
			fmt.Fprintf(c, "ICAP/1.0 204 No Content\r\nISTag: \"%s\"\r\nEncapsulated: null-body=0\r\n\r\n", s.opts.ISTag)
			return true
		}
		writeEncapsulated(c, s.opts.ISTag, "", string(resHdr), body.Bytes())
		return true
	}
	page := []byte("<html><body>Virus " + threat + " found</body></html>")
	forbidden := "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: " + strconv.Itoa(len(page)) + "\r\n\r\n"
	switch s.opts.Style {
	case StyleVirusID:
		writeEncapsulated(c, s.opts.ISTag, "X-Virus-ID: "+threat+"\r\n", string(resHdr), []byte("removed"))
	case StyleViolations:
		writeEncapsulated(c, s.opts.ISTag, "X-Violations-Found: 1\r\n\tmessage.eml\r\n\t"+threat+"\r\n\t1234\r\n\t2\r\n", forbidden, page)
	case StyleHTTPStatus:
		writeEncapsulated(c, s.opts.ISTag, "", forbidden, page)
	case StyleModified:
		writeEncapsulated(c, s.opts.ISTag, "", string(resHdr), append(body.Bytes(), "\r\n[attachment removed]\r\n"...))
	default:
		writeEncapsulated(c, s.opts.ISTag, "X-Infection-Found: Type=0; Resolution=2; Threat="+threat+";\r\n", forbidden, page)
	}
	return true
}

func writeEncapsulated(w io.Writer, istag, fields, resHdr string, body []byte) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "ICAP/1.0 200 OK\r\nISTag: \"%s\"\r\n%sEncapsulated: res-hdr=0, res-body=%d\r\n\r\n", istag, fields, len(resHdr))
	b.WriteString(resHdr)
	for p := body; len(p) > 0; {
		n := min(len(p), 4096)
		fmt.Fprintf(&b, "%x\r\n", n)
		b.Write(p[:n])
		b.WriteString("\r\n")
		p = p[n:]
	}
	b.WriteString("0\r\n\r\n")
	w.Write(b.Bytes())
}

// readChunks appends a chunked body to out and reports "ieof".
func readChunks(br *bufio.Reader, out io.Writer) (ieof bool, err error) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false, err
		}
		size, ext, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil {
			return false, err
		}
		if n == 0 {
			if _, err := br.ReadString('\n'); err != nil { // the empty trailer
				return false, err
			}
			return strings.TrimSpace(ext) == "ieof", nil
		}
		if _, err := io.CopyN(out, br, n); err != nil {
			return false, err
		}
		if _, err := br.ReadString('\n'); err != nil {
			return false, err
		}
	}
}
