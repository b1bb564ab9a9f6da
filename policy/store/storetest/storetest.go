// Package storetest is the contract every store.Store implementation must
// pass. The same suite runs against the memory, Bolt and Redis stores.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/store"
)

// Run runs the contract suite. open returns a fresh (or shared) store; keys
// are unique per run, so a shared server may be reused.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	var b [6]byte
	rand.Read(b[:])
	ns := "contract-" + hex.EncodeToString(b[:]) + ":"
	key := func(t *testing.T, k string) string { return ns + t.Name() + ":" + k }
	ctx := context.Background()

	t.Run("GetSetDelete", func(t *testing.T) {
		s := open(t)
		if _, ok, err := s.Get(ctx, key(t, "a")); ok || err != nil {
			t.Fatalf("absent key: ok=%v err=%v", ok, err)
		}
		if err := s.Set(ctx, key(t, "a"), []byte("v1\x00\xff"), 0); err != nil {
			t.Fatal(err)
		}
		v, ok, err := s.Get(ctx, key(t, "a"))
		if !ok || err != nil || string(v) != "v1\x00\xff" {
			t.Fatalf("Get = %q %v %v", v, ok, err)
		}
		if err := s.Set(ctx, key(t, "a"), []byte("v2"), 0); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := s.Get(ctx, key(t, "a")); string(v) != "v2" {
			t.Fatalf("overwrite: got %q", v)
		}
		if err := s.Delete(ctx, key(t, "a"), key(t, "never")); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Get(ctx, key(t, "a")); ok {
			t.Fatal("deleted key still present")
		}
	})

	t.Run("TTL", func(t *testing.T) {
		s := open(t)
		if err := s.Set(ctx, key(t, "short"), []byte("x"), 150*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, key(t, "forever"), []byte("y"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Incr(ctx, key(t, "ctr"), 1, 150*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Get(ctx, key(t, "short")); !ok {
			t.Fatal("expired too early")
		}
		time.Sleep(400 * time.Millisecond)
		if _, ok, _ := s.Get(ctx, key(t, "short")); ok {
			t.Fatal("value outlived its TTL")
		}
		if _, ok, _ := s.Get(ctx, key(t, "forever")); !ok {
			t.Fatal("ttl 0 value expired")
		}
		if n, _ := s.Incr(ctx, key(t, "ctr"), 1, 0); n != 1 {
			t.Fatalf("counter outlived its TTL: Incr gave %d, want 1", n)
		}
		// SetNX succeeds again once the old value expired.
		if ok, err := s.SetNX(ctx, key(t, "nx"), []byte("1"), 150*time.Millisecond); !ok || err != nil {
			t.Fatalf("SetNX on absent key: %v %v", ok, err)
		}
		if ok, _ := s.SetNX(ctx, key(t, "nx"), []byte("2"), time.Hour); ok {
			t.Fatal("SetNX overwrote a live key")
		}
		time.Sleep(400 * time.Millisecond)
		if ok, _ := s.SetNX(ctx, key(t, "nx"), []byte("3"), time.Hour); !ok {
			t.Fatal("SetNX refused after expiry")
		}
		if v, _, _ := s.Get(ctx, key(t, "nx")); string(v) != "3" {
			t.Fatalf("after SetNX: %q", v)
		}
	})

	t.Run("IncrKeepsExpiry", func(t *testing.T) {
		s := open(t)
		// The TTL is set when the counter is created; later increments
		// with a longer TTL do not extend it (a fixed window).
		if n, err := s.Incr(ctx, key(t, "c"), 5, 300*time.Millisecond); n != 5 || err != nil {
			t.Fatalf("Incr = %d %v", n, err)
		}
		time.Sleep(100 * time.Millisecond)
		if n, _ := s.Incr(ctx, key(t, "c"), -2, time.Hour); n != 3 {
			t.Fatalf("Incr = %d, want 3", n)
		}
		if v, _, _ := s.Get(ctx, key(t, "c")); string(v) != "3" {
			t.Fatalf("counter reads as %q, want \"3\"", v)
		}
		time.Sleep(400 * time.Millisecond)
		if n, _ := s.Incr(ctx, key(t, "c"), 1, time.Hour); n != 1 {
			t.Fatalf("counter expiry was extended: got %d, want 1", n)
		}
	})

	t.Run("MGetMIncr", func(t *testing.T) {
		s := open(t)
		got, err := s.MIncr(ctx, []store.Inc{{Key: key(t, "a"), Delta: 2}, {Key: key(t, "b"), Delta: 3, TTL: time.Hour}, {Key: key(t, "a"), Delta: 1}})
		if err != nil || fmt.Sprint(got) != "[2 3 3]" {
			t.Fatalf("MIncr = %v %v, want [2 3 3]", got, err)
		}
		vs, err := s.MGet(ctx, []string{key(t, "b"), key(t, "missing"), key(t, "a")})
		if err != nil || len(vs) != 3 || string(vs[0]) != "3" || vs[1] != nil || string(vs[2]) != "3" {
			t.Fatalf("MGet = %q %v", vs, err)
		}
		if vs, err := s.MGet(ctx, nil); err != nil || len(vs) != 0 {
			t.Fatalf("empty MGet = %v %v", vs, err)
		}
	})

	t.Run("ConcurrentIncr", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					if _, err := s.Incr(ctx, key(t, "n"), 1, time.Hour); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if v, _, _ := s.Get(ctx, key(t, "n")); string(v) != "500" {
			t.Fatalf("500 concurrent increments gave %q", v)
		}
	})

	t.Run("TakeSlidingWindow", func(t *testing.T) {
		s := open(t)
		t0 := time.Now().Truncate(time.Second)
		w := []store.Window{{Key: key(t, "w"), Limit: 3, Period: time.Hour}}
		take := func(at time.Duration) bool {
			i, err := s.Take(ctx, w, t0.Add(at))
			if err != nil {
				t.Fatal(err)
			}
			return i < 0
		}
		// Three at 0, 10m, 59m: full until the first leaves at 60m.
		for _, at := range []time.Duration{0, 10 * time.Minute, 59 * time.Minute} {
			if !take(at) {
				t.Fatalf("refused at %v", at)
			}
		}
		if take(59*time.Minute + 59*time.Second) {
			t.Fatal("4th event within the hour admitted")
		}
		// An event exactly one period later: the first one left the window.
		if !take(60 * time.Minute) {
			t.Fatal("refused after the oldest event left the window")
		}
		if take(61 * time.Minute) {
			t.Fatal("admitted while 10m, 59m, 60m are in the window")
		}
		if !take(70 * time.Minute) {
			t.Fatal("refused after the 10m event left the window")
		}
	})

	t.Run("DryRunLeavesNoTrace", func(t *testing.T) {
		s := open(t)
		if _, ok := s.(store.Peeker); !ok {
			t.Fatalf("%T does not implement store.Peeker", s)
		}
		d := store.DryRun(s)
		t0 := time.Now().Truncate(time.Second)
		w := []store.Window{{Key: key(t, "w"), Limit: 2, Period: time.Hour}}
		if i, err := s.Take(ctx, w, t0); i != -1 || err != nil {
			t.Fatalf("first take: %d %v", i, err)
		}
		// One slot left: the dry run admits, as often as asked, and
		// consumes nothing.
		for range 3 {
			if i, err := d.Take(ctx, w, t0.Add(time.Minute)); i != -1 || err != nil {
				t.Fatalf("dry take with a slot left: %d %v", i, err)
			}
		}
		if i, err := s.Take(ctx, w, t0.Add(2*time.Minute)); i != -1 || err != nil {
			t.Fatalf("the dry runs consumed the last slot: %d %v", i, err)
		}
		if i, err := d.Take(ctx, w, t0.Add(3*time.Minute)); i != 0 || err != nil {
			t.Fatalf("dry take of a full window: %d %v, want 0", i, err)
		}
		// An hour after the first event, a slot is free again.
		if i, err := d.Take(ctx, w, t0.Add(time.Hour)); i != -1 || err != nil {
			t.Fatalf("dry take after the first event left: %d %v", i, err)
		}
		k := key(t, "nx")
		if ok, err := d.SetNX(ctx, k, []byte("v"), time.Hour); !ok || err != nil {
			t.Fatalf("dry SetNX of an absent key: %v %v", ok, err)
		}
		if err := d.Set(ctx, key(t, "set"), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{k, key(t, "set")} {
			if _, ok, err := s.Get(ctx, k); ok || err != nil {
				t.Fatalf("dry run wrote %s: %v %v", k, ok, err)
			}
		}
		s.Set(ctx, k, []byte("v"), time.Hour)
		if ok, err := d.SetNX(ctx, k, []byte("w"), time.Hour); ok || err != nil {
			t.Fatalf("dry SetNX of a present key: %v %v", ok, err)
		}
		if v, ok, _ := d.Get(ctx, k); !ok || string(v) != "v" {
			t.Fatalf("dry Get: %q %v", v, ok)
		}
		d.Delete(ctx, k)
		if _, ok, _ := s.Get(ctx, k); !ok {
			t.Fatal("dry Delete deleted")
		}
		if _, err := d.Incr(ctx, k, 1, 0); !errors.Is(err, store.ErrDryRun) {
			t.Fatalf("dry Incr: %v", err)
		}
	})

	t.Run("TakeAllOrNothing", func(t *testing.T) {
		s := open(t)
		now := time.Now()
		a := store.Window{Key: key(t, "a"), Limit: 10, Period: time.Hour}
		b := store.Window{Key: key(t, "b"), Limit: 1, Period: time.Hour}
		if i, err := s.Take(ctx, []store.Window{a, b}, now); i != -1 || err != nil {
			t.Fatalf("first Take = %d %v", i, err)
		}
		for range 5 {
			if i, _ := s.Take(ctx, []store.Window{a, b}, now); i != 1 {
				t.Fatalf("Take = %d, want 1 (window b full)", i)
			}
		}
		// The refused requests consumed nothing in a: 9 more fit.
		a.Cost = 9
		if i, _ := s.Take(ctx, []store.Window{a}, now); i != -1 {
			t.Fatal("refused Takes consumed window a")
		}
		a.Cost = 1
		if i, _ := s.Take(ctx, []store.Window{a}, now); i != 0 {
			t.Fatal("window a over its limit")
		}
	})

	t.Run("TakeConcurrentExact", func(t *testing.T) {
		s := open(t)
		const n, limit = 200, 7
		var admitted atomic.Int32
		var wg sync.WaitGroup
		now := time.Now()
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				i, err := s.Take(ctx, []store.Window{{Key: key(t, "hot"), Limit: limit, Period: time.Minute}}, now)
				if err != nil {
					t.Error(err)
				}
				if i < 0 {
					admitted.Add(1)
				}
			}()
		}
		wg.Wait()
		if got := admitted.Load(); got != limit {
			t.Fatalf("%d concurrent Takes admitted %d, want exactly %d", n, got, limit)
		}
	})
}
