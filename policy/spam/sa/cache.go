package sa

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// DefaultCacheBytes is the automata's memory budget when Options leave it
// 0. Unbounded, the tables grow with the mail seen. A budget below what
// the mail in rotation needs costs CPU (each reset rebuilds what was
// dropped), one above it costs nothing. The whole shared corpus
// (BenchmarkCorpus, two passes, SA_CACHE_MB) needs 28.7 MB of tables:
// 32 MB makes no reset; 24 MB made 4 for ~6 % fewer messages per
// CPU-second and a heap 17 MB smaller; 16 MB, 18 resets. (Before the
// states' keys moved into flat sets the same tables took 43 MB: 48 was
// the default then.)
const DefaultCacheBytes = 32 << 20

// cache is an engine's memory budget for the tables of all its automata
// (dfa and mdfa). Each table accounts the bytes it holds; when adding a
// state would take the engine's total past the limit, the budget trims
// the tables (a reset) to three quarters of the limit, and each
// automaton rebuilds what else it needs from its program: its answers do
// not change, only their cost. A reset keeps the oldest states of all
// the tables, as many as fit: after a table is started, its automaton
// adds the states its texts need in about the order of how often they
// need them, so the oldest are the most used (the states a reset kept
// are older still). Dropping every table instead rebuilt, on the whole
// corpus at 48 MB, four fifths of what it dropped before the next reset:
// nearly every table is in use, so which tables went unused says
// little; which of their states went unused it cannot say without a
// store per byte. What went unused for a budget's worth of new states
// is dropped whole: the tables (whose old states would be kept
// otherwise), the automata's programs and the regexps the rules
// compiled for where the automata give up (see lazyRE); these two are
// not counted.
//
// A table is trimmed under its automaton's lock, taken with TryLock: a
// reset never waits on a search, it passes over the automata being
// filled (but the one that found the budget full, whose lock the caller
// holds). Matchers read the tables without the lock: a trimmed table is
// a new one (the next generation), and the old one stays valid for those
// still in it, which move to the new one at their next unknown
// transition.
//
// A nil cache is no budget (the automata of the tests built alone).
type cache struct {
	limit int64 // bytes; <= 0: no bound, only the accounting
	held  atomic.Int64
	// base is what was held just after the last reset (see over).
	base atomic.Int64
	// resets counts the times the limit was reached, flushes the tables
	// those trimmed or dropped.
	resets  atomic.Int64
	flushes atomic.Int64
	sweep   sync.Mutex
	// clock counts the states added: a state's birth.
	clock atomic.Uint32
	// grown counts the bytes ever added, swept what it was when a reset
	// last dropped what went unused (under sweep).
	grown atomic.Int64
	swept int64
	// regexps and progs count the compiled regexps and the automata's
	// programs resets dropped (unused for a budget's worth of states).
	regexps atomic.Int64
	progs   atomic.Int64
	// The engine's automata and regexps, set once by Compile.
	dfas  []*dfa
	mdfas []*mdfa
	res   []*lazyRE
}

// CacheStats are the figures of an engine's automata budget.
type CacheStats struct {
	Limit int64 // bytes; 0 means no bound
	Bytes int64 // held now by the automata's tables (an estimate)
	// Resets counts the times the limit was reached (each trims the
	// tables to three quarters of the limit); Flushes counts the tables
	// so trimmed or dropped. Regexps and Programs count the compiled
	// regexps and the automata's programs they dropped (those unused for
	// a budget's worth of new states).
	Resets, Flushes, Regexps, Programs int64
}

// tableBytes is about what a table takes besides its rows and states.
const tableBytes = 256

// dropScratch lets state's scratch space go: an automaton the budget
// flushed may not run again for a long time. Called under mu.
func (d *dfa) dropScratch()  { d.key = nil }
func (d *mdfa) dropScratch() { d.key = nil }

// flushedRoom is the room for states of a table started by the budget:
// small, as the tables of the many automata dropped at once (most of
// which a message rarely needs again) are what a reset still holds.
const flushedRoom = 4

func newCache(limit int64) *cache { return &cache{limit: max(limit, 0)} }

func (c *cache) add(n int64) {
	if c != nil {
		c.held.Add(n)
		if n > 0 {
			c.grown.Add(n)
		}
	}
}

// over reports whether holding n more bytes passes the limit. So that a
// reset always frees a share worth its cost, it waits until what a reset
// frees (a quarter of the limit) was added since the last one: when what
// a reset could not drop (tables a search held) nears the limit, the
// engine holds up to that plus a quarter of the limit, instead of
// resetting at every state.
func (c *cache) over(n int64) bool {
	if c == nil || c.limit <= 0 {
		return false
	}
	h := c.held.Load() + n
	return h > c.limit && h-c.base.Load() > c.limit-c.keep()
}

// makeRoom trims the tables of the automata that no search holds, and
// the caller's (selfD or selfM, whose lock it holds), to keep bytes in
// all. When another goroutine is already making room, it does nothing.
func (c *cache) makeRoom(selfD *dfa, selfM *mdfa) {
	if !c.sweep.TryLock() {
		return
	}
	defer c.sweep.Unlock()
	c.resets.Add(1)
	now := c.clock.Load()
	// Drop what went unused for a budget's worth of new states (or gave
	// up) and list the ages of the other tables' states, with what each
	// costs to keep.
	unused := c.grown.Load()-c.swept >= c.limit
	if unused {
		c.swept = c.grown.Load()
	}
	var ages []uint64 // age<<32 | cost
	// What the listed tables hold, and would hold with their start state
	// only.
	var held, fixed int64
	for _, d := range c.dfas {
		if d.tab.Load() == nil || d != selfD && !d.mu.TryLock() {
			continue
		}
		if used := !unused || d.used.Swap(false) || d == selfD; used && !d.failed.Load() {
			var f int64
			ages, f = d.ages(now, ages)
			held, fixed = held+d.tab.Load().bytes.Load(), fixed+f
		} else {
			d.drop()
		}
		if d != selfD {
			d.mu.Unlock()
		}
	}
	for _, m := range c.mdfas {
		if m.tab.Load() == nil || m != selfM && !m.mu.TryLock() {
			continue
		}
		if used := !unused || m.used.Swap(false) || m == selfM; used && !m.failed.Load() {
			var f int64
			ages, f = m.ages(now, ages)
			held, fixed = held+m.tab.Load().bytes.Load(), fixed+f
		} else {
			m.drop()
		}
		if m != selfM {
			m.mu.Unlock()
		}
	}
	for _, l := range c.res {
		if unused && l.dropUnused() {
			c.regexps.Add(1)
		}
	}
	// Keep the oldest states, as many as fit.
	var listed int64
	for _, a := range ages {
		listed += int64(uint32(a))
	}
	room := c.keep() - (c.held.Load() - held + fixed)
	minAge := int64(0) // keep all
	if listed > room {
		slices.Sort(ages)
		minAge = 1 << 32 // keep none
		for _, a := range slices.Backward(ages) {
			if room -= int64(uint32(a)); room < 0 {
				break
			}
			minAge = int64(a >> 32)
		}
	}
	for _, d := range c.dfas {
		if d.tab.Load() != nil && (d == selfD || d.mu.TryLock()) {
			d.trim(now, minAge)
			if d != selfD {
				d.mu.Unlock()
			}
		}
	}
	for _, m := range c.mdfas {
		if m.tab.Load() != nil && (m == selfM || m.mu.TryLock()) {
			m.trim(now, minAge)
			if m != selfM {
				m.mu.Unlock()
			}
		}
	}
	c.settled()
}

// keep is what a reset leaves at most (when no search holds a table):
// three quarters of the limit. Keeping half made half as many resets on
// the whole corpus, each rebuilding more, for 1.6 times the states
// rebuilt per pass (at 48 MB); keeping more made resets frequent enough
// that their sweeps cost more than they saved.
// flushed counts a table trimmed or dropped.
func (c *cache) flushed() {
	if c != nil {
		c.flushes.Add(1)
	}
}

func (c *cache) keep() int64 { return c.limit - c.limit/4 }

// tick advances the clock for a state added.
func (c *cache) tick() uint32 {
	if c == nil {
		return 0
	}
	return c.clock.Add(1)
}

// ages appends the age (clock ticks since) of each state of the table but
// the start, with what keeping it costs (its state and a row of row
// bytes, with trim's spare room for both). Called under mu.
func (t *table) ages(now uint32, row int64, ages []uint64) []uint64 {
	for s := int32(startID + 1); s < int32(t.st.n()); s++ {
		cost := ((stateBytes(len(t.st.key(s)))+row)*9 + 7) / 8
		ages = append(ages, uint64(now-t.st.birth[s])<<32|uint64(cost))
	}
	return ages
}

// ages is table.ages; fixed is what the table trimmed to its start state
// holds.
func (d *dfa) ages(now uint32, ages []uint64) (_ []uint64, fixed int64) {
	t := d.tab.Load()
	return t.ages(now, d.rowsBytes(1), ages), tableBytes + d.rowsBytes(startRoom) + t.st.prefixSize(startID+1, startRoom)
}

func (d *mdfa) ages(now uint32, ages []uint64) (_ []uint64, fixed int64) {
	t := d.tab.Load()
	return t.ages(now, d.rowsBytes(1), ages), tableBytes + d.rowsBytes(startRoom) + t.st.prefixSize(startID+1, startRoom)
}

// startRoom is the room of a table trimmed to its start state.
const startRoom = startID + 1 + flushedRoom

// old is how many of the table's first states are at least minAge ticks
// old: states are in the order of their births.
func (t *table) old(now uint32, minAge int64) int {
	return startID + 1 + sort.Search(t.st.n()-startID-1, func(i int) bool {
		return int64(now-t.st.birth[startID+1+i]) < minAge
	})
}

// trimRoom is the room of a table trimmed to k states, or 0 when
// trimming it to k would change nothing (a table with room for n).
func trimRoom(t *table, k, n int) int {
	room := k + max(k/8, flushedRoom)
	if k == t.st.n() && room >= n {
		return 0
	}
	return room
}

// trimInto makes g the next generation of t with its first k states and
// room for room (see trim); target is a transition's target state.
// Called under mu.
func (t *table) trimInto(g *table, k, room int, nc int32, c *cache, target func(int32) int32) {
	if k < t.st.n() {
		c.flushed()
	}
	g.gen, g.trans, g.st = t.gen+1, newEntries(room*int(nc)), t.st.prefix(k, room)
	g.trans.keepRows(t.trans, int32(k), nc, target)
}

// trim replaces the table by one of the next generation holding the
// states at least minAge ticks old (the first ones), with little spare
// room. Called under mu.
func (d *dfa) trim(now uint32, minAge int64) { d.trimTo(d.tab.Load().old(now, minAge)) }

// trimTo keeps the first k states (see trim).
func (d *dfa) trimTo(k int) {
	t := d.tab.Load()
	room := trimRoom(&t.table, k, len(t.end))
	if room == 0 {
		return
	}
	g := &dtable{end: make([]atomic.Int32, room)}
	t.trimInto(&g.table, k, room, d.nclass, d.cache, func(n int32) int32 { return n })
	for s := range k {
		g.end[s].Store(t.end[s].Load())
	}
	for f := range t.starts {
		if s := atomic.LoadInt32(&t.starts[f]); s < int32(k) {
			g.starts[f] = s
		}
	}
	d.cache.settle(&t.table, &g.table, d.rowsBytes(room))
	d.tab.Store(g)
}

func (d *mdfa) trim(now uint32, minAge int64) { d.trimTo(d.tab.Load().old(now, minAge)) }

func (d *mdfa) trimTo(k int) {
	t := d.tab.Load()
	room := trimRoom(&t.table, k, len(t.set))
	if room == 0 {
		return
	}
	g := &mtable{set: make([]uint64, room), end: make([]mend, room)}
	t.trimInto(&g.table, k, room, d.nclass, d.cache, func(n int32) int32 { return n & stateMask })
	copy(g.set, t.set[:k])
	for s := range k {
		g.end[s].copyFrom(&t.end[s])
	}
	d.cache.settle(&t.table, &g.table, d.rowsBytes(room))
	d.tab.Store(g)
}

// settle sets what the trimmed table g (of t) holds, rows bytes of rows
// and its states, and counts the difference.
func (c *cache) settle(t, g *table, rows int64) {
	b := tableBytes + rows + g.st.size()
	g.bytes.Store(b)
	c.add(b - t.bytes.Load())
}

// settled records what a reset left, once the caller dropped its own
// table.
func (c *cache) settled() { c.base.Store(c.held.Load()) }

func (c *cache) stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	return CacheStats{Limit: c.limit, Bytes: c.held.Load(), Resets: c.resets.Load(), Flushes: c.flushes.Load(), Regexps: c.regexps.Load(), Programs: c.progs.Load()}
}

// CacheStats returns the figures of the automata's memory budget.
func (e *Engine) CacheStats() CacheStats { return e.cache.stats() }

// useCache puts every automaton of the engine under one budget.
func (e *Engine) useCache(c *cache) {
	e.cache = c
	addDFA := func(d *dfa) {
		if d != nil && d.cache == nil { // variants may share one
			d.cache = c
			c.dfas = append(c.dfas, d)
		}
	}
	addGroups := func(pf *prefilter) {
		for i := range pf.groups {
			if m := pf.groups[i].m; m != nil && m.cache == nil {
				m.cache = c
				c.mdfas = append(c.mdfas, m)
			}
		}
	}
	for _, r := range e.rules {
		if r == nil {
			continue
		}
		for vi := range r.v {
			v := &r.v[vi]
			if l := v.re; l != nil && (vi == 0 || l != r.v[0].re) { // variants may share one
				c.res = append(c.res, l)
			}
			addDFA(v.dfa)
			addDFA(v.adfa)
			addDFA(v.screenDFA)
		}
		if r.btLook != nil {
			for _, d := range r.btLook.dfas() {
				addDFA(d)
			}
		}
	}
	for k := range e.pf {
		for vi := range e.pf[k] {
			addGroups(&e.pf[k][vi])
		}
	}
	for s := range e.hslots {
		for vi := range e.hslots[s].pf {
			addGroups(&e.hslots[s].pf[vi])
		}
	}
}
