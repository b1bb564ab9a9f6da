package rua

import (
	"context"
	"fmt"
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
	if d == nil || d.Messages() != 2 || len(d.Rows) != 1 {
		t.Fatalf("recorded %+v", d)
	}
	if c.Stats().Recorded.Load() != 2 {
		t.Errorf("stats recorded = %d", c.Stats().Recorded.Load())
	}
}

func TestRecordBatchGroupsRows(t *testing.T) {
	c, _ := newCollector(t, day1)
	c.MaxRows = 2
	var batch []Observation
	for i := 0; i < 10; i++ {
		batch = append(batch, obs(fmt.Sprintf("192.0.2.%d", i%3+1), day1))
	}
	nr := obs("192.0.2.1", day1)
	nr.Policy.RUA = nil
	batch = append(batch, nr)
	if err := c.RecordBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	d, _ := c.Load(context.Background(), day1, "example.com")
	// 192.0.2.1 ×4, .2 ×3, .3 ×3 beyond the cap of 2 rows.
	if len(d.Rows) != 2 || d.Rows[0].Count != 4 || d.Rows[1].Count != 3 || d.NotItemised != 3 {
		t.Fatalf("rows %+v, not itemised %d", d.Rows, d.NotItemised)
	}
	st := c.Stats()
	if st.Recorded.Load() != 7 || st.Capped.Load() != 3 || st.Skipped.Load() != 1 {
		t.Errorf("stats recorded %d capped %d skipped %d", st.Recorded.Load(), st.Capped.Load(), st.Skipped.Load())
	}
}
