package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/store/storetest"
)

func TestBehindBoltContract(t *testing.T) {
	dir := t.TempDir()
	storetest.Run(t, func(t *testing.T) store.Store {
		s := store.NewBehind(store.NewBolt(filepath.Join(dir, "state.db"), time.Second), store.BehindOptions{Interval: 5 * time.Millisecond, Size: 50, OnFull: store.OnFullBlock})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// gated is a Memory whose SetBatch waits for the gate and counts batches.
type gated struct {
	*store.Memory
	gate    chan struct{} // nil: no wait
	fail    error
	mu      sync.Mutex
	batches [][]store.Entry
}

func (g *gated) SetBatch(ctx context.Context, es []store.Entry) error {
	if g.gate != nil {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.mu.Lock()
	g.batches = append(g.batches, append([]store.Entry(nil), es...))
	g.mu.Unlock()
	if g.fail != nil {
		return g.fail
	}
	for _, e := range es {
		if err := g.Memory.Set(ctx, e.Key, e.Val, e.TTL); err != nil {
			return err
		}
	}
	return nil
}

func (g *gated) nBatches() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.batches)
}

// The ticker never fires in these tests: commits happen on Flush, on a
// full batch or on Close.
const never = time.Hour

func TestBehindBatchesAndReadsQueued(t *testing.T) {
	ctx := context.Background()
	in := &gated{Memory: store.NewMemory()}
	b := store.NewBehind(in, store.BehindOptions{Interval: never, Size: 100})
	defer b.Close()
	for i := range 10 {
		if err := b.Set(ctx, fmt.Sprint("k", i), []byte(fmt.Sprint("v", i)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := in.nBatches(); n != 0 {
		t.Fatalf("committed %d batches before Flush", n)
	}
	// Queued writes are visible at once; the inner store has none yet.
	if v, ok, err := b.Get(ctx, "k3"); !ok || err != nil || string(v) != "v3" {
		t.Fatalf("Get queued = %q %v %v", v, ok, err)
	}
	if _, ok, _ := in.Memory.Get(ctx, "k3"); ok {
		t.Fatal("inner store written before the batch")
	}
	vals, err := b.MGet(ctx, []string{"k1", "absent", "k9"})
	if err != nil || string(vals[0]) != "v1" || vals[1] != nil || string(vals[2]) != "v9" {
		t.Fatalf("MGet = %q %v", vals, err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := in.nBatches(); n != 1 || len(in.batches[0]) != 10 {
		t.Fatalf("want one batch of 10, got %d batches", n)
	}
	if v, ok, _ := in.Memory.Get(ctx, "k3"); !ok || string(v) != "v3" {
		t.Fatalf("inner after flush = %q %v", v, ok)
	}
	st := b.Stats()
	if st.Queued != 10 || st.Committed != 10 || st.Batches != 1 || st.Pending != 0 || st.Dropped != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestBehindFullBatchCommitsWithoutTicker(t *testing.T) {
	ctx := context.Background()
	in := &gated{Memory: store.NewMemory()}
	b := store.NewBehind(in, store.BehindOptions{Interval: never, Size: 4})
	defer b.Close()
	for i := range 4 {
		b.Set(ctx, fmt.Sprint("k", i), []byte("v"), 0)
	}
	// The fourth Set filled the batch and kicked the flusher; Flush only
	// waits for it.
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if in.nBatches() != 1 {
		t.Fatalf("batches = %d", in.nBatches())
	}
}

func TestBehindFullDrops(t *testing.T) {
	ctx := context.Background()
	in := &gated{Memory: store.NewMemory(), gate: make(chan struct{})}
	b := store.NewBehind(in, store.BehindOptions{Interval: never, Size: 3, OnFull: store.OnFullDrop})
	for i := range 3 {
		b.Set(ctx, fmt.Sprint("k", i), []byte("v"), 0)
	}
	// The queue (3) is full, and its batch is stuck in the gate.
	if err := b.Set(ctx, "k3", []byte("v"), 0); err != nil {
		t.Fatalf("drop must not fail the caller: %v", err)
	}
	if st := b.Stats(); st.Dropped != 1 || st.Pending != 3 {
		t.Fatalf("stats = %+v", st)
	}
	if _, ok, _ := b.Get(ctx, "k3"); ok {
		t.Fatal("dropped entry readable")
	}
	close(in.gate)
	b.Close()
	if st := b.Stats(); st.Committed != 3 || st.Pending != 0 {
		t.Fatalf("after close: %+v", st)
	}
}

func TestBehindFullBlocks(t *testing.T) {
	ctx := context.Background()
	in := &gated{Memory: store.NewMemory(), gate: make(chan struct{})}
	b := store.NewBehind(in, store.BehindOptions{Interval: never, Size: 2, OnFull: store.OnFullBlock})
	b.Set(ctx, "a", []byte("1"), 0)
	b.Set(ctx, "b", []byte("2"), 0)
	// Full: a Set with a context that ends returns its error.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- b.Set(cctx, "c", []byte("3"), 0) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked Set with cancelled ctx = %v", err)
	}
	// A Set that waits goes through once the batch commits.
	go func() { errc <- b.Set(ctx, "d", []byte("4"), 0) }()
	close(in.gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	b.Close()
	if v, ok, _ := in.Memory.Get(ctx, "d"); !ok || string(v) != "4" {
		t.Fatalf("blocked entry not committed at close: %q %v", v, ok)
	}
	if st := b.Stats(); st.Dropped != 0 || st.Committed != 3 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestBehindSyncOpsSeeQueuedSet(t *testing.T) {
	ctx := context.Background()
	in := &gated{Memory: store.NewMemory()}
	b := store.NewBehind(in, store.BehindOptions{Interval: never, Size: 100})
	defer b.Close()
	b.Set(ctx, "n", []byte("41"), 0)
	b.Set(ctx, "x", []byte("v"), 0)
	// SetNX of a queued key must see it: the queue commits first.
	if ok, err := b.SetNX(ctx, "x", []byte("w"), 0); ok || err != nil {
		t.Fatalf("SetNX over queued key = %v %v", ok, err)
	}
	if v, err := b.Incr(ctx, "n", 1, 0); v != 42 || err != nil {
		t.Fatalf("Incr over queued key = %d %v", v, err)
	}
	b.Set(ctx, "y", []byte("v"), 0)
	if err := b.Delete(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get(ctx, "y"); ok {
		t.Fatal("queued key survives Delete")
	}
	// Take never waits for the queue and stays exact.
	w := []store.Window{{Key: "rl", Limit: 1, Period: time.Hour}}
	now := time.Unix(1e9, 0)
	if i, _ := b.Take(ctx, w, now); i != -1 {
		t.Fatal("first Take refused")
	}
	if i, _ := b.Take(ctx, w, now); i != 0 {
		t.Fatal("second Take admitted")
	}
}

func TestBehindFailedBatchCounted(t *testing.T) {
	ctx := context.Background()
	in := &gated{Memory: store.NewMemory(), fail: errors.New("disk full")}
	b := store.NewBehind(in, store.BehindOptions{Interval: never, Size: 10})
	defer b.Close()
	b.Set(ctx, "a", []byte("1"), 0)
	b.Set(ctx, "b", []byte("1"), 0)
	b.Flush(ctx)
	if st := b.Stats(); st.Failed != 2 || st.Committed != 0 || st.Pending != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if _, ok, _ := b.Get(ctx, "a"); ok {
		t.Fatal("lost entry still readable from the queue")
	}
}

func TestBehindClosedRefusesAndNoGoroutineBeforeSet(t *testing.T) {
	b := store.NewBehind(store.NewMemory(), store.BehindOptions{})
	// Close without any Set: no flusher was started, nothing to wait for.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(context.Background(), "a", nil, 0); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Set after Close = %v", err)
	}
}
