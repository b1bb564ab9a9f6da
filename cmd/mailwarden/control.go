package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/daemon"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/health"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/spool"
)

// DefaultControlSocket is where the control socket lives unless configured.
const DefaultControlSocket = "/run/mailwarden/control.sock"

// ControlConfig is the [control] section.
type ControlConfig struct {
	// Socket is the unix socket of `mailwarden mode` and `mailwarden
	// status`; "" disables it. It is created owner-only (0600) and only
	// peers with our uid or root are served.
	Socket string `toml:"socket"`
}

// Validate checks the section.
func (c *ControlConfig) Validate() error {
	if c.Socket != "" && !filepath.IsAbs(c.Socket) {
		return policy.KeyErr("socket", "%q must be an absolute path", c.Socket)
	}
	return nil
}

func controlModule() policy.Module {
	return policy.Module{
		Name:    "control",
		Default: func() any { return &ControlConfig{Socket: DefaultControlSocket} },
	}
}

// controlRequest is one line from a client.
type controlRequest struct {
	Cmd  string `json:"cmd"`            // "status" or "mode"
	Mode string `json:"mode,omitempty"` // for "mode": a mode, or "config" to drop the override
}

// controlResponse is one line back.
type controlResponse struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *status `json:"status,omitempty"`
}

// status is what `mailwarden status` shows.
type status struct {
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
}

func (d *server) status() *status {
	p := d.pipeline()
	s := &status{
		Version: versionString(), PID: os.Getpid(), Mode: p.Mode(), ConfiguredMode: p.Config().Mode,
		Started: d.started.UTC().Truncate(time.Second), UptimeSeconds: time.Since(d.started).Round(time.Second).Seconds(),
		Config: configName(d.cfgPath), Checks: p.Checks(), Reloads: d.reloads.Load(), ReloadFailures: d.failed.Load(),
		Listen: daemon.ListenOf(p.Config()).Address,
	}
	_, s.Override = d.modes.Get()
	s.Goroutines = runtime.NumGoroutine()
	if d.srv != nil {
		s.InFlight = d.inflight()
		s.Connections = d.srv.Conns()
		s.BodyMemory = d.srv.BodyMemory()
	}
	if o := d.ops; o != nil {
		s.Health, s.Spool = o.Snapshot()
	}
	return s
}

// startControl opens the control socket.
func startControl(d *server) (func(), error) {
	c, _ := d.cfg().Sections["control"].(*ControlConfig)
	if c == nil || c.Socket == "" {
		return nil, nil
	}
	ln, err := listenControl(c.Socket)
	if err != nil {
		if c.Socket == DefaultControlSocket {
			// The built-in default must not stop a daemon that runs without
			// /run/mailwarden (not root, not systemd's RuntimeDirectory).
			d.logger.Warn("control socket unavailable; `mailwarden mode` and `status` will not reach this daemon", "socket", c.Socket, "error", err.Error())
			return nil, nil
		}
		return nil, err
	}
	d.logger.Info("control socket listening", "socket", c.Socket)
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
				d.logger.Warn("control socket accept", "error", err.Error())
				time.Sleep(100 * time.Millisecond)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.serveControl(conn)
			}()
		}
	}()
	return func() {
		close(done)
		ln.Close() // removes the socket file (net.UnixListener unlinks on Close)
		wg.Wait()
	}, nil
}

// listenControl creates the socket owner-only. A stale socket file (no
// daemon answers) is replaced; a live one is an error.
func listenControl(path string) (net.Listener, error) {
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

// serveControl answers JSON lines until the client closes.
func (d *server) serveControl(conn net.Conn) {
	defer conn.Close()
	uid, ok := peerAllowed(conn)
	enc := json.NewEncoder(conn)
	if !ok {
		d.logger.Warn("control connection refused", "uid", uid)
		enc.Encode(controlResponse{Error: "permission denied"})
		return
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for {
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		if !sc.Scan() {
			return
		}
		var req controlRequest
		var resp controlResponse
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = "bad request: " + err.Error()
		} else {
			resp = d.control(req, uid)
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if enc.Encode(resp) != nil {
			return
		}
	}
}

// control executes one request.
func (d *server) control(req controlRequest, uid int) controlResponse {
	switch req.Cmd {
	case "status":
		return controlResponse{OK: true, Status: d.status()}
	case "mode":
		old := d.pipeline().Mode()
		if req.Mode == "config" {
			d.modes.Clear()
		} else {
			m, err := policy.ParseMode(req.Mode)
			if err != nil {
				return controlResponse{Error: err.Error()}
			}
			d.modes.Set(m)
		}
		cur := d.pipeline().Mode()
		d.logger.Warn("mode changed", "from", string(old), "to", string(cur), "override", req.Mode != "config", "uid", uid)
		if o := d.ops; o != nil {
			o.ModeChanged()
		}
		return controlResponse{OK: true, Status: d.status()}
	}
	return controlResponse{Error: fmt.Sprintf("unknown command %q (want status or mode)", req.Cmd)}
}

// controlCall sends one request to the daemon's control socket.
func controlCall(socket string, req controlRequest) (*controlResponse, error) {
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
	var resp controlResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("control: bad answer: %w", err)
	}
	if !resp.OK {
		return &resp, fmt.Errorf("control: %s", resp.Error)
	}
	return &resp, nil
}

// socketFlags are the flags shared by the control clients.
func controlSocket(cfgPath, socket string) (string, error) {
	if socket != "" {
		return socket, nil
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return "", err
	}
	c, _ := cfg.Sections["control"].(*ControlConfig)
	if c == nil {
		return "", errors.New("control: no [control] section known")
	}
	return c.Socket, nil
}

func formatUptime(sec float64) string {
	d := time.Duration(sec) * time.Second
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		return fmt.Sprintf("%dd%s", days, d.String())
	}
	return d.String()
}
