package sa

import (
	"encoding/binary"
	"regexp/syntax"
	"slices"
	"sync"
	"sync/atomic"
)

// mdfa is a lazily built automaton for a group of regexes at once (as
// RE2::Set): one pass over a text says which of them match somewhere in
// it. The rules without a required literal run on every line of every
// message; one pass of their group replaces a pass per rule, and only the
// rules it names run their own matcher on that line. Its states are sets
// of program counters of all the group's programs; each transition
// carries the set of the regexes whose match ends there. It shares
// dfa's byte classes, empty-width handling and cache policy (a full cache
// is flushed, or the automaton gives up and the caller runs every rule of
// the group).
type mdfa struct {
	once    sync.Once
	trees   []*syntax.Regexp // compiled on first use
	prog    prog             // the programs; InstMatch names its regex
	starts  []uint32
	all     uint64
	class   [badRune + 1]uint8
	nclass  int32
	mu      sync.Mutex
	tab     atomic.Pointer[mtable]
	failed  atomic.Bool
	used    atomic.Bool // as dfa's
	scanned atomic.Int64
	cache   *cache // the engine's budget (nil: none)
	key     []byte // state's scratch space, used under mu
}

// maxGroup is the largest group: a transition's matches are one uint64.
const maxGroup = 64

// mtable is mdfa's cache, as dtable. An entry of trans is 16 bits, as
// dtable's: the next state, and matchBit when regexes of the group match
// on that transition. Which ones is the next state's: a state is its
// threads and the set of the regexes whose match ended on entering it
// (the same threads with another set are another state), so an entry
// needs no room for a set. Entries of 4 bytes with a set's number in
// them made the group tables twice as big, and a pass over a text walks
// several of them: the bytes that have to stay in the processor's cache.
type mtable struct {
	table
	// Allocated at the table's full size and never resliced (read
	// without the lock): for each state, set is the regexes whose match
	// ends on the transitions into it (entries to it carry matchBit when
	// it is not 0), end its matches at the end of the text.
	set []uint64
	end []mend
}

// mend is what a group state matches at the end of the text, once known.
type mend struct {
	set   atomic.Uint64
	known atomic.Bool
}

const (
	matchBit  = 1 << 14
	stateMask = matchBit - 1
)

// A state number must fit below matchBit: the table holds at most
// maxDFAStates+2 of them (see state).
var _ [stateMask - (maxDFAStates + 2)]struct{}

// A group state's key is as dfa's, with the state's set (a uvarint)
// between the flag and the threads.

// mkey is the key of a group state: flag, set, then the threads.
func mkey(key []byte, flag uint8, set uint64, pcs []uint32) []byte {
	key = binary.AppendUvarint(append(key[:0], flag), set)
	return appendKeyPCs(key, pcs)
}

// mkeyPCs appends to pcs the threads of a group state's key.
func mkeyPCs(pcs []uint32, key []byte) []uint32 {
	i := 1
	for key[i] >= 0x80 {
		i++
	}
	return keyPCsAt(pcs, key, i+1)
}

func newMDFA(trees []*syntax.Regexp) *mdfa {
	return &mdfa{trees: trees}
}

func (d *mdfa) init() {
	progs := make([]*syntax.Prog, len(d.trees))
	size := 0
	for k, t := range d.trees {
		sp, err := syntax.Compile(t.Simplify())
		if err != nil {
			d.failed.Store(true)
			return
		}
		progs[k] = sp
		size += len(sp.Inst)
	}
	// Room for them all up front: append would leave up to half spare.
	d.prog.inst = make([]inst, 0, size)
	for k, sp := range progs {
		d.starts = append(d.starts, d.prog.add(sp, uint32(k)))
		d.all |= 1 << k
	}
	d.trees = nil
	d.prog.done()
	class, n := d.prog.byteClasses()
	d.class, d.nclass = class, int32(n)
	d.tab.Store(d.newTable(0, 64))
}

func (d *mdfa) newTable(gen, n int) *mtable {
	t := &mtable{set: make([]uint64, n), end: make([]mend, n)}
	t.gen, t.trans, t.st = gen, newEntries(n*int(d.nclass)), newStateSet(n)
	t.st.add(mkey(nil, prevStart, 0, nil), 0)
	b := tableBytes + d.rowsBytes(n) + t.st.size()
	t.bytes.Store(b)
	d.cache.add(b)
	return t
}

// rowsBytes is what the rows of n states take (transitions, set, end).
func (d *mdfa) rowsBytes(n int) int64 { return int64(n)*int64(d.nclass)*2 + int64(n)*24 }

// replace and drop are dfa's.

func (d *mdfa) replace(t *mtable, n int) *mtable {
	d.cache.add(-t.bytes.Load())
	d.scanned.Store(0)
	t = d.newTable(t.gen+1, n)
	d.tab.Store(t)
	return t
}

func (d *mdfa) drop() {
	t := d.tab.Load()
	if t.st.n() <= 2 { // only the start state: nothing to free
		return
	}
	d.cache.flushed()
	d.replace(t, flushedRoom)
	d.dropScratch()
}

// state is dfa.state for the group: the number in the current table of
// the state of threads pcs entered with the matches of set, 0 when the
// automaton gives up. Called under mu.
func (d *mdfa) state(pcs []uint32, flag uint8, set uint64) int32 {
	key := mkey(d.key, flag, set, pcs)
	d.key = key
	t := d.tab.Load()
	if id := t.st.find(key); id != 0 {
		return id
	}
	cost := stateBytes(len(key))
	if t.st.n() == len(t.set) {
		cost += d.rowsBytes(grownSize(len(t.set))) - d.rowsBytes(len(t.set))
	}
	if d.cache.over(cost) {
		d.cache.makeRoom(nil, d)
		t = d.tab.Load()
		if id := t.st.find(key); id != 0 {
			return id
		}
	}
	if t.st.n() > maxDFAStates {
		if d.scanned.Load() < flushBytesPerState*maxDFAStates {
			d.failed.Store(true)
			return 0
		}
		// Keep the oldest half: a table fills in order of need.
		d.scanned.Store(0)
		d.trimTo(maxDFAStates / 2)
		t = d.tab.Load()
		if id := t.st.find(key); id != 0 {
			return id
		}
	}
	if t.st.n() == len(t.set) {
		n := grownSize(len(t.set))
		g := &mtable{set: make([]uint64, n), end: make([]mend, n)}
		g.gen, g.trans, g.st = t.gen, newEntries(n*int(d.nclass)), t.st
		g.trans.copyFrom(t.trans)
		copy(g.set, t.set)
		for i := range t.end {
			g.end[i].copyFrom(&t.end[i])
		}
		g.bytes.Store(t.bytes.Load() + t.grow(n, d.rowsBytes(n)-d.rowsBytes(len(t.set)), d.cache))
		t = g
		d.tab.Store(t)
	}
	id := t.add(key, d.cache)
	t.set[id] = set
	return id
}

// copyFrom copies what e knows into a grown table's m.
func (m *mend) copyFrom(e *mend) {
	if e.known.Load() {
		m.set.Store(e.set.Load())
		m.known.Store(true)
	}
}

// step is dfa.step for the group: the regexes whose match is reached
// before byte c (c < 0: end of text) and the threads after c.
func (d *mdfa) step(sc *stepScratch, key []byte, c int) (matched uint64, out []uint32) {
	op := empty(key[0], c)
	gen, seen := sc.begin(len(d.prog.inst))
	stack := mkeyPCs(append(sc.stack[:0], d.starts...), key)
	next := sc.next[:0]
	for len(stack) > 0 {
		pc := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pc] == gen {
			continue
		}
		seen[pc] = gen
		in := &d.prog.inst[pc]
		switch in.op() {
		case syntax.InstAlt, syntax.InstAltMatch:
			stack = append(stack, in.arg, in.out())
		case syntax.InstCapture, syntax.InstNop:
			stack = append(stack, in.out())
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(in.arg)&^op == 0 {
				stack = append(stack, in.out())
			}
		case syntax.InstMatch:
			matched |= 1 << in.arg
		case syntax.InstFail:
		default:
			if c >= 0 && d.prog.sets[in.arg].has(c) {
				next = append(next, in.out())
			}
		}
	}
	sc.stack, sc.next = stack, next
	slices.Sort(next)
	out = next[:0]
	for i, pc := range next {
		if i == 0 || pc != next[i-1] {
			out = append(out, pc)
		}
	}
	return matched, out
}

// match returns the set of the group's regexes that match somewhere in
// text (byte-runes, as dfa.match); ok is false when it gave up.
func (d *mdfa) match(text string) (matched uint64, ok bool) {
	d.once.Do(d.init)
	if d.failed.Load() {
		return 0, false
	}
	if !d.used.Load() {
		d.used.Store(true)
	}
	d.scanned.Add(int64(len(text)))
	t := d.tab.Load()
	trans := t.trans
	nc := d.nclass
	s := int32(startID)
	for i := 0; i < len(text); i++ {
		b := text[i]
		cl, c := d.class[b], int(b)
		if b >= 0x80 {
			var size int
			if c, size = byteRune(text[i:]); size == 0 {
				return 0, false
			}
			cl = d.class[c]
			i += size - 1
		}
		n := trans.load(s*nc + int32(cl))
		if n == 0 {
			if t, n = d.fillLocked(t, s, c); n == 0 {
				return 0, false
			}
			trans = t.trans
		}
		s = n & stateMask
		if n&matchBit != 0 {
			matched |= t.set[s]
			if matched == d.all {
				return matched, true
			}
		}
	}
	e := &t.end[s]
	if !e.known.Load() {
		sc := getStepScratch()
		d.mu.Lock()
		m, _ := d.step(sc, t.st.key(s), -1)
		d.mu.Unlock()
		stepScratches.Put(sc)
		e.set.Store(m)
		e.known.Store(true)
	}
	return matched | e.set.Load(), true
}

// fillLocked is dfa.fillLocked for the group.
func (d *mdfa) fillLocked(t *mtable, s int32, c int) (*mtable, int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fill(t, s, c)
}

// fill is dfa.fill for the group: the entry of the transition from state
// s of table t on symbol c (next state and match set). Called under mu.
func (d *mdfa) fill(t *mtable, s int32, c int) (*mtable, int32) {
	cl := s*d.nclass + int32(d.class[c])
	if cur := d.tab.Load(); cur != t {
		if cur.gen != t.gen {
			key := t.st.key(s)
			s = d.state(mkeyPCs(nil, key), key[0], t.set[s])
			if s == 0 {
				return cur, 0
			}
			cl = s*d.nclass + int32(d.class[c])
		}
		t = d.tab.Load()
		if n := t.trans.load(cl); n != 0 {
			return t, n
		}
	}
	sc := getStepScratch()
	defer stepScratches.Put(sc)
	m, pcs := d.step(sc, t.st.key(s), c)
	n := d.state(pcs, flagAfter(c), m)
	cur := d.tab.Load()
	if n == 0 {
		return cur, 0
	}
	if m != 0 {
		n |= matchBit
	}
	if cur.gen == t.gen {
		cur.trans.store(cl, n)
	}
	return cur, n
}
