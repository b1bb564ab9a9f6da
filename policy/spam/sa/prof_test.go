package sa

import (
	"fmt"
	"os"
	"sort"
	"testing"
	"time"
)

// TestRuleCost prints the line rules that cost the most time on a corpus
// sample (SA_COST=1): a development aid for the prefilter.
func TestRuleCost(t *testing.T) {
	if os.Getenv("SA_COST") == "" {
		t.Skip("SA_COST not set")
	}
	rs := debianRules(t)
	e, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, k := range []string{"ham", "spam"} {
		files = append(files, sample(corpusFiles(t, k), 100)...)
	}
	ms := loadMessages(t, files)
	for _, m := range ms {
		e.Check(m, Input{}) // warm the automata, as a running daemon has
	}
	cost := map[int]time.Duration{}
	nlines := map[int]int{}
	costHook = func(i, n int, d time.Duration) { cost[i] += d; nlines[i] += n }
	defer func() { costHook = nil }()
	for _, m := range ms {
		e.Check(m, Input{})
	}
	type kv struct {
		i int
		d time.Duration
	}
	var l []kv
	var total time.Duration
	for i, d := range cost {
		l = append(l, kv{i, d})
		total += d
	}
	sort.Slice(l, func(a, b int) bool { return l[a].d > l[b].d })
	fmt.Println("total", total)
	agg := map[string]time.Duration{}
	aggN := map[string]int{}
	for i, d := range cost {
		r := e.rules[i]
		k := fmt.Sprintf("%v lits=%v bt=%v", r.kind, r.v[1].lits != nil, r.bt != nil)
		agg[k] += d
		aggN[k]++
	}
	for k, d := range agg {
		fmt.Printf("  %-30s %4d rules %v\n", k, aggN[k], d)
	}
	for _, x := range l[:40] {
		r := e.rules[x.i]
		fmt.Printf("%8v %5d %-28s %v lits=%.60v bt=%v %s\n", x.d, nlines[x.i], r.name, r.kind, fmt.Sprint(r.v[1].lits), r.bt != nil, truncate(r.def.Pattern, 70))
	}
}
