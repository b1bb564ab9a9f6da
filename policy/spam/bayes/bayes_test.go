package bayes

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/mailwarden/mailwarden/policy/store"
)

func TestCombine(t *testing.T) {
	cases := []struct {
		probs  []float64
		lo, hi float64
	}{
		{[]float64{0.99, 0.99, 0.98, 0.97}, 0.95, 1},
		{[]float64{0.01, 0.02, 0.01}, 0, 0.05},
		{[]float64{0.99, 0.01}, 0.4, 0.6}, // contradictory evidence: unsure
		{[]float64{0.5, 0.5}, 0.49, 0.51},
	}
	for _, c := range cases {
		if p := Combine(c.probs); p < c.lo || p > c.hi || math.IsNaN(p) {
			t.Errorf("Combine(%v) = %v, want in [%v, %v]", c.probs, p, c.lo, c.hi)
		}
	}
	// Many extreme tokens must not overflow or give NaN.
	many := make([]float64, 150)
	for i := range many {
		many[i] = 1e-6
	}
	if p := Combine(many); math.IsNaN(p) || p > 1e-6 {
		t.Errorf("150 hammy tokens: %v", p)
	}
}

func testStore(t *testing.T, s TokenStore) {
	ctx := context.Background()
	spam := []string{"cheap", "pills", "shared"}
	ham := []string{"agenda", "meeting", "shared"}
	for _, step := range []struct {
		id      string
		toks    []string
		class   Class
		forget  bool
		changed bool
	}{
		{"s1", spam, ClassSpam, false, true},
		{"s1", spam, ClassSpam, false, false}, // idempotent
		{"h1", ham, ClassHam, false, true},
		{"h2", spam, ClassHam, false, true},  // a mistake...
		{"h2", spam, ClassSpam, false, true}, // ...corrected: moved
		{"x", ham, ClassHam, true, false},    // forgetting the unknown
	} {
		ch, err := Learn(ctx, s, step.id, step.toks, step.class, step.forget)
		if err != nil || ch != step.changed {
			t.Fatalf("%+v: changed=%v err=%v", step, ch, err)
		}
	}
	c, total, err := s.Counts(ctx, []string{"cheap", "shared", "agenda", "unknown"})
	if err != nil {
		t.Fatal(err)
	}
	if total != (Count{Spam: 2, Ham: 1}) || c[0] != (Count{Spam: 2}) || c[1] != (Count{Spam: 2, Ham: 1}) || c[2] != (Count{Ham: 1}) || c[3] != (Count{}) {
		t.Fatalf("counts %v total %v", c, total)
	}
	if cl, _ := s.Seen(ctx, "h2"); cl != ClassSpam {
		t.Errorf("seen h2 = %q", cl)
	}
	if ch, err := Learn(ctx, s, "h2", spam, "", true); !ch || err != nil {
		t.Fatal("forget", ch, err)
	}
	c, total, _ = s.Counts(ctx, []string{"cheap"})
	if total != (Count{Spam: 1, Ham: 1}) || c[0] != (Count{Spam: 1}) {
		t.Errorf("after forget: %v %v", c, total)
	}
	cls := New(s, 1, 1)
	v, err := cls.Classify(ctx, []string{"cheap", "pills"})
	if err != nil || v.Prob < 0.8 {
		t.Errorf("classify spam tokens: %+v %v", v, err)
	}
	cls.MinSpam = 5
	if _, err := cls.Classify(ctx, []string{"cheap"}); err != ErrNotReady {
		t.Errorf("not ready: %v", err)
	}
}

func TestMemory(t *testing.T) { testStore(t, NewMemory()) }

func TestStoreAdapter(t *testing.T) { testStore(t, &Store{S: store.NewMemory()}) }

func TestStoreBolt(t *testing.T) {
	b := store.NewBolt(t.TempDir()+"/b.db", 0)
	defer b.Close()
	testStore(t, &Store{S: b, Prefix: "t:"})
}

func TestCache(t *testing.T) {
	inner := &Store{S: store.NewMemory()}
	now := time.Unix(1000, 0)
	c := NewCache(inner, time.Minute, 3)
	c.Now = func() time.Time { return now }
	testStore(t, NewCache(&Store{S: store.NewMemory()}, time.Minute, 2)) // the contract, with evictions
	ctx := context.Background()
	inner.Add(ctx, map[string]Count{"a": {Spam: 1}}, Count{Spam: 1})
	if n, tot, _ := c.Counts(ctx, []string{"a"}); n[0].Spam != 1 || tot.Spam != 1 {
		t.Fatal(n, tot)
	}
	// Another process learns: the cache answers the old count until TTL.
	inner.Add(ctx, map[string]Count{"a": {Spam: 1}}, Count{Spam: 1})
	if n, _, _ := c.Counts(ctx, []string{"a"}); n[0].Spam != 1 {
		t.Errorf("not cached: %v", n)
	}
	now = now.Add(2 * time.Minute)
	if n, tot, _ := c.Counts(ctx, []string{"a"}); n[0].Spam != 2 || tot.Spam != 2 {
		t.Errorf("stale after TTL: %v %v", n, tot)
	}
	// This process learns: seen at once.
	c.Add(ctx, map[string]Count{"a": {Ham: 1}}, Count{Ham: 1})
	if n, tot, _ := c.Counts(ctx, []string{"a"}); n[0] != (Count{Spam: 2, Ham: 1}) || tot.Ham != 1 {
		t.Errorf("own learning not visible: %v %v", n, tot)
	}
	// Bounded.
	c.Counts(ctx, []string{"b", "c", "d", "e"})
	if len(c.m) > 4 {
		t.Errorf("cache holds %d entries", len(c.m))
	}
}

// TestMostTellingLikeSortSlice: the order must be sort.Slice's exactly,
// ties included (Combine adds logarithms in this order, and the cut at
// MaxTokens falls among ties).
func TestMostTellingLikeSortSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 3000 {
		size := 1 + r.IntN(1200)
		levels := 1 + r.IntN(40) // few levels: many ties, on both sides of 0.5
		probs := make([]float64, size)
		for i := range probs {
			probs[i] = float64(r.IntN(levels+1)) / float64(levels)
		}
		want := slices.Clone(probs)
		sort.Slice(want, func(i, j int) bool { return math.Abs(want[i]-0.5) > math.Abs(want[j]-0.5) })
		mostTelling(probs)
		if !slices.Equal(probs, want) {
			t.Fatalf("case %d (%d probabilities): order differs from sort.Slice", n, size)
		}
	}
}
