package policy

import (
	"sync/atomic"
	"time"
)

// Every step of every message runs on a goroutine of its own (runLevel
// runs a level's steps at once; guard abandons a step at its deadline).
// A new goroutine starts with a small stack, and the rule engine's is deep:
// growing it again for each message cost ~3 % of the daemon's CPU
// (runtime.newstack and copystack in a profile at c=8). So the goroutines
// are kept: one that has run a step waits a while for the next before it
// exits, with its stack still grown (the collector halves an idle stack
// now and then, which is cheaper than starting from nothing each time).

// workerIdle is how long a finished worker waits for another task.
const workerIdle = 10 * time.Second

// tasks is unbuffered: a send succeeds only when a worker is waiting.
var tasks = make(chan func())

// spawned counts the workers started (for tests).
var spawned atomic.Int64

// goWorker runs f on a waiting worker, or on a new one when all are
// busy, so it never waits and never bounds the concurrency (as `go f()`).
func goWorker(f func()) {
	select {
	case tasks <- f:
	default:
		spawned.Add(1)
		go worker(f)
	}
}

func worker(f func()) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		f()
		f = nil // drop what the task held while waiting
		t.Reset(workerIdle)
		select {
		case f = <-tasks:
		case <-t.C:
			return
		}
	}
}
