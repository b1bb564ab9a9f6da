package store

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Entry is one Set of a batch.
type Entry struct {
	Key string
	Val []byte
	TTL time.Duration
}

// Batcher is implemented by stores that can commit many Sets at once: Bolt
// writes them in one transaction (one fsync), Redis in one pipeline.
type Batcher interface {
	SetBatch(ctx context.Context, es []Entry) error
}

// OnFull says what a write-behind Set does when the queue is full.
type OnFull string

const (
	// OnFullDrop drops the entry and counts it (Stats.Dropped): the
	// message path never waits for the disk.
	OnFullDrop OnFull = "drop"
	// OnFullBlock waits for the flusher (bounded by the caller's context).
	OnFullBlock OnFull = "block"
)

// BehindOptions configures NewBehind.
type BehindOptions struct {
	// Interval is the longest an entry waits before its batch commits.
	Interval time.Duration
	// Size is the largest batch, and the queue: at most Size entries are
	// not yet committed at any time (queued plus the batch in flight), so
	// a crash loses at most one batch.
	Size   int
	OnFull OnFull
	Logger *slog.Logger
}

// BehindStats are the write-behind queue's counters, for the metrics
// endpoint.
type BehindStats struct {
	Queued    uint64 // entries accepted by Set
	Committed uint64 // entries committed to the inner store
	Dropped   uint64 // entries dropped because the queue was full (OnFullDrop)
	Failed    uint64 // entries lost because their batch failed to commit
	Batches   uint64 // batches committed
	Pending   int    // entries not yet committed
}

// Behind is a Store whose Set goes through a bounded write-behind queue
// and is committed in batches: one transaction (one fsync with Bolt) per
// Interval or per Size entries, whichever comes first. Set is for records
// that observers write after the verdict (the auto-reply memory, report
// rows), where losing the last few milliseconds in a crash is acceptable.
//
// Every other method goes straight to the inner store, synchronously:
// SetNX, Incr and Take (rate limits) stay exact. A Get or MGet of a key
// still in the queue answers from the queue, so a write is visible at once
// in this process; an operation that modifies a queued key (SetNX, Delete,
// Incr, MIncr) first commits the queue, so it never races its own Set.
//
// The flusher goroutine starts with the first Set; Close commits what is
// queued and closes the inner store.
type Behind struct {
	Store
	opts  BehindOptions
	batch Batcher // nil: entries are committed one Set at a time

	mu       sync.Mutex
	space    *sync.Cond // signalled when entries are committed
	queue    []Entry
	inflight int
	pending  map[string]*Entry // key → its latest queued entry
	closed   bool
	started  bool
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	flushReq chan chan struct{}

	queued, committed, dropped, failed, batches atomic.Uint64
}

// ErrClosed is returned by Set after Close.
var ErrClosed = errors.New("store: closed")

// NewBehind wraps inner. Zero options mean 50 ms, 500 entries, drop.
func NewBehind(inner Store, opts BehindOptions) *Behind {
	if opts.Interval <= 0 {
		opts.Interval = 50 * time.Millisecond
	}
	if opts.Size <= 0 {
		opts.Size = 500
	}
	if opts.OnFull == "" {
		opts.OnFull = OnFullDrop
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Behind{
		Store:    inner,
		opts:     opts,
		queue:    make([]Entry, 0, opts.Size),
		pending:  map[string]*Entry{},
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		flushReq: make(chan chan struct{}),
	}
	b.batch, _ = inner.(Batcher)
	b.space = sync.NewCond(&b.mu)
	return b
}

// Stats returns the queue's counters.
func (b *Behind) Stats() BehindStats {
	b.mu.Lock()
	pending := len(b.queue) + b.inflight
	b.mu.Unlock()
	return BehindStats{
		Queued: b.queued.Load(), Committed: b.committed.Load(), Dropped: b.dropped.Load(),
		Failed: b.failed.Load(), Batches: b.batches.Load(), Pending: pending,
	}
}

// Set queues the entry. It returns at once unless the queue is full and
// OnFull is block.
func (b *Behind) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	e := &Entry{Key: key, Val: append([]byte(nil), val...), TTL: ttl}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if !b.started {
		b.started = true
		go b.run()
	}
	for len(b.queue)+b.inflight >= b.opts.Size {
		if b.opts.OnFull == OnFullDrop {
			b.mu.Unlock()
			b.dropped.Add(1)
			return nil
		}
		if err := b.waitSpace(ctx); err != nil {
			b.mu.Unlock()
			return err
		}
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
	}
	b.queue = append(b.queue, *e)
	b.pending[key] = &b.queue[len(b.queue)-1]
	n := len(b.queue)
	b.mu.Unlock()
	b.queued.Add(1)
	if n >= b.opts.Size {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// waitSpace waits (b.mu held) until an entry is committed or ctx ends.
func (b *Behind) waitSpace(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.space.Broadcast()
		b.mu.Unlock()
	})
	defer stop()
	b.space.Wait()
	return ctx.Err()
}

// lookup returns the queued value of key, if any (b.mu held). The
// entry's TTL counts from its commit, at most Interval after its Set.
func (b *Behind) lookup(key string) ([]byte, bool) {
	e := b.pending[key]
	if e == nil {
		return nil, false
	}
	return append([]byte(nil), e.Val...), true
}

// Get answers from the queue first.
func (b *Behind) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b.mu.Lock()
	if len(b.pending) > 0 {
		if v, found := b.lookup(key); found {
			b.mu.Unlock()
			return v, true, nil
		}
	}
	b.mu.Unlock()
	return b.Store.Get(ctx, key)
}

// MGet answers queued keys from the queue and the rest from the store.
func (b *Behind) MGet(ctx context.Context, keys []string) ([][]byte, error) {
	out, err := b.Store.MGet(ctx, keys)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if len(b.pending) > 0 {
		for i, k := range keys {
			if v, found := b.lookup(k); found {
				out[i] = v
			}
		}
	}
	b.mu.Unlock()
	return out, nil
}

// SetNX commits a queued Set of key first.
func (b *Behind) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if err := b.flushIfQueued(ctx, key); err != nil {
		return false, err
	}
	return b.Store.SetNX(ctx, key, val, ttl)
}

// Delete commits queued Sets of keys first.
func (b *Behind) Delete(ctx context.Context, keys ...string) error {
	if err := b.flushIfQueued(ctx, keys...); err != nil {
		return err
	}
	return b.Store.Delete(ctx, keys...)
}

// Incr commits a queued Set of key first.
func (b *Behind) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := b.flushIfQueued(ctx, key); err != nil {
		return 0, err
	}
	return b.Store.Incr(ctx, key, delta, ttl)
}

// MIncr commits queued Sets of its keys first.
func (b *Behind) MIncr(ctx context.Context, incs []Inc) ([]int64, error) {
	b.mu.Lock()
	queued := false
	for _, in := range incs {
		if b.pending[in.Key] != nil {
			queued = true
			break
		}
	}
	b.mu.Unlock()
	if queued {
		if err := b.Flush(ctx); err != nil {
			return nil, err
		}
	}
	return b.Store.MIncr(ctx, incs)
}

func (b *Behind) flushIfQueued(ctx context.Context, keys ...string) error {
	b.mu.Lock()
	queued := false
	for _, k := range keys {
		if b.pending[k] != nil {
			queued = true
			break
		}
	}
	b.mu.Unlock()
	if !queued {
		return nil
	}
	return b.Flush(ctx)
}

// Flush commits everything queued before it was called.
func (b *Behind) Flush(ctx context.Context) error {
	b.mu.Lock()
	running := b.started && !b.closed
	b.mu.Unlock()
	if !running {
		return nil
	}
	ack := make(chan struct{})
	select {
	case b.flushReq <- ack:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close commits the queue, stops the flusher and closes the inner store.
func (b *Behind) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	started := b.started
	b.space.Broadcast()
	b.mu.Unlock()
	if started {
		close(b.stop)
		<-b.done
	}
	return b.Store.Close()
}

func (b *Behind) run() {
	defer close(b.done)
	t := time.NewTicker(b.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.commit()
		case <-b.kick:
			b.commit()
		case ack := <-b.flushReq:
			b.commit()
			close(ack)
		case <-b.stop:
			b.commit()
			return
		}
	}
}

// commit writes the queued entries in one batch.
func (b *Behind) commit() {
	b.mu.Lock()
	batch := b.queue
	if len(batch) == 0 {
		b.mu.Unlock()
		return
	}
	// A fresh array of full capacity: pending points into the queue's
	// elements, so the queue must never be reallocated by append.
	b.queue = make([]Entry, 0, b.opts.Size)
	b.inflight = len(batch)
	b.mu.Unlock()

	// A batch that cannot commit within a few intervals is dropped (and
	// counted): the store is down, and the queue must not grow.
	ctx, cancel := context.WithTimeout(context.Background(), max(20*b.opts.Interval, 5*time.Second))
	var err error
	if b.batch != nil {
		err = b.batch.SetBatch(ctx, batch)
	} else {
		for _, e := range batch {
			if err = b.Store.Set(ctx, e.Key, e.Val, e.TTL); err != nil {
				break
			}
		}
	}
	cancel()
	if err != nil {
		b.failed.Add(uint64(len(batch)))
		b.opts.Logger.Warn("store: write-behind batch lost", "entries", len(batch), "error", err.Error())
	} else {
		b.committed.Add(uint64(len(batch)))
		b.batches.Add(1)
	}

	b.mu.Lock()
	for i := range batch {
		// Forget the key unless a later Set queued it again.
		if p := b.pending[batch[i].Key]; p == &batch[i] {
			delete(b.pending, batch[i].Key)
		}
	}
	b.inflight = 0
	b.space.Broadcast()
	b.mu.Unlock()
}

// Peek implements Peeker for a dry run through the queue: rate-limit
// windows are never queued (Take is synchronous), so the wrapped store
// answers exactly.
func (b *Behind) Peek(ctx context.Context, ws []Window, now time.Time) (int, error) {
	if p, ok := b.Store.(Peeker); ok {
		return p.Peek(ctx, ws, now)
	}
	return -1, ctx.Err()
}

// Durable returns s with every Set committed before it returns, bypassing
// the write-behind batching: for state whose loss in a crash would be
// more than a lost memory entry (the DMARC report outbox must know that
// it is about to send, or has sent, before it acts on it). Stores without
// a queue are returned as they are.
func Durable(s Store) Store {
	if b, ok := s.(*Behind); ok {
		return durable{b}
	}
	return s
}

type durable struct{ *Behind }

func (d durable) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := d.Behind.Set(ctx, key, val, ttl); err != nil {
		return err
	}
	return d.Behind.Flush(ctx)
}
