package store

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"time"
)

// Memory is a Store in process memory, for tests and for `backend =
// "memory"` (state is lost at exit and not shared). Now is its clock.
type Memory struct {
	Now func() time.Time

	mu  sync.Mutex
	kv  map[string]memEntry
	win map[string]memWindow
}

type memEntry struct {
	val []byte
	exp int64
}

type memWindow struct {
	evs []event
	exp int64
}

// NewMemory returns an empty memory store on the wall clock.
func NewMemory() *Memory { return &Memory{Now: time.Now} }

func (s *Memory) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Memory) get(key string, now time.Time) (memEntry, bool) {
	e, ok := s.kv[key]
	if !ok || expired(e.exp, now) {
		return memEntry{}, false
	}
	return e, true
}

func (s *Memory) set(key string, e memEntry) {
	if s.kv == nil {
		s.kv = map[string]memEntry{}
	}
	s.kv[key] = e
}

func (s *Memory) Get(ctx context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(key, s.now())
	return clone(e.val), ok, ctx.Err()
}

func (s *Memory) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set(key, memEntry{clone(val), expiry(ttl, s.now())})
	return ctx.Err()
}

func (s *Memory) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if _, ok := s.get(key, now); ok {
		return false, nil
	}
	s.set(key, memEntry{clone(val), expiry(ttl, now)})
	return true, nil
}

func (s *Memory) Delete(ctx context.Context, keys ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.kv, k)
		delete(s.win, k)
	}
	return ctx.Err()
}

func (s *Memory) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	v, err := s.MIncr(ctx, []Inc{{key, delta, ttl}})
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (s *Memory) MGet(ctx context.Context, keys []string) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if e, ok := s.get(k, now); ok {
			out[i] = clone(e.val)
		}
	}
	return out, ctx.Err()
}

func (s *Memory) MIncr(ctx context.Context, incs []Inc) ([]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]int64, len(incs))
	for i, in := range incs {
		e, ok := s.get(in.Key, now)
		if !ok {
			e = memEntry{exp: expiry(in.TTL, now)}
		}
		n := parseCounter(e.val) + in.Delta
		e.val = strconv.AppendInt(nil, n, 10)
		s.set(in.Key, e)
		out[i] = n
	}
	return out, nil
}

func (s *Memory) Take(ctx context.Context, ws []Window, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.win == nil {
		s.win = map[string]memWindow{}
	}
	return takeAll(ws, now,
		func(k string) []event {
			w := s.win[k]
			if expired(w.exp, now) {
				return nil
			}
			return append([]event(nil), w.evs...)
		},
		func(k string, evs []event, period time.Duration) {
			s.win[k] = memWindow{evs, expiry(period, now)}
		}), nil
}

func (s *Memory) Close() error { return nil }

// Len is the number of live keys (for tests).
func (s *Memory) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	now := s.now()
	for k := range maps.Keys(s.kv) {
		if _, ok := s.get(k, now); ok {
			n++
		}
	}
	return n
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
