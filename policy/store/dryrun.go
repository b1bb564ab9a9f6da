package store

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Peeker is implemented by stores that can answer Take's question without
// recording anything: the index of the first full window, or -1 when Take
// would admit the request. Bolt, Memory and Redis implement it.
type Peeker interface {
	Peek(ctx context.Context, ws []Window, now time.Time) (int, error)
}

// ErrDryRun: a counter update (Incr, MIncr) asked of a DryRun store,
// which cannot compute the new value without writing it.
var ErrDryRun = errors.New("store: dry run: counters are not updated")

// DryRun wraps s for a verdict that must leave no trace (`mailwarden
// check` answered by the running daemon): reads go to s; Set and Delete
// do nothing; SetNX answers whether it would have stored; Take answers
// whether it would have admitted (exactly with a Peeker, else it admits);
// Incr and MIncr fail with ErrDryRun. Close does not close s.
func DryRun(s Store) Store { return dryRun{s} }

type dryRun struct{ s Store }

func (d dryRun) Get(ctx context.Context, key string) ([]byte, bool, error) { return d.s.Get(ctx, key) }
func (d dryRun) MGet(ctx context.Context, keys []string) ([][]byte, error) {
	return d.s.MGet(ctx, keys)
}
func (d dryRun) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return ctx.Err()
}
func (d dryRun) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	_, ok, err := d.s.Get(ctx, key)
	return !ok, err
}
func (d dryRun) Delete(ctx context.Context, keys ...string) error { return ctx.Err() }
func (d dryRun) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	return 0, ErrDryRun
}
func (d dryRun) MIncr(ctx context.Context, incs []Inc) ([]int64, error) { return nil, ErrDryRun }
func (d dryRun) Take(ctx context.Context, ws []Window, now time.Time) (int, error) {
	if p, ok := d.s.(Peeker); ok {
		return p.Peek(ctx, ws, now)
	}
	return -1, ctx.Err()
}
func (d dryRun) Close() error { return nil }

// peekAll is takeAll without recording.
func peekAll(ws []Window, now time.Time, load func(key string) []event) int {
	for i, w := range ws {
		if count(prune(load(w.Key), now, w.Period))+w.cost() > w.Limit {
			return i
		}
	}
	return -1
}

// Peek implements Peeker.
func (s *Memory) Peek(ctx context.Context, ws []Window, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return peekAll(ws, now, func(k string) []event {
		w := s.win[k]
		if expired(w.exp, now) {
			return nil
		}
		return append([]event(nil), w.evs...)
	}), nil
}

// Peek implements Peeker.
func (s *Bolt) Peek(ctx context.Context, ws []Window, now time.Time) (idx int, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWin)
		idx = peekAll(ws, now, func(k string) []event {
			v, ok := boltGet(b, k, now)
			if !ok {
				return nil
			}
			return decodeEvents(v)
		})
		return nil
	})
	return idx, err
}

// Peek implements Peeker: takeScript's first loop, read-only.
func (s *Redis) Peek(ctx context.Context, ws []Window, now time.Time) (int, error) {
	if len(ws) == 0 {
		return -1, nil
	}
	keys := make([]string, len(ws))
	args := []any{now.UnixMicro()}
	for i, w := range ws {
		keys[i] = s.k(w.Key)
		args = append(args, w.Limit, w.Period.Microseconds(), w.cost())
	}
	n, err := peekScript.Run(ctx, s.c, keys, args...).Int()
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}
