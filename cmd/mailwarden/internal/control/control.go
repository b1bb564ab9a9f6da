// Package control is the daemon's control socket: a unix socket, owner-only
// and checked by peer credentials (SO_PEERCRED: our uid or root), that
// speaks one JSON object per line ("status", "mode"), and its client for
// `mailwarden status` and `mailwarden mode`. The [control] section.
package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

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
}

// Validate checks the section.
func (c *Config) Validate() error {
	if c.Socket != "" && !filepath.IsAbs(c.Socket) {
		return policy.KeyErr("socket", "%q must be an absolute path", c.Socket)
	}
	return nil
}

// SectionName is the [control] section.
const SectionName = "control"

// Section is the [control] section (no step).
func Section() policy.Module {
	return policy.Module{Name: SectionName, Default: func() any { return &Config{Socket: DefaultSocket} }}
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
}

// QuarantineDaemon is a daemon that runs our own quarantine: it answers
// `mailwarden quarantine` (it holds the index).
type QuarantineDaemon interface {
	Quarantine(req quarcli.Request, uid int) (*quarcli.Response, error)
}

// Request is one line from a client.
type Request struct {
	Cmd        string           `json:"cmd"`            // "status", "mode" or "quarantine"
	Mode       string           `json:"mode,omitempty"` // for "mode": a mode, or "config" to drop the override
	Quarantine *quarcli.Request `json:"quarantine,omitempty"`
}

// Response is one line back.
type Response struct {
	OK         bool              `json:"ok"`
	Error      string            `json:"error,omitempty"`
	Status     *Status           `json:"status,omitempty"`
	Quarantine *quarcli.Response `json:"quarantine,omitempty"`
}

// Status is what `mailwarden status` shows.
type Status struct {
	Version        string            `json:"version"`
	PID            int               `json:"pid"`
	Mode           policy.Mode       `json:"mode"`
	ConfiguredMode policy.Mode       `json:"configured_mode"`
	Override       bool              `json:"override"`
	Started        time.Time         `json:"started"`
	UptimeSeconds  float64           `json:"uptime_seconds"`
	InFlight       int               `json:"in_flight"`
	Config         string            `json:"config"`
	Checks         []string          `json:"checks"`
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
	ln, err := listen(c.Socket)
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
				serve(conn, d, logger)
			}()
		}
	}()
	return func() {
		close(done)
		ln.Close() // removes the socket file (net.UnixListener unlinks on Close)
		wg.Wait()
	}, nil
}

// listen creates the socket owner-only. A stale socket file (no
// daemon answers) is replaced; a live one is an error.
func listen(path string) (net.Listener, error) {
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
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return ln, nil
}

// peerAllowed checks the peer's uid (SO_PEERCRED): ours or root.
func peerAllowed(conn net.Conn) (uid int, ok bool) {
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
func serve(conn net.Conn, d Daemon, logger *slog.Logger) {
	defer conn.Close()
	uid, ok := peerAllowed(conn)
	enc := json.NewEncoder(conn)
	if !ok {
		logger.Warn("control connection refused", "uid", uid)
		enc.Encode(Response{Error: "permission denied"})
		return
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for {
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		if !sc.Scan() {
			return
		}
		var req Request
		var resp Response
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = "bad request: " + err.Error()
		} else {
			resp = handle(d, req, uid)
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if enc.Encode(resp) != nil {
			return
		}
	}
}

// handle executes one request.
func handle(d Daemon, req Request, uid int) Response {
	switch req.Cmd {
	case "status":
		return Response{OK: true, Status: d.Status()}
	case "mode":
		if err := d.SetMode(req.Mode, uid); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Status: d.Status()}
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
	return Response{Error: fmt.Sprintf("unknown command %q (want status, mode or quarantine)", req.Cmd)}
}

// Call sends one request to the daemon's control socket.
func Call(socket string, req Request) (*Response, error) {
	if socket == "" {
		return nil, errors.New("control: no control socket configured ([control] socket)")
	}
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control: is mailwarden running? %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
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
