// Package sssptest is a fake savdid for tests: it speaks SSSP/1.0 on
// 127.0.0.1 (greeting, SSSP/1.0, SCANDATA, BYE), finds "signatures" by
// substring, refuses data above a maxscandata with REJ 4, and can
// misbehave on purpose (stall, malformed or cut replies, FAIL lines).
package sssptest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options describes the fake's behaviour.
type Options struct {
	// Signatures maps a byte pattern to the name reported by VIRUS.
	Signatures map[string]string
	// MaxScanData answers REJ 4 to a larger SCANDATA (0: no limit).
	MaxScanData int64
	// Greeting replaces "OK SSSP/1.0".
	Greeting string
	// Stall reads the data but never answers.
	Stall bool
	// Delay is slept before answering a scan.
	Delay time.Duration
	// Reply, if set, is written instead of the computed scan reply
	// (lines with their "\n"), and the connection closed.
	Reply string
	// FailObject adds "FAIL 0212 <path>" (an encrypted object) before DONE.
	FailObject bool
}

// Server is a running fake savdid.
type Server struct {
	opts Options
	ln   net.Listener

	mu        sync.Mutex
	scans     int
	active    int
	maxActive int
	conns     map[net.Conn]bool
	closed    bool
	wg        sync.WaitGroup
}

// Start starts the fake and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Greeting == "" {
		opts.Greeting = "OK SSSP/1.0"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sssptest: %v", err)
	}
	s := &Server{opts: opts, ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Addr is "tcp:127.0.0.1:port".
func (s *Server) Addr() string { return "tcp:" + s.ln.Addr().String() }

// Scans is the number of SCANDATA requests accepted.
func (s *Server) Scans() int { s.mu.Lock(); defer s.mu.Unlock(); return s.scans }

// MaxActive is the largest number of connections open at once.
func (s *Server) MaxActive() int { s.mu.Lock(); defer s.mu.Unlock(); return s.maxActive }

// Close stops the server.
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
		s.active++
		s.maxActive = max(s.maxActive, s.active)
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.active--
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "%s\n", s.opts.Greeting)
	for id := 1; ; id++ {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && f[0] == "SSSP/1.0":
			fmt.Fprintf(c, "ACC 5F3A/%d\n", id)
		case len(f) == 1 && f[0] == "BYE":
			s.mu.Lock()
			s.active-- // the session is over before the client hears BYE
			s.mu.Unlock()
			fmt.Fprint(c, "BYE\n")
			c.Close()
			s.mu.Lock()
			s.active++ // undone by serve
			s.mu.Unlock()
			return
		case len(f) == 2 && f[0] == "SCANDATA":
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				fmt.Fprint(c, "REJ 1\n")
				continue
			}
			if s.opts.MaxScanData > 0 && n > s.opts.MaxScanData {
				fmt.Fprint(c, "REJ 4\n")
				continue
			}
			fmt.Fprintf(c, "ACC 5F3A/%d\n", id)
			s.mu.Lock()
			s.scans++
			s.mu.Unlock()
			var data bytes.Buffer
			if _, err := io.CopyN(&data, br, n); err != nil {
				return
			}
			if s.opts.Stall {
				io.Copy(io.Discard, br)
				return
			}
			if s.opts.Delay > 0 {
				time.Sleep(s.opts.Delay)
			}
			if s.opts.Reply != "" {
				io.WriteString(c, s.opts.Reply)
				return
			}
			var out strings.Builder
			found := false
			for pat, name := range s.opts.Signatures {
				if bytes.Contains(data.Bytes(), []byte(pat)) {
					fmt.Fprintf(&out, "VIRUS %s /tmp/savid_tmp/data\n", name)
					found = true
				}
			}
			if s.opts.FailObject {
				out.WriteString("FAIL 0212 /tmp/savid_tmp/data/archive.zip\n")
			}
			if found {
				out.WriteString("OK 0203 /tmp/savid_tmp/data\nDONE OK 0203 Virus found during virus scan\n\n")
			} else {
				out.WriteString("OK 0000 /tmp/savid_tmp/data\nDONE OK 0000 The function call succeeded\n\n")
			}
			io.WriteString(c, out.String())
		default:
			fmt.Fprint(c, "REJ 1\n")
		}
	}
}
