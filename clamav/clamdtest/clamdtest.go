// Package clamdtest is a fake clamd for tests: it speaks the INSTREAM,
// PING and VERSION commands of clamd(8) on a unix socket or TCP, finds
// "signatures" by substring, and can misbehave on purpose (never answer,
// read slowly, enforce a StreamMaxLength). Tests of the real clamd live in
// test/ (harness.StartClamd).
package clamdtest

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Options describes the fake's behaviour.
type Options struct {
	// TCP listens on 127.0.0.1 instead of a unix socket.
	TCP bool
	// Signatures maps a byte pattern to the name reported as FOUND.
	Signatures map[string]string
	// Stall accepts connections and reads the command but never answers.
	Stall bool
	// ChunkDelay is slept before reading each chunk (a slow clamd).
	ChunkDelay time.Duration
	// StreamMaxLength, if set, answers "INSTREAM size limit exceeded.
	// ERROR" once more bytes arrive, and closes, as clamd does.
	StreamMaxLength int64
	// Reply, if set, is sent instead of the computed scan reply.
	Reply string
	// Keep records the bytes of each stream (see Streams).
	Keep bool
	// MaxThreads is the thread pool maximum in the STATS reply (0: 10,
	// clamd's default).
	MaxThreads int
}

// Server is a running fake clamd.
type Server struct {
	opts Options
	ln   net.Listener
	addr string

	mu      sync.Mutex
	scans   int
	streams [][]byte
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
	closed  bool
}

// Start starts a fake clamd and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{opts: opts, conns: map[net.Conn]bool{}}
	var err error
	if opts.TCP {
		s.ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			s.addr = "tcp:" + s.ln.Addr().String()
		}
	} else {
		dir, derr := os.MkdirTemp("", "clamdtest")
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		p := filepath.Join(dir, "clamd.sock")
		s.ln, err = net.Listen("unix", p)
		s.addr = "unix:" + p
	}
	if err != nil {
		t.Fatalf("clamdtest: %v", err)
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Addr is "unix:/path" or "tcp:127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Scans is the number of INSTREAM commands received.
func (s *Server) Scans() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scans
}

// Streams returns the bytes of every complete stream (with Keep).
func (s *Server) Streams() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.streams...)
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
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	br := bufio.NewReader(c)
	cmd, err := br.ReadString('\n')
	if err != nil {
		return
	}
	switch cmd {
	case "nPING\n":
		fmt.Fprint(c, "PONG\n")
		return
	case "nVERSION\n":
		fmt.Fprint(c, "ClamAV 1.4.6/0/fake\n")
		return
	case "nSTATS\n":
		// As clamd 1.4 answers, then closes.
		fmt.Fprintf(c, "POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live 1  idle 0 max %d idle-timeout 30\nQUEUE: 0 items\n\tSTATS 0.000044 \n\nMEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 pools_used 1306.837M pools_total 1306.882M\nEND\n", cmp.Or(s.opts.MaxThreads, 10))
		return
	case "nINSTREAM\n":
	default:
		fmt.Fprint(c, "UNKNOWN COMMAND\n")
		return
	}
	s.mu.Lock()
	s.scans++
	s.mu.Unlock()
	if s.opts.Stall {
		io.Copy(io.Discard, br) // read whatever comes, answer nothing
		return
	}
	var data bytes.Buffer
	var n int64
	found := ""
	var lenb [4]byte
	for {
		if s.opts.ChunkDelay > 0 {
			time.Sleep(s.opts.ChunkDelay)
		}
		if _, err := io.ReadFull(br, lenb[:]); err != nil {
			return
		}
		l := int64(binary.BigEndian.Uint32(lenb[:]))
		if l == 0 {
			break
		}
		n += l
		if s.opts.StreamMaxLength > 0 && n > s.opts.StreamMaxLength {
			fmt.Fprint(c, "INSTREAM size limit exceeded. ERROR\n")
			return
		}
		if _, err := io.CopyN(&data, br, l); err != nil {
			return
		}
		// Unless asked to keep everything, keep a 64 KB tail window (every
		// pattern shorter than that is still found), so that a 50 MB
		// stream does not cost 50 MB here.
		if !s.opts.Keep && data.Len() > 1<<17 {
			if found == "" {
				found = s.match(data.Bytes())
			}
			tail := bytes.Clone(data.Bytes()[data.Len()-1<<16:])
			data.Reset()
			data.Write(tail)
		}
	}
	if s.opts.Keep {
		s.mu.Lock()
		s.streams = append(s.streams, bytes.Clone(data.Bytes()))
		s.mu.Unlock()
	}
	if s.opts.Reply != "" {
		fmt.Fprint(c, s.opts.Reply)
		return
	}
	if found == "" {
		found = s.match(data.Bytes())
	}
	if found != "" {
		fmt.Fprintf(c, "stream: %s FOUND\n", found)
		return
	}
	fmt.Fprint(c, "stream: OK\n")
}

func (s *Server) match(b []byte) string {
	for pat, name := range s.opts.Signatures {
		if bytes.Contains(b, []byte(pat)) {
			return name
		}
	}
	return ""
}
