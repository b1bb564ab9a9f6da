package filter

import (
	"bytes"
	"fmt"
	"os"
	"sync"
)

// spool collects a message body: in memory up to a threshold, then in a
// temp file. It never truncates: past max it stops keeping data and
// reports oversize, so the verdict can say so.
type spool struct {
	dir      string
	memLimit int64
	max      int64 // whole message, header included
	base     int64 // header bytes already counted against max

	buf      bytes.Buffer
	file     *os.File
	size     int64 // bytes received
	oversize bool
}

func (s *spool) Write(p []byte) error {
	s.size += int64(len(p))
	if s.oversize {
		return nil
	}
	if s.max > 0 && s.base+s.size > s.max {
		s.oversize = true
		s.discard()
		return nil
	}
	if s.file == nil && int64(s.buf.Len()+len(p)) > s.memLimit {
		f, err := os.CreateTemp(s.dir, "mailwarden-*.body")
		if err != nil {
			return fmt.Errorf("filter: spool: %w", err)
		}
		s.file = f
		if _, err := f.Write(s.buf.Bytes()); err != nil {
			return fmt.Errorf("filter: spool: %w", err)
		}
		s.buf = bytes.Buffer{}
	}
	if s.file != nil {
		if _, err := s.file.Write(p); err != nil {
			return fmt.Errorf("filter: spool: %w", err)
		}
		return nil
	}
	s.buf.Write(p)
	return nil
}

// body hands the collected body over as a policy.Body. The spool is empty
// afterwards; the body owns the file.
func (s *spool) body() *spoolBody {
	b := &spoolBody{mem: s.buf.Bytes(), file: s.file}
	if s.file != nil {
		b.size = s.size
	} else {
		b.size = int64(len(b.mem))
	}
	s.buf = bytes.Buffer{}
	s.file = nil
	return b
}

// discard drops what was collected and removes the temp file.
func (s *spool) discard() {
	s.buf = bytes.Buffer{}
	if s.file != nil {
		name := s.file.Name()
		s.file.Close()
		os.Remove(name)
		s.file = nil
	}
}

// spoolBody implements policy.Body over memory or a spool file. A check
// abandoned at its deadline may still read it after the message is over
// and Close ran; the lock keeps that a clean error instead of a data race.
type spoolBody struct {
	mu   sync.RWMutex
	mem  []byte
	file *os.File
	size int64
}

func (b *spoolBody) ReadAt(p []byte, off int64) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.file != nil {
		return b.file.ReadAt(p, off)
	}
	if b.mem == nil && b.size > 0 {
		return 0, os.ErrClosed
	}
	return bytes.NewReader(b.mem).ReadAt(p, off)
}

func (b *spoolBody) Size() int64 { return b.size }

// Close removes the spool file. It is safe to call more than once.
func (b *spoolBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mem = nil
	if b.file == nil {
		return nil
	}
	name := b.file.Name()
	err := b.file.Close()
	if rerr := os.Remove(name); rerr != nil && !os.IsNotExist(rerr) && err == nil {
		err = rerr
	}
	b.file = nil
	return err
}
