package virus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ReasonQueueTimeout is the reason code of a message that waited longer
// than queue_timeout for a free scanner; it is always tempfailed (the
// scanner is busy, not broken: the MTA retries later).
const ReasonQueueTimeout = "virus-queue-timeout"

// ErrQueueTimeout is the Finding error of a scan that never started
// because every slot of its engine stayed busy for queue_timeout.
var ErrQueueTimeout = errors.New("virus: no free scanner within queue_timeout")

// DefaultMaxScans is the limit used when the engine cannot say its own:
// clamd's default MaxThreads.
const DefaultMaxScans = 10

// ScanLimiter is implemented by engines that know how many scans they run
// at once (clamd: MaxThreads from STATS).
type ScanLimiter interface {
	MaxScans(ctx context.Context) (int, error)
}

// MaxScans implements ScanLimiter.
func (s *ClamAV) MaxScans(ctx context.Context) (int, error) { return s.client.MaxThreads(ctx) }

// Limited lets at most Max scans of one engine run at once; the others
// wait in a FIFO queue for at most Wait. Without the limit, a burst of big
// messages opens more streams than clamd has threads: clamd queues them
// while each one's deadline runs, and they time out together. With it, a
// scan's Timeout counts from when it starts, and the wait has its own
// bound (ErrQueueTimeout, reason virus-queue-timeout).
type Limited struct {
	Scanner
	// Timeout bounds one scan from its start.
	Timeout time.Duration
	// Wait bounds the wait for a slot.
	Wait time.Duration

	resolveMu sync.Mutex // held while asking the engine for its limit
	mu        sync.Mutex
	max       int // 0 until known
	active    int
	waiters   []chan struct{}

	scans, timeouts atomic.Uint64
	waitNanos       atomic.Int64

	// after is time.After; tests replace it.
	after func(time.Duration) <-chan time.Time
}

// LimitStats are a Limited engine's counters, for the metrics endpoint.
type LimitStats struct {
	Max, Active, Waiting int
	Scans                uint64        // scans started
	QueueTimeouts        uint64        // scans given up in the queue
	Waited               time.Duration // total time spent waiting
}

// NewLimited limits s to max concurrent scans; max 0 asks the engine
// (ScanLimiter) on the first scan, falling back to DefaultMaxScans.
func NewLimited(s Scanner, max int, timeout, wait time.Duration) *Limited {
	return &Limited{Scanner: s, max: max, Timeout: timeout, Wait: wait}
}

// Ping passes a health probe on to the engine, if it has one.
func (l *Limited) Ping(ctx context.Context) error {
	if p, ok := l.Scanner.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Stats returns the counters.
func (l *Limited) Stats() LimitStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LimitStats{Max: l.max, Active: l.active, Waiting: len(l.waiters),
		Scans: l.scans.Load(), QueueTimeouts: l.timeouts.Load(), Waited: time.Duration(l.waitNanos.Load())}
}

// Scan waits for a slot, then scans with Timeout from now.
func (l *Limited) Scan(ctx context.Context, open func() io.Reader, size int64) Finding {
	l.resolve(ctx)
	start := time.Now()
	if err := l.acquire(ctx); err != nil {
		l.waitNanos.Add(int64(time.Since(start)))
		if errors.Is(err, ErrQueueTimeout) {
			l.timeouts.Add(1)
		}
		return Finding{Status: StatusError, Err: err}
	}
	l.waitNanos.Add(int64(time.Since(start)))
	defer l.release()
	l.scans.Add(1)
	sctx := ctx
	if l.Timeout > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, l.Timeout)
		defer cancel()
	}
	return l.Scanner.Scan(sctx, open, size)
}

// resolve asks the engine for its limit once.
func (l *Limited) resolve(ctx context.Context) {
	l.mu.Lock()
	known := l.max > 0
	l.mu.Unlock()
	if known {
		return
	}
	l.resolveMu.Lock()
	defer l.resolveMu.Unlock()
	l.mu.Lock()
	known = l.max > 0
	l.mu.Unlock()
	if known {
		return
	}
	n := DefaultMaxScans
	if sl, ok := l.Scanner.(ScanLimiter); ok {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if m, err := sl.MaxScans(qctx); err == nil && m > 0 {
			n = m
		}
		cancel()
	}
	l.mu.Lock()
	l.max = n
	l.wake()
	l.mu.Unlock()
}

func (l *Limited) acquire(ctx context.Context) error {
	l.mu.Lock()
	if l.active < l.max && len(l.waiters) == 0 {
		l.active++
		l.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	var timeout <-chan time.Time
	switch {
	case l.after != nil:
		timeout = l.after(l.Wait)
	case l.Wait > 0:
		t := time.NewTimer(l.Wait)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-ch:
		return nil
	case <-timeout:
		err = fmt.Errorf("%w (%v, %d scans running)", ErrQueueTimeout, l.Wait, l.Stats().Active)
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, w := range l.waiters {
		if w == ch {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			return err
		}
	}
	// The slot was handed over while we gave up: pass it on.
	l.active--
	l.wake()
	return err
}

func (l *Limited) release() {
	l.mu.Lock()
	l.active--
	l.wake()
	l.mu.Unlock()
}

// wake hands free slots to the first waiters (l.mu held).
func (l *Limited) wake() {
	for l.active < l.max && len(l.waiters) > 0 {
		ch := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.active++
		close(ch)
	}
}
