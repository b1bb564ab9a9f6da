package rua

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

func TestQueueNeverBlocks(t *testing.T) {
	c, _ := newCollector(t, day1)
	q := NewQueue(c, 2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// No worker yet: the third observation is dropped, not waited for.
	for i := 0; i < 3; i++ {
		q.Observe(obs("192.0.2.1", day1))
	}
	if q.Dropped() != 1 {
		t.Fatalf("dropped = %d", q.Dropped())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run drains what is queued, then returns
	q.Run(ctx)
	d, _ := c.Load(context.Background(), day1, "example.com")
	if d == nil || d.Messages() != 2 {
		t.Fatalf("recorded %+v", d)
	}
}
