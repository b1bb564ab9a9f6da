package sa

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
)

// table is what the tables of both automata (dtable, mtable) hold: one
// flat row of transitions per state, so that a step is one load from one
// array (no pointer to follow), and the states' keys. A table grows by
// copy, keeping state numbers, and a flush or trim starts a new one
// (gen+1). Matchers read the rows without the lock: entries are written
// once (0 to a target) with atomic stores, and a matcher that finds an
// entry unknown takes the lock and looks again in the current table.
type table struct {
	gen int
	// bytes is what the table holds, as the budget counts it (written
	// under mu, read by the budget's sweep).
	bytes atomic.Int64
	// trans is allocated at the table's full size and never resliced: a
	// matcher reads it without the lock.
	trans entries // state*nclass+class -> 0 unknown, or an automaton's entry
	// st is the states' keys and births, under mu. The tables of one
	// generation share it (growing copies the rows only); a table of an
	// older generation keeps its own, where fill finds the key of a state
	// a matcher was in.
	st *stateSet
}

// stateSet is the keys of an automaton's states, numbered in the order
// they were added (0 unused, startID the start state), with an index
// from key to number and each state's birth (see cache.makeRoom). It
// holds no pointer but its slices: a warm engine has a few hundred
// thousand states, and a map from key strings to numbers with a struct
// per state cost ~100 bytes each besides the key, all of it for the
// collector to walk at every cycle. Used under the automaton's lock.
type stateSet struct {
	keys  []byte   // the keys, one after the other
	off   []uint32 // state s's key is keys[off[s]:off[s+1]]
	birth []uint32
	// slots is an open-addressing index: 0 empty, else a state whose key
	// hashes there or before (linear probing); at most half full.
	slots []int32
}

var stateSeed = maphash.MakeSeed()

// newStateSet returns an empty set (state 0 only, unused) with room for
// n states.
func newStateSet(n int) *stateSet {
	ss := &stateSet{off: make([]uint32, 2, n+1), birth: make([]uint32, 1, n)}
	ss.slots = make([]int32, slotsFor(n))
	return ss
}

// slotsFor is the index size for n states: a power of two, at least
// twice n.
func slotsFor(n int) int {
	s := 8
	for s < 2*n {
		s <<= 1
	}
	return s
}

// n is the number of states, the unused 0 included.
func (ss *stateSet) n() int { return len(ss.birth) }

// key is state s's key (not to be changed).
func (ss *stateSet) key(s int32) []byte {
	return ss.keys[ss.off[s]:ss.off[s+1]:ss.off[s+1]]
}

// find returns the state of key, 0 when there is none.
func (ss *stateSet) find(key []byte) int32 {
	mask := uint64(len(ss.slots) - 1)
	for i := maphash.Bytes(stateSeed, key) & mask; ; i = (i + 1) & mask {
		s := ss.slots[i]
		if s == 0 || bytes.Equal(ss.key(s), key) {
			return s
		}
	}
}

// add adds a state of key (not in the set), born at birth, and returns
// its number.
func (ss *stateSet) add(key []byte, birth uint32) int32 {
	s := int32(len(ss.birth))
	ss.keys = append(ss.keys, key...)
	ss.off = append(ss.off, uint32(len(ss.keys)))
	ss.birth = append(ss.birth, birth)
	if 2*ss.n() > len(ss.slots) {
		ss.reindex(2 * len(ss.slots))
	} else {
		ss.insert(s)
	}
	return s
}

func (ss *stateSet) insert(s int32) {
	mask := uint64(len(ss.slots) - 1)
	i := maphash.Bytes(stateSeed, ss.key(s)) & mask
	for ss.slots[i] != 0 {
		i = (i + 1) & mask
	}
	ss.slots[i] = s
}

// reindex rebuilds the index with size slots.
func (ss *stateSet) reindex(size int) {
	ss.slots = make([]int32, size)
	for s := int32(startID); s < int32(ss.n()); s++ {
		ss.insert(s)
	}
}

// prefix returns a new set of the first k states (0 included), with room
// for n.
func (ss *stateSet) prefix(k, n int) *stateSet {
	kb := int(ss.off[k])
	p := &stateSet{
		keys:  make([]byte, kb, kb+keyRoom(kb, k, n)),
		off:   make([]uint32, k+1, n+1),
		birth: make([]uint32, k, n),
	}
	copy(p.keys, ss.keys)
	copy(p.off, ss.off)
	copy(p.birth, ss.birth)
	p.reindex(slotsFor(n))
	return p
}

// prefixSize is the size of prefix(k, n).
func (ss *stateSet) prefixSize(k, n int) int64 {
	kb := int(ss.off[k])
	return int64(kb + keyRoom(kb, k, n) + 4*(n+1) + 4*n + 4*slotsFor(n))
}

// keyRoom is the room for the keys of n states in all where k states
// have keys of kb bytes: their average length each.
func keyRoom(kb, k, n int) int { return (kb/max(k-1, 1) + 1) * (n - k) }

// reserve makes room for n states in all, keys of the average length so
// far: the set grows with its table's rows (by a quarter), not by
// append's doubling, so that what it holds stays close to what it uses.
func (ss *stateSet) reserve(n int) {
	if n <= ss.n() {
		return
	}
	k := ss.n()
	ss.keys = slices.Grow(ss.keys, keyRoom(len(ss.keys), k, n))
	ss.off = slices.Grow(ss.off, n-k)
	ss.birth = slices.Grow(ss.birth, n-k)
}

// size is what the set holds (its slices' capacities).
func (ss *stateSet) size() int64 {
	return int64(cap(ss.keys) + 4*cap(ss.off) + 4*cap(ss.birth) + 4*len(ss.slots))
}

// stateBytes is about what a state with a key of n bytes adds to a table
// besides its row: the key, its offset and birth, its share of the index
// (2 to 4 slots).
func stateBytes(n int) int64 { return int64(n) + 8 + 16 }

// grow makes room for n states in the table's set, for a copy of the
// table with rows more bytes of rows, and returns the bytes added (the
// budget counts them). Called under mu.
func (t *table) grow(n int, rows int64, c *cache) int64 {
	before := t.st.size()
	t.st.reserve(n)
	b := rows + t.st.size() - before
	c.add(b)
	return b
}

// add adds the state of key to the table and returns its number. Called
// under mu.
func (t *table) add(key []byte, c *cache) int32 {
	before := t.st.size()
	id := t.st.add(key, c.tick())
	b := t.st.size() - before
	t.bytes.Add(b)
	c.add(b)
	return id
}

// stepScratch is the scratch space of a step (dfa.step, mdfa.step): the
// marks of the instructions visited and the thread lists. Steps run only
// where a table lacks a transition, so the automata share a pool of them;
// a mark array of its program's size per automaton held 4.4 MB of a warm
// daemon's heap.
type stepScratch struct {
	seen        []uint32 // seen[pc] == gen: visited in the current step
	gen         uint32
	stack, next []uint32
}

var stepScratches = sync.Pool{New: func() any { return new(stepScratch) }}

func getStepScratch() *stepScratch { return stepScratches.Get().(*stepScratch) }

// begin starts a step over a program of n instructions: it returns the
// step's mark and the mark array. Marks of earlier steps, of any program,
// are older.
func (sc *stepScratch) begin(n int) (uint32, []uint32) {
	if len(sc.seen) < n {
		sc.seen = make([]uint32, n)
		sc.gen = 0
	}
	sc.gen++
	if sc.gen == 0 { // wrapped: forget every old mark
		clear(sc.seen)
		sc.gen = 1
	}
	return sc.gen, sc.seen
}
