package store

import (
	"bytes"
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
	// Bolt. fn must not keep key or val past its return (with Bolt they
	// are the file's bytes: a table load makes no garbage per key), nor
	// call the store.
	Scan(ctx context.Context, prefix string, fn func(key, val []byte) error) error
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

func (f flushedScanner) Scan(ctx context.Context, prefix string, fn func(key, val []byte) error) error {
	if err := f.b.Flush(ctx); err != nil {
		return err
	}
	return f.sc.Scan(ctx, prefix, fn)
}

// scanTrimKeys: a Scan drops the file's pages from the resident set every
// this many keys (a few MB of pages).
const scanTrimKeys = 1 << 15

// Scan implements Scanner, in one read transaction. A scan touches much
// of the file: its pages are dropped from the resident set afterwards, so
// that loading a table (bayes.Table) once does not leave the whole file in
// the daemon's RSS.
func (s *Bolt) Scan(ctx context.Context, prefix string, fn func(key, val []byte) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		defer dropResident(tx)
		c := tx.Bucket(bucketKV).Cursor()
		now := s.now()
		p := []byte(prefix)
		n := 0
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if n++; n%scanTrimKeys == 0 {
				dropResident(tx) // keep the peak low too, not only the end
			}
			if len(v) < 8 || expired(int64(binary.BigEndian.Uint64(v)), now) {
				continue
			}
			if err := fn(k, v[8:]); err != nil {
				return err
			}
		}
		return ctx.Err()
	})
}

// Scan implements Scanner (in no particular order), under the store's lock.
func (s *Memory) Scan(ctx context.Context, prefix string, fn func(key, val []byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, e := range s.kv {
		if !strings.HasPrefix(k, prefix) || expired(e.exp, now) {
			continue
		}
		if err := fn([]byte(k), e.val); err != nil {
			return err
		}
	}
	return ctx.Err()
}
