package store

import (
	"context"
	"encoding/binary"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Scanner is implemented by stores that can list their keys: the embedded
// ones (Bolt, Memory), whose data only this process writes, so a reader
// may load a whole table into memory once and keep it in step itself.
// Redis does not implement it: other MTAs write there.
type Scanner interface {
	// Scan calls fn for every live key with the prefix, in key order for
	// Bolt. fn must not keep val past its return, nor call the store.
	Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error
}

// AsScanner returns s as a Scanner, looking through a Behind queue
// (committing it first, so the scan sees every queued Set).
func AsScanner(s Store) (Scanner, bool) {
	if b, ok := s.(*Behind); ok {
		sc, ok := b.Store.(Scanner)
		if !ok {
			return nil, false
		}
		return flushedScanner{b, sc}, true
	}
	sc, ok := s.(Scanner)
	return sc, ok
}

type flushedScanner struct {
	b  *Behind
	sc Scanner
}

func (f flushedScanner) Scan(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	if err := f.b.Flush(ctx); err != nil {
		return err
	}
	return f.sc.Scan(ctx, prefix, fn)
}

// Scan implements Scanner, in one read transaction. A scan touches much
// of the file: its pages are dropped from the resident set afterwards, so
// that loading a table (bayes.Table) once does not leave the whole file in
// the daemon's RSS.
func (s *Bolt) Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		defer dropResident(tx)
		c := tx.Bucket(bucketKV).Cursor()
		now := s.now()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			if len(v) < 8 || expired(int64(binary.BigEndian.Uint64(v)), now) {
				continue
			}
			if err := fn(string(k), v[8:]); err != nil {
				return err
			}
		}
		return ctx.Err()
	})
}

// Scan implements Scanner (in no particular order), under the store's lock.
func (s *Memory) Scan(ctx context.Context, prefix string, fn func(key string, val []byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, e := range s.kv {
		if !strings.HasPrefix(k, prefix) || expired(e.exp, now) {
			continue
		}
		if err := fn(k, e.val); err != nil {
			return err
		}
	}
	return ctx.Err()
}
