package sa

import (
	"sync"
	"sync/atomic"
)

// DefaultCacheBytes is the automata's memory budget when Options leave it
// 0. Unbounded, the tables grow with the mail seen (~60 MB after the
// whole shared corpus); the 300-message benchmark sample needs 24 MB.
// A budget below what the mail in rotation needs costs dearly (each
// reset ~0.4 s of CPU to rebuild; 16 MB halves the sample's rate), one
// above it costs nothing. 48 MB keeps such a working set and most of the
// whole corpus's tables (3 resets over the benchmark's two passes, ~5 %
// fewer messages per CPU-second than unbounded; 32 MB made 15 resets,
// 17-25 % fewer).
const DefaultCacheBytes = 48 << 20

// cache is an engine's memory budget for the tables of all its automata
// (dfa and mdfa). Each table accounts the bytes it holds; when adding a
// state would take the engine's total past the limit, the budget drops
// every table (a reset), and each automaton rebuilds what it needs from
// its program: its answers do not change, only their cost. A table is
// dropped under its automaton's lock, taken with TryLock: a reset never
// waits on a search, it passes over the automata being filled (the one
// that found the budget full drops its own table itself). Matchers read
// the tables without the lock: a dropped table stays valid for those
// still in it, which move to the new one at their next unknown
// transition. Dropping everything frees the whole budget, so resets come
// once per budget's worth of new states. (Dropping only the biggest
// tables, down to half the limit, cost as much CPU on the corpus for
// twice the resets: the biggest tables are the group automata that
// every message runs.) A reset also drops, uncounted, what went unused
// since the reset before: the automata's programs and the regexps the
// rules compiled for where the automata give up (see lazyRE).
//
// A nil cache is no budget (the automata of the tests built alone).
type cache struct {
	limit int64 // bytes; <= 0: no bound, only the accounting
	held  atomic.Int64
	// base is what was held just after the last reset (see over).
	base atomic.Int64
	// resets counts the times the limit was reached, flushes the tables
	// those dropped.
	resets  atomic.Int64
	flushes atomic.Int64
	sweep   sync.Mutex
	// regexps and progs count the compiled regexps and the automata's
	// programs resets dropped (unused since the reset before).
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
	// Resets counts the times the limit was reached (each drops every
	// table); Flushes counts the tables so dropped. Regexps and Programs
	// count the compiled regexps and the automata's programs they dropped
	// (those unused since the reset before).
	Resets, Flushes, Regexps, Programs int64
}

// Approximate sizes of what a table holds besides its rows: a state's
// info, its map entry (key header, value, slot overhead, the map's spare
// room) and the table itself with its map. Calibrated: dropping every
// table of an engine warmed on 1,500 corpus messages (170,000 states)
// freed 39.7 MB of heap where the budget counted 41.1.
const (
	dinfoBytes    = 24
	minfoBytes    = 32
	mapEntryBytes = 72
	tableBytes    = 256
)

// dropScratch lets step's scratch space go (a program's size each; step
// makes it again): an automaton the budget flushed may not run again
// for a long time. Called under mu; the slices a caller still holds stay
// valid.
func (d *dfa) dropScratch()  { d.seen, d.stack, d.next, d.key = nil, nil, nil, nil }
func (d *mdfa) dropScratch() { d.seen, d.stack, d.next, d.key = nil, nil, nil, nil }

// flushedRoom is the room for states of a table started by the budget:
// small, as the tables of the many automata dropped at once (most of
// which a message rarely needs again) are what a reset still holds.
const flushedRoom = 4

// keyBytes is what the key string of a state takes (allocation classes
// are multiples of 8 at these sizes).
func keyBytes(n int) int64 { return int64(n+7) &^ 7 }

func newCache(limit int64) *cache { return &cache{limit: max(limit, 0)} }

func (c *cache) add(n int64) {
	if c != nil {
		c.held.Add(n)
	}
}

// over reports whether holding n more bytes passes the limit. So that a
// reset always frees a share worth its cost, it waits until half the
// limit was added since the last one: when what a reset could not drop
// (tables a search held) nears the limit, the engine holds up to that
// plus half the limit, instead of resetting at every state.
func (c *cache) over(n int64) bool {
	if c == nil || c.limit <= 0 {
		return false
	}
	h := c.held.Load() + n
	return h > c.limit && h-c.base.Load() > c.limit/2
}

// makeRoom drops the tables of the automata that no search holds, but
// the caller's (selfD or selfM), whose lock it holds: the caller drops
// that one itself. When another goroutine is already making room, it
// does nothing.
func (c *cache) makeRoom(selfD *dfa, selfM *mdfa) {
	if !c.sweep.TryLock() {
		return
	}
	defer c.sweep.Unlock()
	c.resets.Add(1)
	for _, d := range c.dfas {
		if d != selfD && d.tab.Load() != nil {
			d.tryDrop()
		}
	}
	for _, m := range c.mdfas {
		if m != selfM && m.tab.Load() != nil {
			m.tryDrop()
		}
	}
	for _, l := range c.res {
		if l.dropUnused() {
			c.regexps.Add(1)
		}
	}
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
