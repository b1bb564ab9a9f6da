// Package control is the daemon's control socket: a unix socket checked by
// peer credentials (SO_PEERCRED: our uid or root, and for "learn" only the
// users of [control] learn_users), that speaks one JSON object per line
// ("status", "mode", "check", "learn"; a request with "size" is followed
// by that many bytes of message), and its client for `mailwarden status`,
// `mode`, `check` and `learn`. The [control] section.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/explain"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/health"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/quarcli"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/spool"
)

// DefaultSocket is where the control socket lives unless configured.
const DefaultSocket = "/run/mailwarden/control.sock"

// Config is the [control] section.
type Config struct {
	// Socket is the unix socket of `mailwarden mode` and `mailwarden
	// status`; "" disables it. It is created owner-only (0600) and only
	// peers with our uid or root are served.
	Socket string `toml:"socket"`
	// LearnUsers may send "learn" (and nothing else): the mail users
	// whose Sieve pipes report moves into and out of Junk (Dovecot's
	// imapsieve). With any, the socket is created 0666 and every peer
	// is checked by its credentials.
	LearnUsers []string `toml:"learn_users"`
}

// Validate checks the section.
func (c *Config) Validate() error {
	if c.Socket != "" && !filepath.IsAbs(c.Socket) {
		return policy.KeyErr("socket", "%q must be an absolute path", c.Socket)
	}
	for _, u := range c.LearnUsers {
		if _, err := user.Lookup(u); err != nil {
			return policy.KeyErr("learn_users", "%q is not a user of this system", u)
		}
	}
	return nil
}

// SectionName is the [control] section.
const SectionName = "control"

// Section is the [control] section (no step).
func Section() policy.Module {
	return policy.Module{Name: SectionName, Default: func() any { return &Config{Socket: DefaultSocket, LearnUsers: []string{}} }}
}

// ConfigOf returns the [control] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, SectionName); c != nil {
		return c
	}
	return &Config{Socket: DefaultSocket}
}

// Daemon is what the control socket asks of the running daemon.
type Daemon interface {
	// Status is what `mailwarden status` shows.
	Status() *Status
	// SetMode overrides the mode (or with "config" drops the override)
	// for the peer uid; an error is an unknown mode.
	SetMode(mode string, uid int) error
	// Check runs the pipeline in force on raw as a dry run (its state
	// read, nothing written) and renders the verdict as `check` prints
	// it; code is check's exit code.
	Check(ctx context.Context, req CheckRequest, raw []byte) (out string, code int, err error)
	// Learn teaches the Bayes classifier of the daemon's store raw as
	// req.Class (or forgets it).
	Learn(ctx context.Context, req LearnRequest, raw []byte) (*LearnResult, error)
}

// CheckRequest is `mailwarden check`'s flags.
type CheckRequest struct {
	Envelope explain.Envelope `json:"envelope"`
	JSON     bool             `json:"json,omitempty"`
	Explain  bool             `json:"explain,omitempty"`
}

// LearnRequest is one message to learn.
type LearnRequest struct {
	Class  string `json:"class"` // "spam" or "ham"
	Forget bool   `json:"forget,omitempty"`
}

// LearnResult is what learning one message did.
type LearnResult struct {
	Changed bool  `json:"changed"` // false: already learned as this class
	Spam    int64 `json:"spam"`    // messages the store now holds
	Ham     int64 `json:"ham"`
}

// MaxMessage bounds the bytes a request may carry.
const MaxMessage = 256 << 20

// QuarantineDaemon is a daemon that runs our own quarantine: it answers
// `mailwarden quarantine` (it holds the index).
type QuarantineDaemon interface {
	Quarantine(req quarcli.Request, uid int) (*quarcli.Response, error)
}

// Request is one line from a client.
type Request struct {
	Cmd        string           `json:"cmd"`            // "status", "mode", "check", "learn" or "quarantine"
	Mode       string           `json:"mode,omitempty"` // for "mode": a mode, or "config" to drop the override
	Check      *CheckRequest    `json:"check,omitempty"`
	Learn      *LearnRequest    `json:"learn,omitempty"`
	Quarantine *quarcli.Request `json:"quarantine,omitempty"`
	// Size is the length of the message that follows the request line.
	Size int64 `json:"size,omitempty"`
}

// Response is one line back.
type Response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
	// Output and ExitCode are a check's rendering and exit code.
	Output     string            `json:"output,omitempty"`
	ExitCode   int               `json:"exit_code,omitempty"`
	Learned    *LearnResult      `json:"learned,omitempty"`
	Quarantine *quarcli.Response `json:"quarantine,omitempty"`
}

// Status is what `mailwarden status` shows.
type Status struct {
	Version        string      `json:"version"`
	PID            int         `json:"pid"`
	Mode           policy.Mode `json:"mode"`
	ConfiguredMode policy.Mode `json:"configured_mode"`
	Override       bool        `json:"override"`
	Started        time.Time   `json:"started"`
	UptimeSeconds  float64     `json:"uptime_seconds"`
	InFlight       int         `json:"in_flight"`
	Config         string      `json:"config"`
	Checks         []string    `json:"checks"`
	// Setup has one line per check that describes its set-up, e.g.
	// "spam: SpamAssassin rules on (2293 rules); built-in weights fitted
	// with the rules".
	Setup          []string          `json:"setup,omitempty"`
	Reloads        int64             `json:"reloads"`
	ReloadFailures int64             `json:"reload_failures"`
	Health         []health.Result   `json:"health"`
	Spool          []spool.DirState  `json:"spool"`
	Listen         string            `json:"listen"`
	Connections    int               `json:"connections"`
	Goroutines     int               `json:"goroutines"`
	BodyMemory     int64             `json:"body_memory_bytes"`
	Extra          map[string]string `json:"extra,omitempty"`
	// Quarantine summarises our own quarantine ("" when off).
	Quarantine string `json:"quarantine,omitempty"`
}

// Start opens the control socket of c for d; the returned function closes
// it. No socket configured: nothing to do.
func Start(c *Config, d Daemon, logger *slog.Logger) (func(), error) {
	if c == nil || c.Socket == "" {
		return nil, nil
	}
	learners, err := lookupUIDs(c.LearnUsers)
	if err != nil {
		return nil, err
	}
	ln, err := listen(c.Socket, len(learners) > 0)
	if err != nil {
		if c.Socket == DefaultSocket {
			// The built-in default must not stop a daemon that runs without
			// /run/mailwarden (not root, not systemd's RuntimeDirectory).
			logger.Warn("control socket unavailable; `mailwarden mode` and `status` will not reach this daemon", "socket", c.Socket, "error", err.Error())
			return nil, nil
		}
		return nil, err
	}
	logger.Info("control socket listening", "socket", c.Socket)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				select {
				case <-done:
					return
				default:
				}
				logger.Warn("control socket accept", "error", err.Error())
				time.Sleep(100 * time.Millisecond)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(conn, d, learners, logger)
			}()
		}
	}()
	return func() {
		close(done)
		ln.Close() // removes the socket file (net.UnixListener unlinks on Close)
		wg.Wait()
	}, nil
}

// lookupUIDs maps user names to uids.
func lookupUIDs(names []string) (map[int]bool, error) {
	uids := map[int]bool{}
	for _, n := range names {
		u, err := user.Lookup(n)
		if err != nil {
			return nil, fmt.Errorf("control: learn_users: %w", err)
		}
		id, _ := strconv.Atoi(u.Uid)
		uids[id] = true
	}
	return uids, nil
}

// listen creates the socket owner-only, or, for learners, open to
// everyone (the peer's credentials decide). A stale socket file (no
// daemon answers) is replaced; a live one is an error.
func listen(path string, open bool) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control: remove stale socket: %w", err)
		}
	}
	// The umask makes the socket owner-only from its creation, so that
	// there is no moment where others could connect; chmod then states it.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	mode := os.FileMode(0o600)
	if open {
		mode = 0o666
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return ln, nil
}

// peerUID is the peer's uid (SO_PEERCRED); ok reports whether it is ours
// or root's.
func peerUID(conn net.Conn) (uid int, ok bool) {
	uc, isUnix := conn.(*net.UnixConn)
	if !isUnix {
		return -1, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return -1, false
	}
	return int(cred.Uid), int(cred.Uid) == os.Getuid() || cred.Uid == 0
}

// serve answers JSON lines until the client closes.
func serve(conn net.Conn, d Daemon, learners map[int]bool, logger *slog.Logger) {
	defer conn.Close()
	uid, owner := peerUID(conn)
	enc := json.NewEncoder(conn)
	if !owner && !learners[uid] {
		logger.Warn("control connection refused", "uid", uid)
		enc.Encode(Response{Error: "permission denied"})
		return
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				enc.Encode(Response{Error: "bad request: line too long"})
			}
			return
		}
		var req Request
		var resp Response
		var raw []byte
		if err := json.Unmarshal(line, &req); err != nil {
			resp.Error = "bad request: " + err.Error()
		} else if req.Size < 0 || req.Size > MaxMessage {
			enc.Encode(Response{Error: fmt.Sprintf("bad request: size %d (at most %d)", req.Size, MaxMessage)})
			return
		} else {
			if req.Size > 0 {
				raw = make([]byte, req.Size)
				conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
				if _, err := io.ReadFull(r, raw); err != nil {
					return
				}
			}
			if !owner && req.Cmd != "learn" {
				resp.Error = "permission denied: learn_users may only learn"
			} else {
				resp = handle(d, req, raw, uid)
			}
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if enc.Encode(resp) != nil {
			return
		}
	}
}

// handle executes one request.
func handle(d Daemon, req Request, raw []byte, uid int) Response {
	ctx := context.Background()
	switch req.Cmd {
	case "status":
		return Response{OK: true, Status: d.Status()}
	case "mode":
		if err := d.SetMode(req.Mode, uid); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Status: d.Status()}
	case "check":
		if req.Check == nil {
			req.Check = &CheckRequest{}
		}
		out, code, err := d.Check(ctx, *req.Check, raw)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Output: out, ExitCode: code}
	case "learn":
		if req.Learn == nil || (req.Learn.Class != "spam" && req.Learn.Class != "ham") {
			return Response{Error: `learn: class must be "spam" or "ham"`}
		}
		res, err := d.Learn(ctx, *req.Learn, raw)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Learned: res}
	case "quarantine":
		qd, ok := d.(QuarantineDaemon)
		if !ok || req.Quarantine == nil {
			return Response{Error: "no quarantine here"}
		}
		r, err := qd.Quarantine(*req.Quarantine, uid)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Quarantine: r}
	}
	return Response{Error: fmt.Sprintf("unknown command %q (want status, mode, check, learn or quarantine)", req.Cmd)}
}

// Client is a connection to the control socket for several requests.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to the daemon's control socket.
func Dial(socket string) (*Client, error) {
	if socket == "" {
		return nil, errors.New("control: no control socket configured ([control] socket)")
	}
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control: is mailwarden running? %w", err)
	}
	return &Client{conn: conn, r: bufio.NewReader(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Do sends req with raw (the message, if any) and reads the answer; a
// refusal is an error with the response.
func (c *Client) Do(req Request, raw []byte) (*Response, error) {
	req.Size = int64(len(raw))
	c.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(append(append(b, '\n'), raw...)); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return nil, fmt.Errorf("control: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("control: bad answer: %w", err)
	}
	if !resp.OK {
		return &resp, fmt.Errorf("control: %s", resp.Error)
	}
	return &resp, nil
}

// Call sends one request to the daemon's control socket.
func Call(socket string, req Request) (*Response, error) {
	c, err := Dial(socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(req, nil)
}
