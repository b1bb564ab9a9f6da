package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/store"
	"github.com/mailwarden/mailwarden/policy/store/storetest"
	"github.com/mailwarden/mailwarden/test/harness"
)

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}

func TestBoltContract(t *testing.T) {
	dir := t.TempDir()
	storetest.Run(t, func(t *testing.T) store.Store {
		s := store.NewBolt(filepath.Join(dir, "state.db"), time.Second)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestRedisContract runs the suite against a real redis-server on
// 127.0.0.1 (skipped locally without one, fails in CI).
func TestRedisContract(t *testing.T) {
	addr := harness.StartRedis(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.NewRedis("redis://"+addr+"/0", "test:", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestRedisUnreachable(t *testing.T) {
	s, err := store.NewRedis("redis://127.0.0.1:1/0", "", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Incr(context.Background(), "x", 1, 0)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Incr on a closed port: %v, want ErrUnavailable", err)
	}
	if _, err := s.Take(context.Background(), []store.Window{{Key: "k", Limit: 1, Period: time.Minute}}, time.Now()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Take on a closed port: %v, want ErrUnavailable", err)
	}
}

// Two handles on one path in one process share the file (a reload opens
// the new pipeline's store while the old one is still open).
func TestBoltSharedWithinProcess(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.db")
	a := store.NewBolt(p, 200*time.Millisecond)
	b := store.NewBolt(p, 200*time.Millisecond)
	ctx := context.Background()
	if err := a.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.Get(ctx, "k"); !ok || err != nil || string(v) != "v" {
		t.Fatalf("second handle: %q %v %v", v, ok, err)
	}
	a.Close()
	if _, _, err := b.Get(ctx, "k"); err != nil {
		t.Fatalf("closing one handle closed the file: %v", err)
	}
	b.Close()
	if _, _, err := b.Get(ctx, "k"); err == nil {
		t.Fatal("closed store still answers")
	}
}

func TestBoltUnopenable(t *testing.T) {
	// The state directory cannot be created (a file stands in its way;
	// permissions would not stop root, which the store runs as in CI).
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := store.NewBolt(filepath.Join(blocker, "sub", "s.db"), 100*time.Millisecond)
	defer s.Close()
	_, err := s.Incr(context.Background(), "k", 1, 0)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("unopenable file: %v, want ErrUnavailable", err)
	}
}

func TestBoltSweep(t *testing.T) {
	s := store.NewBolt(filepath.Join(t.TempDir(), "s.db"), time.Second)
	defer s.Close()
	now := time.Unix(1_700_000_000, 0)
	s.Now = func() time.Time { return now }
	ctx := context.Background()
	s.Set(ctx, "old", []byte("x"), time.Minute)
	s.Set(ctx, "keep", []byte("x"), 0)
	now = now.Add(2 * time.Minute)
	n, err := s.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d %v, want 1", n, err)
	}
	if _, ok, _ := s.Get(ctx, "keep"); !ok {
		t.Fatal("sweep removed a live key")
	}
}

// TestValidateStartsNoGoroutine: a reload validates the [store] section;
// with the Redis backend that built a go-redis client and never closed it,
// leaking its goroutines on every reload (issue 11.4).
func TestValidateStartsNoGoroutine(t *testing.T) {
	c := store.Default()
	c.Backend = store.BackendRedis
	c.RedisURL = "redis://127.0.0.1:1/0"
	before := runtime.NumGoroutine()
	for range 200 {
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("200 validations: %d goroutines, %d before", after, before)
	}
}

// TestRedisURLErrorRedacted: a bad URL is reported without its password.
func TestRedisURLErrorRedacted(t *testing.T) {
	c := store.Default()
	c.Backend = store.BackendRedis
	c.RedisURL = "redis://:hunter2@127.0.0.1:notaport/0"
	err := c.Validate()
	if err == nil {
		t.Fatal("a bad port was accepted")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
	if _, err := store.NewRedis(c.RedisURL, "", 0); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("NewRedis: %v", err)
	}
}
