// Package store is mailwarden's shared state: a small key-value interface
// with expiry, atomic counters and an exact sliding-window limiter, with two
// implementations that pass one contract suite (see storetest):
//
//   - Bolt, the embedded default: one bbolt file on local disk, opened with
//     a timeout (bbolt takes an exclusive file lock, so one daemon per
//     file; several pipelines of one daemon share the handle).
//   - Redis (go-redis/v9): every compound update is one Lua script, which
//     Redis runs atomically, so several MTAs share counters without races.
//
// Expiry is absolute: a TTL of zero means "never expires". Keys are opaque
// strings; callers namespace them ("ar:msg:", "rl:", "bayes:").
//
// The [store] config section builds no check; the daemon opens one Store
// from it (Open) and hands it to the checks that need it. It outlives
// reloads that leave [store] unchanged; the daemon runs Sweep for bolt.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store is the state shared between messages, reloads and (with Redis)
// MTAs. Every method is safe for concurrent use. An error means the store
// could not be reached or could not answer (see Unavailable); a missing key
// is not an error.
type Store interface {
	// Get returns the value of key; ok is false when it is absent or expired.
	Get(ctx context.Context, key string) (val []byte, ok bool, err error)
	// Set stores val under key; ttl 0 keeps it forever.
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// SetNX stores val only if key is absent (or expired) and reports
	// whether it did: the atomic "first time in ttl" test.
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	// Delete removes keys; absent keys are ignored.
	Delete(ctx context.Context, keys ...string) error
	// Incr adds delta to the integer counter at key and returns the new
	// value. A counter created by this call (absent or expired before)
	// gets the ttl; an existing one keeps its expiry.
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	// MGet returns the values of keys in order, nil for absent ones.
	MGet(ctx context.Context, keys []string) ([][]byte, error)
	// MIncr applies every Incr in one atomic batch and returns the new
	// values in order (Bayes token counts).
	MIncr(ctx context.Context, incs []Inc) ([]int64, error)
	// Take is the exact sliding-window limiter: it admits the request only
	// if, for every window, the events admitted in (now-Period, now] plus
	// Cost stay within Limit, and then records Cost events in every window;
	// otherwise it records nothing. All windows are decided atomically.
	// It returns -1 when admitted, else the index of the first window that
	// is full. The keys of one call must be distinct.
	Take(ctx context.Context, ws []Window, now time.Time) (int, error)
	// Close releases the store.
	Close() error
}

// Inc is one counter update of MIncr.
type Inc struct {
	Key   string
	Delta int64
	TTL   time.Duration
}

// Window is one limit of Take: at most Limit events per Period under Key.
type Window struct {
	Key    string
	Limit  int
	Period time.Duration
	Cost   int // events this request counts for; 0 means 1
}

func (w Window) cost() int {
	if w.Cost <= 0 {
		return 1
	}
	return w.Cost
}

// ErrUnavailable marks errors where the store could not be reached; the
// pipeline then applies the step's on_error action. Such errors are
// temporary.
var ErrUnavailable = errors.New("store: unavailable")

// unavailable wraps err so that errors.Is(err, ErrUnavailable) holds.
func unavailable(backend string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, backend, err)
}

// expired reports whether an absolute expiry (unix nanoseconds, 0 = never)
// has passed at now.
func expired(exp int64, now time.Time) bool { return exp != 0 && now.UnixNano() >= exp }

func expiry(ttl time.Duration, now time.Time) int64 {
	if ttl <= 0 {
		return 0
	}
	return now.Add(ttl).UnixNano()
}
