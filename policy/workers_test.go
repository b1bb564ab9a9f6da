package policy

import (
	"sync"
	"testing"
)

// TestGoWorkerNeverWaits: tasks that block until all have started still
// all run (goWorker starts a worker when none is free, as `go` would).
func TestGoWorkerNeverWaits(t *testing.T) {
	const n = 50
	var started, release sync.WaitGroup
	started.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	done.Add(n)
	for range n {
		goWorker(func() {
			defer done.Done()
			started.Done()
			release.Wait()
		})
	}
	started.Wait() // deadlocks (test timeout) if a task waited for another
	release.Done()
	done.Wait()
}

// TestGoWorkerReuses: tasks run one after another reuse the waiting
// worker instead of starting a goroutine each.
func TestGoWorkerReuses(t *testing.T) {
	const n = 200
	before := spawned.Load()
	for i := range n {
		ch := make(chan int)
		goWorker(func() { ch <- i })
		if got := <-ch; got != i {
			t.Fatalf("task %d ran as %d", i, got)
		}
	}
	s := spawned.Load() - before
	t.Logf("%d workers for %d tasks", s, n)
	if s > n/2 {
		t.Errorf("%d workers started for %d sequential tasks, want most tasks on a waiting worker", s, n)
	}
}
