package bayes

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestExpireBoundsStore(t *testing.T) {
	ctx := context.Background()
	mem := NewMemory()
	clock := time.Unix(1_000_000, 0)
	e := NewExpiring(mem, func() time.Time { return clock })
	// 100 messages of 10 tokens each, one an hour; the first 40 messages'
	// tokens are never seen again.
	for i := range 100 {
		var toks []string
		for j := range 10 {
			toks = append(toks, fmt.Sprintf("t%d-%d", i, j))
		}
		if _, err := Learn(ctx, e, fmt.Sprint(i), toks, ClassSpam, false); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Hour)
	}
	// Message 0's tokens are read again now: recently seen.
	e.Counts(ctx, []string{"t0-0", "t0-1"})
	n, err := e.Expire(ctx, clock, 800, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 400 || mem.Len() != 600 || e.Len() != 600 {
		t.Fatalf("forgot %d, store %d, tracked %d; want 400, 600, 600", n, mem.Len(), e.Len())
	}
	c, total, _ := mem.Counts(ctx, []string{"t0-0", "t0-2", "t1-0", "t99-9"})
	if c[0].Spam != 1 || c[1].Spam != 0 || c[2].Spam != 0 || c[3].Spam != 1 {
		t.Errorf("kept the wrong tokens: %+v", c)
	}
	if total.Spam != 100 {
		t.Errorf("message totals changed: %+v", total)
	}
	// Under the bound: nothing happens.
	if n, _ := e.Expire(ctx, clock, 800, 0); n != 0 {
		t.Errorf("expired %d under the bound", n)
	}
	// minAge protects recent tokens even above the bound.
	if n, _ := e.Expire(ctx, clock, 10, 1000*time.Hour); n != 0 {
		t.Errorf("expired %d tokens younger than minAge", n)
	}
}
