package filter

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
)

// spool collects a message body: in memory up to a threshold, then in a
// temp file. It never truncates: past max it stops keeping data and
// reports oversize, so the verdict can say so.
type spool struct {
	dir      string
	memLimit int64
	max      int64 // whole message, header included
	base     int64 // header bytes already counted against max

	// bud is the memory shared by all bodies in flight (budMax bytes, 0:
	// no bound); held is what this spool took of it.
	bud    *budget
	budMax int64
	held   int64

	buf      bytes.Buffer
	file     *os.File
	size     int64 // bytes received
	oversize bool
}

// budget counts body bytes held in memory across all transactions.
type budget struct{ used atomic.Int64 }

// take reserves n bytes if that stays within max (0: no bound).
func (b *budget) take(n, max int64) bool {
	if b == nil {
		return true
	}
	if b.used.Add(n) > max && max > 0 {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *budget) give(n int64) {
	if b != nil && n != 0 {
		b.used.Add(-n)
	}
}

// Used is the body bytes held in memory now.
func (b *budget) Used() int64 { return b.used.Load() }

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
	if s.file == nil && (int64(s.buf.Len()+len(p)) > s.memLimit || !s.bud.take(int64(len(p)), s.budMax)) {
		s.bud.give(s.held)
		s.held = 0
		f, err := createSpoolFile(s.dir)
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
	s.held += int64(len(p))
	s.buf.Write(p)
	return nil
}

// body hands the collected body over as a message.Body. The spool is empty
// afterwards; the body owns the file.
func (s *spool) body() *spoolBody {
	b := &spoolBody{mem: s.buf.Bytes(), file: s.file, bud: s.bud, held: s.held}
	s.held = 0
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
	s.bud.give(s.held)
	s.held = 0
	if s.file != nil {
		name := s.file.Name()
		s.file.Close()
		os.Remove(name)
		s.file = nil
	}
}

// spoolBody implements message.Body over memory or a spool file. A check
// abandoned at its deadline may still read it after the message is over
// and Close ran; the lock keeps that a clean error instead of a data race.
type spoolBody struct {
	mu   sync.RWMutex
	mem  []byte
	file *os.File
	size int64
	bud  *budget
	held int64
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
	b.bud.give(b.held)
	b.held = 0
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

// spoolPattern names our spool files; RemoveSpoolLeftovers relies on it.
const spoolPattern = "mailwarden-*.body"

// createSpoolFile makes a spool file and holds an exclusive flock(2) on it
// for as long as it is open, so that RemoveSpoolLeftovers can tell a live
// one (another instance sharing temp_dir) from a crash's leftover.
func createSpoolFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, spoolPattern)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("filter: spool: lock: %w", err)
	}
	return f, nil
}

// RemoveSpoolLeftovers removes our spool files left in dir ("" is the
// system temp dir) by a process that died without cleaning up (kill -9,
// power loss). Only regular files named mailwarden-*.body that no process
// holds locked are removed; it returns their names.
func RemoveSpoolLeftovers(dir string) ([]string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	names, err := filepath.Glob(filepath.Join(dir, spoolPattern))
	if err != nil {
		return nil, fmt.Errorf("filter: spool leftovers: %w", err)
	}
	var removed []string
	var errs []error
	for _, name := range names {
		fi, err := os.Lstat(name)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // live: another instance is using it
			continue
		}
		if err := os.Remove(name); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, name)
		}
		f.Close()
	}
	return removed, errors.Join(errs...)
}
