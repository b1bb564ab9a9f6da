package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailwarden/mailwarden/policy"
)

// Backend names a Store implementation in the config.
type Backend string

const (
	BackendBolt   Backend = "bolt"   // embedded file, one daemon
	BackendRedis  Backend = "redis"  // shared by several daemons
	BackendMemory Backend = "memory" // lost at exit; tests and trials
)

// Config is the [store] section.
type Config struct {
	Backend     Backend         `toml:"backend"`
	Path        string          `toml:"path"`
	OpenTimeout policy.Duration `toml:"open_timeout"`
	RedisURL    string          `toml:"redis_url"`
	RedisPrefix string          `toml:"redis_prefix"`
	Timeout     policy.Duration `toml:"timeout"`
	// Write-behind queue of observer writes (Behind); bolt and redis only.
	WriteBehind   bool            `toml:"write_behind"`
	BatchInterval policy.Duration `toml:"batch_interval"`
	BatchSize     int             `toml:"batch_size"`
	OnFull        OnFull          `toml:"on_full"`
}

// DefaultPath is where the embedded store lives by default.
const DefaultPath = "/var/lib/mailwarden/state.db"

// Default is the section's defaults.
func Default() *Config {
	return &Config{
		Backend:     BackendBolt,
		Path:        DefaultPath,
		OpenTimeout: policy.Duration(5 * time.Second),
		RedisURL:    "redis://127.0.0.1:6379/0",
		RedisPrefix: "mailwarden:",
		Timeout:     policy.Duration(2 * time.Second),

		WriteBehind:   true,
		BatchInterval: policy.Duration(50 * time.Millisecond),
		BatchSize:     500,
		OnFull:        OnFullDrop,
	}
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	switch c.Backend {
	case BackendBolt:
		if c.Path == "" {
			errs = append(errs, policy.KeyErr("path", "the bolt backend needs a file path"))
		}
	case BackendRedis:
		// Parse only: a client built here would start go-redis's
		// goroutines on every reload and never stop them.
		if err := checkRedisURL(c.RedisURL); err != nil {
			errs = append(errs, policy.KeyErr("redis_url", "%v", err))
		}
	case BackendMemory:
	default:
		errs = append(errs, policy.KeyErr("backend", "%q: want bolt, redis or memory", c.Backend))
	}
	if c.OpenTimeout <= 0 {
		errs = append(errs, policy.KeyErr("open_timeout", "must be positive"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, policy.KeyErr("timeout", "must be positive"))
	}
	if c.WriteBehind {
		if c.BatchInterval <= 0 {
			errs = append(errs, policy.KeyErr("batch_interval", "must be positive"))
		}
		if c.BatchSize <= 0 {
			errs = append(errs, policy.KeyErr("batch_size", "must be positive"))
		}
		if c.OnFull != OnFullDrop && c.OnFull != OnFullBlock {
			errs = append(errs, policy.KeyErr("on_full", "%q: want drop or block", c.OnFull))
		}
	}
	return errors.Join(errs...)
}

// SectionName is the store's config section.
const SectionName = "store"

// Section is the [store] section. It builds no step: the daemon opens the
// one Store (Open) and hands it to the checks that need it.
func Section() policy.Module {
	return policy.Module{Name: SectionName, Default: func() any { return Default() }}
}

// ConfigOf returns the [store] section of cfg (the defaults when absent).
func ConfigOf(cfg *policy.Config) *Config {
	if c := policy.SectionOf[*Config](cfg, SectionName); c != nil {
		return c
	}
	return Default()
}

// Open builds the configured store. Neither backend connects here: an
// unreachable store shows up as ErrUnavailable on use. It starts no
// goroutine: the daemon runs Sweep for a bolt store. With write_behind,
// Set goes through a Behind queue (memory backend excepted: it has no disk
// to wait for), whose flusher starts with the first Set.
func Open(c *Config) (Store, error) {
	behind := func(s Store) Store {
		if !c.WriteBehind {
			return s
		}
		return NewBehind(s, BehindOptions{Interval: c.BatchInterval.D(), Size: c.BatchSize, OnFull: c.OnFull})
	}
	switch c.Backend {
	case BackendBolt, "":
		return behind(NewBolt(c.Path, c.OpenTimeout.D())), nil
	case BackendRedis:
		r, err := NewRedis(c.RedisURL, c.RedisPrefix, c.Timeout.D())
		if err != nil {
			return nil, err
		}
		return behind(r), nil
	case BackendMemory:
		return NewMemory(), nil
	}
	return nil, fmt.Errorf("store: unknown backend %q", c.Backend)
}

// Sweep removes expired records from st every interval until ctx ends; it
// returns at once when st needs no sweeping. The daemon runs it in its own
// goroutine.
func Sweep(ctx context.Context, st Store, every time.Duration) {
	if bh, ok := st.(*Behind); ok {
		st = bh.Store
	}
	b, ok := st.(*Bolt) // redis and the memory store expire on their own
	if !ok {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.mu.Lock()
			open := b.db != nil // never open the file just to sweep it
			b.mu.Unlock()
			if open {
				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				b.Sweep(sctx)
				cancel()
			}
		}
	}
}
