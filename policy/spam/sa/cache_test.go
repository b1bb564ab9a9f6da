package sa

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldBytes sums what the tables of c's automata account, for comparison
// with the budget's running total (no search may run).
func heldBytes(c *cache) int64 {
	var n int64
	for _, d := range c.dfas {
		if t := d.tab.Load(); t != nil {
			n += t.bytes
		}
	}
	for _, d := range c.mdfas {
		if t := d.tab.Load(); t != nil {
			n += t.bytes
		}
	}
	return n
}

// TestDFABudgetConcurrent: automata under one tiny budget, shared by
// matchers while they grow and the budget drops their tables (run with
// -race): each answer is still the regexp's, the budget was reached, and
// its total is what the tables hold.
func TestDFABudgetConcurrent(t *testing.T) {
	pats := []string{`a[ab]{14}c`, `\bab+a\b`, `(?m)^b.{3}c$`, `b[ab]{9}b`}
	var trees []*syntax.Regexp
	var res []*regexp.Regexp
	for _, p := range pats {
		tree, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, tree)
		res = append(res, regexp.MustCompile(p))
	}
	c := newCache(16 << 10)
	var singles []*dfa
	for _, tree := range trees {
		d := lazyDFA(tree)
		d.cache = c
		c.dfas = append(c.dfas, d)
		singles = append(singles, d)
	}
	group := newMDFA(trees)
	group.cache = c
	c.mdfas = append(c.mdfas, group)
	errs := make(chan string, 4)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 12))
			for i := range 1500 {
				b := randAB(rng, 40+rng.IntN(100))
				for range rng.IntN(4) {
					b[rng.IntN(len(b))] = " c\n"[rng.IntN(3)]
				}
				text := string(b)
				k := rng.IntN(len(singles))
				if m, ok := singles[k].matchAt(text, 0); !ok || m != res[k].MatchString(text) {
					errs <- fmt.Sprintf("goroutine %d text %d: dfa %d says %v (ok %v) on %q", g, i, k, m, ok, text)
					return
				}
				m, ok := group.match(text)
				if !ok {
					errs <- fmt.Sprintf("goroutine %d text %d: the group gave up", g, i)
					return
				}
				for k, re := range res {
					if (m>>k&1 == 1) != re.MatchString(text) {
						errs <- fmt.Sprintf("goroutine %d text %d: group bit %d wrong on %q", g, i, k, text)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	st := c.stats()
	if st.Resets == 0 || st.Flushes == 0 {
		t.Errorf("budget of %d bytes never reached: %+v", c.limit, st)
	}
	if sum := heldBytes(c); sum != st.Bytes {
		t.Errorf("budget counts %d bytes, the tables hold %d", st.Bytes, sum)
	}
}

var budgetOnce = sync.OnceValues(func() (*Ruleset, error) {
	return Load([]string{debianDir, "/etc/spamassassin"}, Env{})
})

// hitNames is the rules a message hits, as one string.
func hitNames(r Result) string {
	var names []string
	for _, h := range r.Hits {
		names = append(names, h.Rule)
	}
	return strings.Join(names, ",")
}

// TestCacheBudget: an engine whose automata must live in far less memory
// than they would take resets them many times, holds no more than the
// budget plus what a reset cannot drop, and hits exactly the rules an
// unbounded engine hits; also with several goroutines sharing it (run
// with -race: resets race with the lock-free matchers).
func TestCacheBudget(t *testing.T) {
	debianRules(t) // skips where the rules are missing
	rs, err := budgetOnce()
	if err != nil {
		t.Fatal(err)
	}
	n := 20
	if testing.Short() {
		n = 8
	}
	var files []string
	for _, k := range []string{"ham", "spam"} {
		files = append(files, sample(corpusFiles(t, k), n)...)
	}
	msgs := loadMessages(t, files)
	// No time bound on a backtracking match: both engines must give the
	// rules' own answer (see TestCorpusHitsGolden).
	free, err := Compile(rs, Options{MatchTimeout: time.Minute, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, len(msgs))
	for i, m := range msgs {
		want[i] = hitNames(free.Check(m, Input{}))
	}
	if fs := free.CacheStats(); fs.Limit != 0 || fs.Resets != 0 {
		t.Errorf("unbounded engine: %+v", fs)
	}
	const limit = 1 << 20
	if fs := free.CacheStats(); fs.Bytes < 4*limit {
		t.Fatalf("the sample needs only %d bytes of automata: a budget of %d would not be reached often", fs.Bytes, limit)
	}

	t.Run("serial", func(t *testing.T) {
		e, err := Compile(rs, Options{MatchTimeout: time.Minute, CacheBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		c := e.cache
		for i, m := range msgs {
			if got := hitNames(e.Check(m, Input{})); got != want[i] {
				t.Errorf("%s: hits %s, unbounded %s", files[i], got, want[i])
			}
			// Between resets the engine adds at most half the limit
			// past what the last reset left, or reaches the limit;
			// the state that passes it adds one table's growth step
			// (bounded here by a quarter of the limit).
			st := e.CacheStats()
			if bound := max(limit, c.base.Load()+limit/2) + limit/4; st.Bytes > bound {
				t.Errorf("after %s: %d bytes held, bound %d", files[i], st.Bytes, bound)
			}
		}
		st := e.CacheStats()
		t.Logf("budget %d: %+v, base %d", limit, st, c.base.Load())
		if st.Resets < 2 {
			t.Errorf("budget reached %d times", st.Resets)
		}
		if c.base.Load() > limit/2 {
			t.Errorf("a reset leaves %d bytes, more than half the budget", c.base.Load())
		}
		if sum := heldBytes(c); sum != st.Bytes {
			t.Errorf("budget counts %d bytes, the tables hold %d", st.Bytes, sum)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		e, err := Compile(rs, Options{MatchTimeout: time.Minute, CacheBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan string, len(msgs))
		for g := range 3 {
			wg.Go(func() {
				// Each goroutine its own order: different automata
				// grow at once.
				for j := range msgs {
					i := (j*(g+1) + g) % len(msgs)
					if got := hitNames(e.Check(msgs[i], Input{})); got != want[i] {
						errs <- fmt.Sprintf("goroutine %d, %s: hits %s, unbounded %s", g, files[i], got, want[i])
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for s := range errs {
			t.Error(s)
		}
		st := e.CacheStats()
		t.Logf("budget %d, 3 goroutines: %+v", limit, st)
		if st.Resets == 0 {
			t.Errorf("budget never reached")
		}
		if sum := heldBytes(e.cache); sum != st.Bytes {
			t.Errorf("budget counts %d bytes, the tables hold %d", st.Bytes, sum)
		}
	})
}
