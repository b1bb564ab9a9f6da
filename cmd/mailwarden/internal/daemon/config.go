// Package daemon is `mailwarden serve`: the Server that builds the
// services once (wire.BuildServices) and the pipeline on them, listens for
// the MTA (filter), starts the control socket and /metrics, reloads on
// SIGHUP (rebuilding only the services whose section changed; the
// replaced ones close when the old pipeline drains) and stops gracefully.
// It also holds the daemon's own settings, which decide nothing about a
// message: the milter socket ([listen]) and logging ([log]), config
// sections like any module's (policy.Module without Build), read through
// ListenOf and LogOf.
package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy"
)

// Section names.
const (
	ListenSectionName = "listen"
	LogSectionName    = "log"
)

// ListenConfig is the [listen] section: the milter socket.
type ListenConfig struct {
	Address     string          `toml:"address"`      // unix:/path or inet:host:port
	SocketMode  string          `toml:"socket_mode"`  // octal, for unix sockets
	SocketGroup string          `toml:"socket_group"` // group name or id, for unix sockets
	GracePeriod policy.Duration `toml:"grace_period"` // finish in-flight sessions on SIGTERM
	ReadTimeout policy.Duration `toml:"read_timeout"` // idle MTA connection
	// MaxConnections caps concurrent MTA connections; more are closed at
	// once (logged, counted). 0: no cap.
	MaxConnections int `toml:"max_connections"`
}

// DefaultListen is [listen] with its defaults.
func DefaultListen() *ListenConfig {
	return &ListenConfig{
		Address:        "inet:127.0.0.1:8895",
		SocketMode:     "0660",
		GracePeriod:    policy.Duration(30 * time.Second),
		ReadTimeout:    policy.Duration(5 * time.Minute),
		MaxConnections: 400,
	}
}

// Validate checks the section; it changes nothing.
func (c *ListenConfig) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.Address, "unix:") && !strings.HasPrefix(c.Address, "inet:") && !strings.HasPrefix(c.Address, "inet6:") {
		errs = append(errs, policy.KeyErr("address", "%q must start with unix: or inet:", c.Address))
	}
	if _, err := ParseFileMode(c.SocketMode); err != nil {
		errs = append(errs, policy.KeyErr("socket_mode", "%v", err))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, policy.KeyErr("max_connections", "must not be negative (0: no cap)"))
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, policy.KeyErr("read_timeout", "must be positive"))
	}
	return errors.Join(errs...)
}

// LogConfig is the [log] section: the slog handler.
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // json or text
	File   string `toml:"file"`   // "" is standard error
}

// DefaultLog is [log] with its defaults.
func DefaultLog() *LogConfig { return &LogConfig{Level: "info", Format: "json"} }

// Validate checks the section; it changes nothing.
func (c *LogConfig) Validate() error {
	var errs []error
	switch strings.ToLower(c.Level) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, policy.KeyErr("level", "%q: want debug, info, warn or error", c.Level))
	}
	switch c.Format {
	case "json", "text":
	default:
		errs = append(errs, policy.KeyErr("format", "%q: want json or text", c.Format))
	}
	return errors.Join(errs...)
}

// Sections are the daemon's config sections.
func Sections() []policy.Module {
	return []policy.Module{
		{Name: ListenSectionName, Default: func() any { return DefaultListen() }},
		{Name: LogSectionName, Default: func() any { return DefaultLog() }},
	}
}

// ListenOf returns the [listen] section of cfg (the defaults when absent).
func ListenOf(cfg *policy.Config) *ListenConfig {
	if c := policy.SectionOf[*ListenConfig](cfg, ListenSectionName); c != nil {
		return c
	}
	return DefaultListen()
}

// LogOf returns the [log] section of cfg (the defaults when absent).
func LogOf(cfg *policy.Config) *LogConfig {
	if c := policy.SectionOf[*LogConfig](cfg, LogSectionName); c != nil {
		return c
	}
	return DefaultLog()
}

// ParseFileMode reads an octal permission such as "0660".
func ParseFileMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not an octal permission such as 0660", s)
	}
	return fs.FileMode(v), nil
}
