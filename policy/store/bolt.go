package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketKV  = []byte("kv")
	bucketWin = []byte("win")
)

// Bolt is the embedded store: one bbolt file. bbolt locks the file, so
// only one process may use it; within a process, every Bolt for the same
// path shares one handle (a reloaded pipeline opens the file while the old
// one still holds it).
//
// The file is opened on first use, not at construction, so that a daemon
// (or `mailwarden check`) starts even where the file cannot be opened; the
// failing operations then return ErrUnavailable and the steps apply their
// on_error action. After a failed open, the next attempt waits RetryAfter.
type Bolt struct {
	path        string
	openTimeout time.Duration
	// Now is the clock for expiry.
	Now func() time.Time

	mu       sync.Mutex
	db       *sharedDB
	lastErr  error
	lastFail time.Time
	closed   bool

	lastTrim atomic.Int64 // unix ns of the last trimResident
}

// RetryAfter is how long a failed open is remembered before trying again.
const RetryAfter = 5 * time.Second

type sharedDB struct {
	db   *bolt.DB
	refs int
}

var (
	openMu sync.Mutex
	opened = map[string]*sharedDB{}
)

// NewBolt returns a store on the bbolt file at path. openTimeout bounds the
// wait for the file lock held by another process.
func NewBolt(path string, openTimeout time.Duration) *Bolt {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return &Bolt{path: path, openTimeout: openTimeout, Now: time.Now}
}

// Open opens the file now and reports the error, for tests and for
// operators that want a failure at start.
func (s *Bolt) Open() error {
	_, err := s.handle()
	return err
}

func (s *Bolt) handle() (*bolt.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("store: bolt %s: closed", s.path)
	}
	if s.db != nil {
		return s.db.db, nil
	}
	if s.lastErr != nil && time.Since(s.lastFail) < RetryAfter {
		return nil, s.lastErr
	}
	openMu.Lock()
	defer openMu.Unlock()
	sh := opened[s.path]
	if sh == nil {
		// Like systemd's StateDirectory=: the state directory is ours to
		// create, so that the default path works on a fresh machine.
		err := os.MkdirAll(filepath.Dir(s.path), 0o750)
		var db *bolt.DB
		if err == nil {
			db, err = bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.openTimeout})
		}
		if err == nil {
			err = db.Update(func(tx *bolt.Tx) error {
				for _, b := range [][]byte{bucketKV, bucketWin} {
					if _, err := tx.CreateBucketIfNotExists(b); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				db.Close()
			}
		}
		if err != nil {
			s.lastErr, s.lastFail = unavailable("bolt "+s.path, err), time.Now()
			return nil, s.lastErr
		}
		sh = &sharedDB{db: db}
		opened[s.path] = sh
	}
	sh.refs++
	s.db, s.lastErr = sh, nil
	return sh.db, nil
}

// Close releases this store's reference; the file is closed with the last.
func (s *Bolt) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.db == nil {
		return nil
	}
	openMu.Lock()
	defer openMu.Unlock()
	sh := s.db
	s.db = nil
	sh.refs--
	if sh.refs == 0 {
		delete(opened, s.path)
		return sh.db.Close()
	}
	return nil
}

func (s *Bolt) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Bolt) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db, err := s.handle()
	if err != nil {
		return err
	}
	err = db.Update(fn)
	s.trimResident(db)
	return err
}

// TrimEvery is how often, at most, the pages of the bolt file are taken
// out of the process's resident set after a transaction (dropResident).
const TrimEvery = 250 * time.Millisecond

// trimResident drops the file's pages from the resident set, at most once
// per TrimEvery. bbolt writes a commit's pages where its freelist says
// (anywhere in the file) and reads them back through its mapping, so
// under steady writes the whole file drifts into RSS (20 MB of a 50 MB
// file after 5 000 corpus messages), and the Bayes reads of the messages
// that arrive while the token table loads touch most of it within a
// second (46 MB); those pages are page cache, not our memory, and the few
// a transaction needs come back as minor faults.
func (s *Bolt) trimResident(db *bolt.DB) {
	now := time.Now().UnixNano()
	last := s.lastTrim.Load()
	if now-last < int64(TrimEvery) || !s.lastTrim.CompareAndSwap(last, now) {
		return
	}
	db.View(func(tx *bolt.Tx) error {
		dropResident(tx)
		return nil
	})
}

func (s *Bolt) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db, err := s.handle()
	if err != nil {
		return err
	}
	err = db.View(fn)
	s.trimResident(db)
	return err
}

// A kv record is 8 bytes of absolute expiry (unix ns, 0 = never) and the value.
func boltGet(b *bolt.Bucket, key string, now time.Time) ([]byte, bool) {
	v := b.Get([]byte(key))
	if len(v) < 8 {
		return nil, false
	}
	if expired(int64(binary.BigEndian.Uint64(v)), now) {
		return nil, false
	}
	return append([]byte{}, v[8:]...), true
}

func boltPut(b *bolt.Bucket, key string, val []byte, exp int64) error {
	rec := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(val)), uint64(exp))
	return b.Put([]byte(key), append(rec, val...))
}

func boltExp(b *bolt.Bucket, key string) int64 {
	v := b.Get([]byte(key))
	if len(v) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (s *Bolt) Get(ctx context.Context, key string) (val []byte, ok bool, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		val, ok = boltGet(tx.Bucket(bucketKV), key, s.now())
		return nil
	})
	return val, ok, err
}

func (s *Bolt) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		return boltPut(tx.Bucket(bucketKV), key, val, expiry(ttl, s.now()))
	})
}

func (s *Bolt) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (set bool, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		now := s.now()
		if _, ok := boltGet(b, key, now); ok {
			return nil
		}
		set = true
		return boltPut(b, key, val, expiry(ttl, now))
	})
	return set && err == nil, err
}

func (s *Bolt) Delete(ctx context.Context, keys ...string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		for _, k := range keys {
			if err := errors.Join(tx.Bucket(bucketKV).Delete([]byte(k)), tx.Bucket(bucketWin).Delete([]byte(k))); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Bolt) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	v, err := s.MIncr(ctx, []Inc{{key, delta, ttl}})
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (s *Bolt) MGet(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		now := s.now()
		for i, k := range keys {
			if v, ok := boltGet(b, k, now); ok {
				out[i] = v
			}
		}
		return nil
	})
	return out, err
}

func (s *Bolt) MIncr(ctx context.Context, incs []Inc) ([]int64, error) {
	out := make([]int64, len(incs))
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		now := s.now()
		for i, in := range incs {
			old, ok := boltGet(b, in.Key, now)
			exp := expiry(in.TTL, now)
			if ok {
				exp = boltExp(b, in.Key)
			}
			n := parseCounter(old) + in.Delta
			if err := boltPut(b, in.Key, strconv.AppendInt(nil, n, 10), exp); err != nil {
				return err
			}
			out[i] = n
		}
		return nil
	})
	return out, err
}

func (s *Bolt) Take(ctx context.Context, ws []Window, now time.Time) (idx int, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWin)
		var perr error
		idx = takeAll(ws, now,
			func(k string) []event {
				v, ok := boltGet(b, k, now)
				if !ok {
					return nil
				}
				return decodeEvents(v)
			},
			func(k string, evs []event, period time.Duration) {
				perr = errors.Join(perr, boltPut(b, k, encodeEvents(evs), expiry(period, now)))
			})
		return perr
	})
	return idx, err
}

// Sweep deletes expired records; the daemon need not call it for
// correctness (expired records read as absent), only to bound the file.
func (s *Bolt) Sweep(ctx context.Context) (int, error) {
	n := 0
	err := s.update(ctx, func(tx *bolt.Tx) error {
		now := s.now()
		for _, name := range [][]byte{bucketKV, bucketWin} {
			c := tx.Bucket(name).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if len(v) < 8 || expired(int64(binary.BigEndian.Uint64(v)), now) {
					if err := c.Delete(); err != nil {
						return err
					}
					n++
				}
			}
		}
		return nil
	})
	return n, err
}

// SetBatch implements Batcher: every entry in one transaction, so one
// fsync for the batch.
func (s *Bolt) SetBatch(ctx context.Context, es []Entry) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		now := s.now()
		for _, e := range es {
			if err := boltPut(b, e.Key, e.Val, expiry(e.TTL, now)); err != nil {
				return err
			}
		}
		return nil
	})
}
