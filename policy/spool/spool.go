// Package spool is the spool guard: it watches the free space (bytes and
// inodes, statfs(2)) of configured directories, such as Postfix's queue and
// our temp dir, every few seconds. While one of them is below its minimum,
// new recipients and messages are answered 452 4.3.1 (RFC 5321 §4.2.3:
// 452 "Requested action not taken: insufficient system storage"; RFC 3463
// §3.4: X.3.1 "Mail system full"), so that senders retry later instead of
// the queue filling up. Service resumes by itself when space returns.
//
// New measures once; the poller runs in a goroutine that the daemon starts
// (Start) and stops (Close). The Guard outlives reloads that leave [spool]
// unchanged; Module turns it into the pipeline's "spool" step.
package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
)

// Status values of the check.
const (
	StatusOK  policy.Status = "ok"  // every directory has room
	StatusLow policy.Status = "low" // some directory is below min_free
)

// ReasonLow is the reason code while space is low.
const ReasonLow = "spool-low"

// Usage is the free space of one file system.
type Usage struct {
	FreeBytes  uint64 // available to unprivileged users (statfs f_bavail)
	FreeInodes uint64
	// TotalInodes is 0 on file systems without a fixed inode table
	// (btrfs); the inode minimum is not applied there.
	TotalInodes uint64
}

// StatFS measures the file system holding dir.
type StatFS func(dir string) (Usage, error)

// Statfs is the real StatFS.
func Statfs(dir string) (Usage, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return Usage{}, fmt.Errorf("spool: statfs %s: %w", dir, err)
	}
	return Usage{FreeBytes: uint64(s.Bavail) * uint64(s.Bsize), FreeInodes: uint64(s.Ffree), TotalInodes: uint64(s.Files)}, nil
}

// Gauges receives the measurements; the daemon's metrics implement it.
type Gauges interface {
	SpoolFree(dir string, bytes, inodes uint64, low bool)
}

// Events counts deferrals (mailwarden_events_total{event="spool-low"});
// the daemon's metrics implement it.
type Events interface {
	Event(name string)
}

// Config is the [spool] section.
type Config struct {
	policy.StepConfig
	// Dirs to watch; empty means the message temp dir ($TMPDIR or /tmp).
	Dirs []string `toml:"dirs"`
	// MinFreeBytes and MinFreeInodes: below either, new mail is deferred.
	// 0 disables that minimum.
	MinFreeBytes  policy.Size     `toml:"min_free_bytes"`
	MinFreeInodes int64           `toml:"min_free_inodes"`
	Interval      policy.Duration `toml:"interval"`
	Reply         policy.Reply    `toml:"reply"`
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.MinFreeBytes < 0 {
		errs = append(errs, policy.KeyErr("min_free_bytes", "must not be negative"))
	}
	if c.MinFreeInodes < 0 {
		errs = append(errs, policy.KeyErr("min_free_inodes", "must not be negative"))
	}
	if c.Interval.D() < 100*time.Millisecond {
		errs = append(errs, policy.KeyErr("interval", "must be at least 100ms"))
	}
	if c.Reply.Code/100 != 4 {
		errs = append(errs, policy.KeyErr("reply", "must be a 4xx reply (space comes back)"))
	}
	for _, d := range c.Dirs {
		if !strings.HasPrefix(d, "/") {
			errs = append(errs, policy.KeyErr("dirs", "%q is not an absolute path", d))
		}
	}
	return errors.Join(errs...)
}

// Default returns the section's defaults.
func Default() *Config {
	return &Config{
		StepConfig:    policy.DefaultStep(),
		Dirs:          []string{},
		MinFreeBytes:  100 << 20,
		MinFreeInodes: 1000,
		Interval:      policy.Duration(5 * time.Second),
		Reply:         policy.Reply{Code: 452, Enhanced: "4.3.1", Text: "Insufficient system storage"},
	}
}

// Name is the check's name and its config section.
const Name = "spool"

// Module is the [spool] section and the "spool" step, backed by g (the
// daemon's Guard, built from the same section; nil when disabled).
func Module(g *Guard) policy.Module {
	return policy.Module{
		Name:    Name,
		Default: func() any { return Default() },
		Build: func(section any, env *policy.Env) ([]policy.Step, error) {
			c := section.(*Config)
			if !c.Enabled {
				return nil, nil
			}
			if g == nil {
				return nil, errors.New("spool: enabled but no guard was built")
			}
			return []policy.Step{{Check: g, StepConfig: c.StepConfig}}, nil
		},
	}
}

// ConfigOf returns the [spool] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, Name); c != nil {
		return c
	}
	return Default()
}

// Dirs is what c watches: its dirs, or the core's temp dir (the system's
// when unset).
func Dirs(c *Config, core *policy.Config) []string {
	if len(c.Dirs) > 0 {
		return c.Dirs
	}
	d := core.Message.TempDir
	if d == "" {
		d = os.TempDir()
	}
	return []string{d}
}

// Options are the guard's injected world.
type Options struct {
	StatFS StatFS // default Statfs
	// Ticker returns a channel that ticks every d and a stop function;
	// default time.NewTicker.
	Ticker  func(d time.Duration) (<-chan time.Time, func())
	Logger  *slog.Logger
	Metrics policy.Metrics // may implement Gauges
}

// DirState is the last measurement of one directory.
type DirState struct {
	Dir        string `json:"dir"`
	FreeBytes  uint64 `json:"free_bytes"`
	FreeInodes uint64 `json:"free_inodes"`
	Low        bool   `json:"low"`
	Error      string `json:"error,omitempty"`
}

// Guard is the spool guard check and its poller.
type Guard struct {
	c    *Config
	dirs []string
	opt  Options

	mu    sync.Mutex
	state []DirState
	low   bool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New makes a guard and measures once, so that its state is known at once.
func New(c *Config, dirs []string, opt Options) *Guard {
	if opt.StatFS == nil {
		opt.StatFS = Statfs
	}
	if opt.Ticker == nil {
		opt.Ticker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{c: c, dirs: dirs, opt: opt}
	g.Poll()
	return g
}

// Start runs the poller until Close.
func (g *Guard) Start() {
	g.stop, g.done = make(chan struct{}), make(chan struct{})
	tick, stopTick := g.opt.Ticker(g.c.Interval.D())
	go func() {
		defer close(g.done)
		defer stopTick()
		for {
			select {
			case <-g.stop:
				return
			case <-tick:
				g.Poll()
			}
		}
	}()
}

// Close stops the poller.
func (g *Guard) Close() error {
	g.once.Do(func() {
		if g.stop != nil {
			close(g.stop)
			<-g.done
		}
	})
	return nil
}

// Poll measures every directory once and updates the state, logging the
// transitions between low and ok.
func (g *Guard) Poll() {
	state := make([]DirState, len(g.dirs))
	low := false
	for i, d := range g.dirs {
		st := DirState{Dir: d}
		u, err := g.opt.StatFS(d)
		if err != nil {
			// A directory we cannot measure does not stop mail: that would
			// turn a typo into an outage. It is logged and shown in status.
			st.Error = err.Error()
		} else {
			st.FreeBytes, st.FreeInodes = u.FreeBytes, u.FreeInodes
			st.Low = (g.c.MinFreeBytes > 0 && u.FreeBytes < uint64(g.c.MinFreeBytes)) ||
				(g.c.MinFreeInodes > 0 && u.TotalInodes > 0 && u.FreeInodes < uint64(g.c.MinFreeInodes))
		}
		low = low || st.Low
		state[i] = st
	}
	g.mu.Lock()
	prev := g.state
	g.state, g.low = state, low
	g.mu.Unlock()
	gauges, _ := g.opt.Metrics.(Gauges)
	for i, st := range state {
		was := i < len(prev) && prev[i].Low
		hadErr := i < len(prev) && prev[i].Error != ""
		switch {
		case st.Low && !was:
			g.opt.Logger.Error("spool space low", "dir", st.Dir, "free_bytes", st.FreeBytes, "free_inodes", st.FreeInodes,
				"min_free_bytes", int64(g.c.MinFreeBytes), "min_free_inodes", g.c.MinFreeInodes, "reason", ReasonLow)
		case !st.Low && was:
			g.opt.Logger.Info("spool space recovered", "dir", st.Dir, "free_bytes", st.FreeBytes, "free_inodes", st.FreeInodes)
		}
		if st.Error != "" && !hadErr {
			g.opt.Logger.Warn("spool statfs failed", "dir", st.Dir, "error", st.Error)
		}
		if gauges != nil && st.Error == "" {
			gauges.SpoolFree(st.Dir, st.FreeBytes, st.FreeInodes, st.Low)
		}
	}
}

// Low reports whether some directory is below its minimum.
func (g *Guard) Low() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.low
}

// State returns the last measurements, sorted by directory.
func (g *Guard) State() []DirState {
	g.mu.Lock()
	s := append([]DirState(nil), g.state...)
	g.mu.Unlock()
	sort.Slice(s, func(i, j int) bool { return s[i].Dir < s[j].Dir })
	return s
}

func (g *Guard) Name() string { return "spool" }

func (g *Guard) result() policy.Result {
	if !g.Low() {
		return policy.Result{Status: StatusOK}
	}
	var low []string
	for _, s := range g.State() {
		if s.Low {
			low = append(low, s.Dir)
		}
	}
	if e, ok := g.opt.Metrics.(Events); ok {
		e.Event(ReasonLow)
	}
	return policy.Result{Status: StatusLow, Action: policy.ActionTempfail, Reasons: []string{ReasonLow}, Reply: g.c.Reply,
		Detail: "low free space in " + strings.Join(low, ",")}
}

// CheckRcpt defers new recipients while space is low.
func (g *Guard) CheckRcpt(context.Context, *message.Envelope, string) (policy.Result, error) {
	return g.result(), nil
}

// Check defers the message while space is low (for MTAs that do not send
// RCPT events to the milter).
func (g *Guard) Check(context.Context, *message.Message, policy.Results) (policy.Result, error) {
	return g.result(), nil
}
