//go:build sadebug

package sa

import (
	"fmt"
	"os"
	"sort"
	"testing"
)

// TestDFABytes prints what the rules' own automata scan per message on a
// corpus sample (go test -tags sadebug -run DFABytes -v).
func TestDFABytes(t *testing.T) {
	rs := debianRules(t)
	e, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	per := 150
	if v := os.Getenv("SA_DBG_N"); v != "" {
		fmt.Sscan(v, &per)
	}
	for _, k := range []string{"ham", "spam"} {
		files = append(files, sample(corpusFiles(t, k), per)...)
	}
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
	rs := debianRules(t)
	e, err := Compile(rs, Options{})
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
				fmt.Printf("%v/%d g%d states %d gen %d failed %v classes %d %v\n", Kind(k), vi, gi, tb.n, tb.gen, g.m.failed.Load(), g.m.nclass, names)
			}
		}
	}
}

// TestMultiFindAll prints the multiple-hit rules that count with the
// regexp's FindAll (no exact counter) on a corpus sample.
func TestMultiFindAll(t *testing.T) {
	rs := debianRules(t)
	e, err := Compile(rs, Options{})
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
