package bayes

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/store"
)

// countingStore counts the reads that reach the state store.
type countingStore struct {
	*store.Memory
	mgets atomic.Int64
}

func (c *countingStore) MGet(ctx context.Context, keys []string) ([][]byte, error) {
	c.mgets.Add(1)
	return c.Memory.MGet(ctx, keys)
}

func newTestTable(t *testing.T, max int) (*Table, *countingStore) {
	st := &countingStore{Memory: store.NewMemory()}
	return NewTable(&Store{S: st}, st.Memory, "", max, nil), st
}

// The TokenStore contract, learning before and after the load.
func TestTableContract(t *testing.T) {
	tb, _ := newTestTable(t, 0)
	if err := tb.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	testStore(t, tb)
}

func TestTableWarmReadsNoStore(t *testing.T) {
	ctx := context.Background()
	tb, st := newTestTable(t, 0)
	// Learned before the table exists (e.g. by `mailwarden learn`).
	pre := &Store{S: st.Memory}
	Learn(ctx, pre, "s1", []string{"cheap", "pills"}, ClassSpam, false)
	Learn(ctx, pre, "h1", []string{"agenda", "pills"}, ClassHam, false)
	if err := tb.Load(ctx); err != nil || !tb.Warm() || tb.Len() != 3 {
		t.Fatalf("load: %v warm=%v len=%d", err, tb.Warm(), tb.Len())
	}
	before := st.mgets.Load()
	c, total, err := tb.Counts(ctx, []string{"pills", "cheap", "never-seen"})
	if err != nil || total != (Count{Spam: 1, Ham: 1}) || c[0] != (Count{1, 1}) || c[1] != (Count{Spam: 1}) || c[2] != (Count{}) {
		t.Fatalf("counts %v total %v err %v", c, total, err)
	}
	if n := st.mgets.Load() - before; n != 0 {
		t.Fatalf("warm Counts read the store %d times", n)
	}
	// Learning through the table reaches the store and the table.
	Learn(ctx, tb, "s2", []string{"cheap", "new"}, ClassSpam, false)
	want, wantTotal, _ := pre.Counts(ctx, []string{"cheap", "new", "pills"})
	got, gotTotal, _ := tb.Counts(ctx, []string{"cheap", "new", "pills"})
	if fmt.Sprint(got, gotTotal) != fmt.Sprint(want, wantTotal) || got[0] != (Count{Spam: 2}) {
		t.Fatalf("after learning: table %v %v, store %v %v", got, gotTotal, want, wantTotal)
	}
	// Forgetting to zero removes the token.
	Learn(ctx, tb, "s2", []string{"cheap", "new"}, "", true)
	if tb.Len() != 3 {
		t.Fatalf("forgotten token kept: len %d", tb.Len())
	}
}

func TestTableColdUsesFallbackAndLoadsOnce(t *testing.T) {
	ctx := context.Background()
	tb, st := newTestTable(t, 0)
	Learn(ctx, &Store{S: st.Memory}, "s1", []string{"cheap"}, ClassSpam, false)
	// The first Counts answers from the store and starts the load.
	c, total, err := tb.Counts(ctx, []string{"cheap"})
	if err != nil || c[0] != (Count{Spam: 1}) || total.Spam != 1 || st.mgets.Load() != 1 {
		t.Fatalf("cold counts %v %v %v (mgets %d)", c, total, err, st.mgets.Load())
	}
	if err := tb.Load(ctx); err != nil || !tb.Warm() {
		t.Fatalf("load: %v", err)
	}
}

// The Cache in front of the store served the reads of the load; once the
// table answers, it keeps nothing, and learning still reaches the store.
func TestTableWarmEmptiesFallbackCache(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	Learn(ctx, &Store{S: st}, "s1", []string{"cheap", "pills"}, ClassSpam, false)
	cache := NewCache(&Store{S: st}, time.Hour, 1000)
	tb := NewTable(cache, st, "", 0, nil)
	if c, _, err := tb.Counts(ctx, []string{"cheap", "pills"}); err != nil || c[0] != (Count{Spam: 1}) {
		t.Fatalf("cold counts %v %v", c, err)
	}
	if err := tb.Load(ctx); err != nil || !tb.Warm() {
		t.Fatalf("load: %v", err)
	}
	cache.mu.Lock()
	n := len(cache.m)
	cache.mu.Unlock()
	if n != 0 {
		t.Fatalf("cache keeps %d entries after the table is warm", n)
	}
	Learn(ctx, tb, "s2", []string{"cheap"}, ClassSpam, false)
	if c, total, _ := (&Store{S: st}).Counts(ctx, []string{"cheap"}); c[0] != (Count{Spam: 2}) || total.Spam != 2 {
		t.Fatalf("store after learning: %v %v", c, total)
	}
}

func TestTableTooBigStaysOnStore(t *testing.T) {
	ctx := context.Background()
	tb, st := newTestTable(t, 2)
	Learn(ctx, &Store{S: st.Memory}, "s1", []string{"a", "b", "c"}, ClassSpam, false)
	if err := tb.Load(ctx); !errors.Is(err, ErrTableTooBig) || tb.Warm() || tb.Len() != 0 {
		t.Fatalf("load = %v warm=%v len=%d", err, tb.Warm(), tb.Len())
	}
	c, _, err := tb.Counts(ctx, []string{"c"})
	if err != nil || c[0] != (Count{Spam: 1}) {
		t.Fatalf("fallback counts %v %v", c, err)
	}
	// And it does not try again on every message.
	tb.Counts(ctx, []string{"c"})
	if tb.Warm() {
		t.Fatal("warm after a refused load")
	}
}

// BenchmarkTableMemory reports the heap bytes per token of a loaded table
// (the figure in Table's doc comment).
func BenchmarkTableMemory(b *testing.B) {
	const n = 500000
	ctx := context.Background()
	mem := store.NewMemory()
	for i := range n {
		mem.Set(ctx, fmt.Sprintf("bayes:s:tok%d", i), []byte("3"), 0)
	}
	for range b.N {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		tb := NewTable(&Store{S: mem}, mem, "", 0, nil)
		if err := tb.Load(ctx); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "B/token")
		runtime.KeepAlive(tb)
	}
}

// BenchmarkTableCounts is one message's lookups (500 tokens) once warm.
func BenchmarkTableCounts(b *testing.B) {
	ctx := context.Background()
	mem := store.NewMemory()
	toks := make([]string, 500)
	for i := range toks {
		toks[i] = fmt.Sprintf("tok%d", i)
		mem.Set(ctx, "bayes:s:"+toks[i], []byte("3"), 0)
	}
	tb := NewTable(&Store{S: mem}, mem, "", 0, nil)
	tb.Load(ctx)
	b.ReportAllocs()
	for b.Loop() {
		tb.Counts(ctx, toks)
	}
}
