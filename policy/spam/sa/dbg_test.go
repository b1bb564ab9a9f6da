//go:build sadebug

package sa

import (
	"fmt"
	"os"
	"regexp/syntax"
	"runtime"
	"runtime/pprof"
	"sort"
	"testing"
)

// TestDFABytes prints what the rules' own automata scan per message on a
// corpus sample (go test -tags sadebug -run DFABytes -v).
func TestDFABytes(t *testing.T) {
	e, files := dbgSetup(t)
	ms := loadMessages(t, files)
	for _, m := range ms {
		e.Check(m, Input{})
	}
	clear(dbgDFAStats)
	for _, m := range ms {
		e.Check(m, Input{})
	}
	n := int64(len(ms))
	var tot DFAStat
	type kv struct {
		k string
		s *DFAStat
	}
	var l []kv
	for k, s := range dbgDFAStats {
		tot.Runs += s.Runs
		tot.Hits += s.Hits
		tot.Bytes += s.Bytes
		tot.MissBytes += s.MissBytes
		l = append(l, kv{k, s})
	}
	fmt.Printf("per message: runs %d hits %d bytes %d miss-bytes %d\n", tot.Runs/n, tot.Hits/n, tot.Bytes/n, tot.MissBytes/n)
	sort.Slice(l, func(a, b int) bool { return l[a].s.Bytes > l[b].s.Bytes })
	top := 30
	if os.Getenv("TOP") != "" {
		fmt.Sscan(os.Getenv("TOP"), &top)
	}
	for _, x := range l[:min(top, len(l))] {
		r := e.rules[e.byName[x.k]]
		fmt.Printf("%7d %7d %5d/%-5d %-30s %-8v %.80q\n", x.s.Bytes/n, x.s.MissBytes/n, x.s.Hits, x.s.Runs, x.k, r.kind, r.def.Pattern)
	}
}

// TestGroupStates prints the group automata's cache after a corpus run.
func TestGroupStates(t *testing.T) {
	e, files := dbgSetup(t)
	ms := loadMessages(t, files)
	for _, m := range ms {
		e.Check(m, Input{})
	}
	for k := range e.pf {
		for vi := range 2 {
			for gi, g := range e.pf[k][vi].groups {
				tb := g.m.tab.Load()
				var names []string
				for _, p := range g.pos {
					names = append(names, e.rules[e.kinds[k][p]].name)
				}
				if tb == nil {
					fmt.Printf("%v/%d g%d unused\n", Kind(k), vi, gi)
					continue
				}
				fmt.Printf("%v/%d g%d states %d gen %d failed %v classes %d %v\n", Kind(k), vi, gi, tb.st.n(), tb.gen, g.m.failed.Load(), g.m.nclass, names)
			}
		}
	}
}

// TestWarmHeap writes a heap profile (SA_HEAP=path) of an engine warmed
// on the corpus sample (SA_DBG_N per folder), the engine alive.
func TestWarmHeap(t *testing.T) {
	path := os.Getenv("SA_HEAP")
	if path == "" {
		t.Skip("SA_HEAP not set")
	}
	runtime.MemProfileRate = 4096
	e, files := dbgSetup(t)
	// The peak: the heap after a collection every 100 messages (where
	// the last reset fell makes the end's figure vary).
	var ms runtime.MemStats
	peak := uint64(0)
	for i, f := range files {
		raw, _ := os.ReadFile(f)
		e.Check(FromRaw(raw), Input{})
		if i%100 == 99 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fmt.Printf("%d messages: heap in use %.1f MB, peak %.1f MB; budget %+v\n", len(files), float64(ms.HeapInuse)/(1<<20), float64(max(peak, ms.HeapInuse))/(1<<20), e.CacheStats())
	f, _ := os.Create(path)
	pprof.WriteHeapProfile(f)
	f.Close()
	runtime.KeepAlive(e)
}

// TestDFASizes prints the biggest automata after a corpus warm-up.
func TestDFASizes(t *testing.T) {
	e, files := dbgSetup(t)
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		e.Check(FromRaw(raw), Input{})
	}
	type sz struct {
		name          string
		states, bytes int
	}
	var l []sz
	total, n := 0, 0
	hist := map[int]int{}
	add := func(name string, d *dfa) {
		if d == nil {
			return
		}
		tb := d.tab.Load()
		if tb == nil {
			return
		}
		b := len(tb.trans)*4 + len(tb.end)*4 + int(tb.st.size()) + len(d.prog.inst)*8
		l = append(l, sz{name, tb.st.n(), b})
		total += b
		n++
		switch {
		case tb.st.n() < 50:
			hist[50]++
		case tb.st.n() < 200:
			hist[200]++
		case tb.st.n() < 1000:
			hist[1000]++
		default:
			hist[8000]++
		}
	}
	for _, r := range e.rules {
		if r == nil {
			continue
		}
		for vi := range 2 {
			add(r.name, r.v[vi].dfa)
			add(r.name+"/a", r.v[vi].adfa)
			add(r.name+"/s", r.v[vi].screenDFA)
		}
	}
	gtotal := 0
	for k := range e.pf {
		for vi := range 2 {
			for _, g := range e.pf[k][vi].groups {
				if tb := g.m.tab.Load(); tb != nil {
					gtotal += len(tb.trans)*4 + len(g.m.prog.inst)*8
				}
			}
		}
	}
	for _, sl := range e.hslots {
		for vi := range 2 {
			for _, g := range sl.pf[vi].groups {
				if tb := g.m.tab.Load(); tb != nil {
					gtotal += len(tb.trans)*4 + len(g.m.prog.inst)*8
				}
			}
		}
	}
	sort.Slice(l, func(a, b int) bool { return l[a].bytes > l[b].bytes })
	fmt.Printf("rule automata built %d, %.1f MB; groups %.1f MB; states hist %v\n", n, float64(total)/(1<<20), float64(gtotal)/(1<<20), hist)
	for _, x := range l[:20] {
		fmt.Printf("%8d %6d %s\n", x.bytes, x.states, x.name)
	}
}

// TestBTCost prints what the backtracking rules cost on a corpus sample
// (go test -tags sadebug -run BTCost -v): calls, runs past the RE2
// screen, runs of the backtracking engine, hits and its time.
func TestBTCost(t *testing.T) {
	e, files := dbgSetup(t)
	ms := loadMessages(t, files)
	for _, m := range ms {
		e.Check(m, Input{})
	}
	clear(dbgBTStats)
	for _, m := range ms {
		e.Check(m, Input{})
	}
	type kv struct {
		k string
		s *BTStat
	}
	var l []kv
	var tot BTStat
	for k, s := range dbgBTStats {
		l = append(l, kv{k, s})
		tot.Calls += s.Calls
		tot.Runs += s.Runs
		tot.Hits += s.Hits
		tot.Time += s.Time
		tot.Looks += s.Looks
		tot.LookTime += s.LookTime
	}
	sort.Slice(l, func(a, b int) bool { return l[a].s.Time+l[a].s.LookTime > l[b].s.Time+l[b].s.LookTime })
	fmt.Printf("%d messages: %d calls, %d backtracking runs, %d hits, %v; %d lookahead evaluations, %v\n", len(ms), tot.Calls, tot.Runs, tot.Hits, tot.Time, tot.Looks, tot.LookTime)
	for _, x := range l[:min(60, len(l))] {
		r := e.rules[e.byName[x.k]]
		fmt.Printf("%10v %6d %6d %6d %5d %-28s %-7v screen=%v look=%d/%v %.70q\n", x.s.Time, x.s.Calls, x.s.Pass, x.s.Runs, x.s.Hits, x.k, r.kind, r.btScreen != nil, x.s.Looks, x.s.LookTime, r.def.Pattern)
	}
}

// regexp's FindAll (no exact counter) on a corpus sample.
func TestMultiFindAll(t *testing.T) {
	e, files := dbgSetup(t)
	ms := loadMessages(t, files)
	for _, m := range ms {
		e.Check(m, Input{})
	}
	clear(dbgMultiStats)
	for _, m := range ms {
		e.Check(m, Input{})
	}
	type kv struct {
		k string
		s *MultiStat
	}
	var l []kv
	for k, s := range dbgMultiStats {
		l = append(l, kv{k, s})
	}
	sort.Slice(l, func(a, b int) bool { return l[a].s.Bytes > l[b].s.Bytes })
	n := int64(len(ms))
	for _, x := range l {
		r := e.rules[e.byName[x.k]]
		fmt.Printf("%8d %6d %6d %8.2fms %-28s %-8v %.100q\n", x.s.Bytes/n, x.s.Calls, x.s.Matches, float64(x.s.Nanos)/1e6, x.k, r.kind, r.def.Pattern)
	}
}

// dbgSetup compiles the Debian rules and picks the corpus sample of the
// development tests: SA_DBG_N messages per folder (150).
func dbgSetup(t *testing.T) (*Engine, []string) {
	t.Helper()
	e, err := Compile(debianRules(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	per := 150
	if v := os.Getenv("SA_DBG_N"); v != "" {
		fmt.Sscan(v, &per)
	}
	var files []string
	for _, k := range []string{"ham", "spam"} {
		files = append(files, sample(corpusFiles(t, k), per)...)
	}
	return e, files
}

// TestLazyREs prints the Go regexps the rules compiled on a corpus
// sample, by why they were needed, with their program sizes.
func TestLazyREs(t *testing.T) {
	e, files := dbgSetup(t)
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		e.Check(FromRaw(raw), Input{})
	}
	type row struct {
		name, why string
		insts     int
	}
	var l []row
	byWhy := map[string][2]int{}
	for _, r := range e.rules {
		if r == nil {
			continue
		}
		for vi := range 2 {
			v := &r.v[vi]
			if v.re == nil || v.re.re.Load() == nil || (vi == 1 && r.v[0].re == v.re) {
				continue
			}
			why := "nodfa"
			switch {
			case r.bt != nil:
				why = "bt"
			case r.multi:
				why = "multi"
			case v.dfa != nil && v.dfa.failed.Load():
				why = "dfafailed"
			case v.dfa != nil:
				why = "dfa-ok?"
			}
			p, _ := syntax.Parse(v.re.src, syntax.Perl)
			sp, _ := syntax.Compile(p.Simplify())
			n := len(sp.Inst)
			l = append(l, row{r.name, why, n})
			s := byWhy[why]
			byWhy[why] = [2]int{s[0] + 1, s[1] + n}
		}
	}
	srcLen := 0
	for _, r := range e.rules {
		if r == nil {
			continue
		}
		for vi := range 2 {
			if v := &r.v[vi]; v.re != nil && v.re.re.Load() != nil && !(vi == 1 && r.v[0].re == v.re) {
				srcLen += len(v.re.src)
			}
		}
	}
	fmt.Println("by why (count, insts):", byWhy, "source bytes", srcLen)
	sort.Slice(l, func(a, b int) bool { return l[a].insts > l[b].insts })
	for _, x := range l[:min(40, len(l))] {
		fmt.Printf("%7d %-10s %s\n", x.insts, x.why, x.name)
	}
}
