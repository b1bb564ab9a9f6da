package sa

import (
	"encoding/binary"
	"regexp/syntax"
	"slices"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// dfa is a lazily built deterministic automaton that answers "does the
// regex match anywhere in this text" in one table lookup per byte.
// Go's regexp has no DFA; its NFA costs a pass over every live thread per
// byte, which for the large alternations of the obfuscation rules is
// hundreds of steps. States are sets of program counters of the RE2
// program, built on first use and cached; empty-width assertions (^ $ \b
// \A \z) are resolved at each step from the previous and the next byte, as
// RE2 does. When the cache grows past maxDFAStates the automaton gives up
// and the caller uses the regexp.
type dfa struct {
	once sync.Once
	tree *syntax.Regexp // compiled on first use (startup stays fast)
	// build, when set, parses tree again: a daemon never runs most
	// rules' own automata (their groups' or their literals' screens
	// say no first), and the parsed trees of all of them took more
	// memory than the automata built; see release.
	build func() *syntax.Regexp
	prog  prog
	start uint32
	// anchored: matches start only where the search starts (no thread
	// from the start at later bytes): a regex that begins with \A, or
	// the automaton of anchoredAt. A state without threads is then dead
	// and the search stops there.
	anchored bool
	// wantAnchored asks init for an anchored automaton.
	wantAnchored bool
	mu           sync.Mutex
	// class maps each byte (and badRune) to its class: bytes that no
	// instruction, no empty-width test and no line or word boundary
	// tells apart share one, so a state's row has one entry per class,
	// not per byte.
	class  [badRune + 1]uint8
	nclass int32
	tab    atomic.Pointer[dtable]
	failed atomic.Bool
	// used says a search ran since the last reset that dropped what
	// went unused (see cache.makeRoom).
	used atomic.Bool
	// scanned counts the bytes matched since the cache was last flushed:
	// a full cache is flushed and rebuilt (as RE2 does) when it served
	// enough bytes since, else the automaton gives up.
	scanned atomic.Int64
	// cache is the engine's budget for the tables (nil: none).
	cache *cache
	key   []byte // state's scratch space, used under mu
}

// dtable is the automaton's table (see table).
type dtable struct {
	table
	// end is, for each state, whether the regex matches at the end of
	// the text in it: 0 not known yet, 1 no match, 2 match. Allocated at
	// the table's full size and never resliced (read without the lock).
	end []atomic.Int32
	// starts are the start states after a previous byte of each flag
	// (matchAt from inside a text), 0 until built.
	starts [prevWord << 1]int32
}

// A state's key (see stateSet) is what the previous byte was (a flag),
// then the threads waiting to consume a byte (see keyPCs).

// keyPCs appends to pcs the threads of a state's key (the key holds
// them once; the state needs them only to make a transition).
func keyPCs(pcs []uint32, key []byte) []uint32 { return keyPCsAt(pcs, key, 1) }

// keyPCsAt is keyPCs for threads from byte i of the key on.
func keyPCsAt(pcs []uint32, key []byte, i int) []uint32 {
	prev := int64(0)
	for i < len(key) {
		// binary.Varint, inlined.
		var u uint64
		var sh uint
		for i < len(key) {
			b := key[i]
			i++
			u |= uint64(b&0x7f) << sh
			if b < 0x80 {
				break
			}
			sh += 7
		}
		prev += int64(u>>1) ^ -int64(u&1)
		pcs = append(pcs, uint32(prev))
	}
	return pcs
}

// appendKeyPCs appends threads to a state's key: each as the zig-zag
// varint of its difference from the one before. The threads of a state
// are sorted and close together, so most take one byte, where four
// bytes each made the keys (held by the cache's index) as big as the
// transition tables.
func appendKeyPCs(key []byte, pcs []uint32) []byte {
	prev := int64(0)
	for _, pc := range pcs {
		key = binary.AppendVarint(key, int64(pc)-prev)
		prev = int64(pc)
	}
	return key
}

const (
	// matchID is the target of every transition on which a match ends;
	// state 0 is unused (an unknown transition reads 0) and 1 is the start.
	matchID = -1
	startID = 1
	// deadID is the target of a transition of an anchored automaton to
	// the state without threads: no match can follow.
	deadID = -2
)

const (
	prevStart uint8 = 1 << iota // no byte yet
	prevNL
	prevWord

	maxDFAStates = 8000
)

// flushBytesPerState: see dfa.state (a variable for the tests).
var flushBytesPerState int64 = 50

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// lazyDFA returns an automaton for a parsed regex, built on first use.
func lazyDFA(re *syntax.Regexp) *dfa {
	return &dfa{tree: re}
}

// lazyDFAOf is lazyDFA for a tree that build can make again.
func lazyDFAOf(re *syntax.Regexp, build func() *syntax.Regexp) *dfa {
	return &dfa{tree: re, build: build}
}

// anchoredDFA returns an automaton, built on first use from build's tree,
// for the matches that start where the search does.
func anchoredDFA(build func() *syntax.Regexp) *dfa {
	return &dfa{build: build, wantAnchored: true}
}

// release drops the parsed tree when it can be made again on first use.
func (d *dfa) release() {
	if d != nil && d.build != nil {
		d.tree = nil
	}
}

func (d *dfa) init() {
	tree := d.tree
	if tree == nil && d.build != nil {
		tree = d.build()
	}
	d.tree = nil
	if tree == nil {
		d.failed.Store(true)
		return
	}
	sp, err := syntax.Compile(tree.Simplify())
	if err != nil {
		d.failed.Store(true)
		return
	}
	d.start = d.prog.add(sp, 0)
	d.prog.done()
	// A program that needs the start of the text matches only there.
	d.anchored = d.wantAnchored || sp.StartCond()&syntax.EmptyBeginText != 0
	class, n := d.prog.byteClasses()
	d.class, d.nclass = class, int32(n)
	d.tab.Store(d.newTable(0, 16))
}

// startKey is the key of the start state after a previous byte of flag
// f: an anchored automaton holds the start thread itself, an unanchored
// one adds it at every step.
func (d *dfa) startKey(f uint8) []byte {
	k := []byte{f}
	if d.anchored {
		k = appendKeyPCs(k, []uint32{d.start})
	}
	return k
}

// newTable returns an empty table of generation gen, with room for n
// states, holding the start state; the budget counts it.
func (d *dfa) newTable(gen, n int) *dtable {
	t := &dtable{end: make([]atomic.Int32, n)}
	t.gen, t.trans, t.st = gen, newEntries(n*int(d.nclass)), newStateSet(n)
	t.st.add(d.startKey(prevStart), 0)
	b := tableBytes + d.rowsBytes(n) + t.st.size()
	t.bytes.Store(b)
	d.cache.add(b)
	return t
}

// rowsBytes is what the rows of n states take (transitions and end).
func (d *dfa) rowsBytes(n int) int64 {
	return int64(len(newEntries(n*int(d.nclass))))*4 + int64(n)*4
}

// replace starts a new table in place of t (flushing it). Called under mu.
func (d *dfa) replace(t *dtable, n int) *dtable {
	d.cache.add(-t.bytes.Load())
	d.scanned.Store(0)
	t = d.newTable(t.gen+1, n)
	d.tab.Store(t)
	return t
}

// drop flushes the table and the program of an automaton unused for a
// budget's worth of new states (or given up): it may not run again for a
// long time. Called under mu.
func (d *dfa) drop() {
	d.dropProg()
	t := d.tab.Load()
	if t.st.n() <= 2 { // nothing else to free
		return
	}
	d.cache.flushed()
	d.replace(t, flushedRoom)
	d.dropScratch()
}

// dropProg lets the program go when build can make it again (see
// reload): a reset drops the programs of the automata unused for a
// budget's worth of new states (or given up for good) with their
// tables. The programs are not counted in the budget: the automata in
// use need theirs, and a budget that counted them would reset more often
// for nothing it could free. Its byte classes stay: the program made
// again is the same. Called under mu.
func (d *dfa) dropProg() {
	if d.build == nil || d.prog.inst == nil {
		return
	}
	if d.cache != nil {
		d.cache.progs.Add(1)
	}
	d.prog = prog{}
	d.dropScratch()
}

// reload makes the program again after dropProg. Called under mu.
func (d *dfa) reload() {
	if d.prog.inst != nil {
		return
	}
	sp, err := syntax.Compile(d.build().Simplify())
	if err != nil {
		panic("sa: a regex that compiled no longer does: " + err.Error())
	}
	d.prog.add(sp, 0)
	d.prog.done()
}

// state returns the number of the state (pcs, flag) in the current table,
// adding it; 0 when the cache is full and the automaton gives up. Adding
// may grow or flush the table. Called under mu.
func (d *dfa) state(pcs []uint32, flag uint8) int32 {
	key := appendKeyPCs(append(d.key[:0], flag), pcs)
	d.key = key
	t := d.tab.Load()
	if id := t.st.find(key); id != 0 {
		return id
	}
	cost := stateBytes(len(key))
	if t.st.n() == len(t.end) {
		cost += d.rowsBytes(grownSize(len(t.end))) - d.rowsBytes(len(t.end))
	}
	if d.cache.over(cost) {
		// Past the engine's budget: trim every table, this one too.
		d.cache.makeRoom(d, nil)
		t = d.tab.Load()
		if id := t.st.find(key); id != 0 {
			return id
		}
	}
	if t.st.n() > maxDFAStates {
		// A long-running daemon fills any cache in the end: flush it
		// when it has served flushBytesPerState bytes per state since
		// the last flush; texts that need a new state every few bytes
		// make the automaton give up (the regexp runs instead).
		// Matchers still in the old table finish there or move over
		// at their next unknown transition.
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
	if t.st.n() == len(t.end) {
		// Grow by copy; the state numbers stay.
		n := grownSize(len(t.end))
		g := &dtable{end: make([]atomic.Int32, n)}
		g.gen, g.trans, g.st = t.gen, newEntries(n*int(d.nclass)), t.st
		g.trans.copyFrom(t.trans)
		for i := range t.end {
			g.end[i].Store(t.end[i].Load())
		}
		for f := range t.starts {
			g.starts[f] = atomic.LoadInt32(&t.starts[f])
		}
		g.bytes.Store(t.bytes.Load() + t.grow(n, d.rowsBytes(n)-d.rowsBytes(len(t.end)), d.cache))
		t = g
		d.tab.Store(t)
	}
	return t.add(key, d.cache)
}

// inst is an instruction as the automata read it: syntax.Inst takes 40
// bytes and a rune list, where the automata only ever ask which bytes
// (runes 0..255, see latin1) a rune instruction matches. For a rune
// instruction arg is the number of that byte set in prog.sets; for
// InstMatch, the number of the regex (mdfa); else as in syntax.Inst.
// The op shares a word with out: 8 bytes an instruction, not 12 (the
// programs are most of what a warm engine holds besides its tables).
type inst struct {
	opOut uint32 // op<<outBits | out
	arg   uint32
}

// outBits bounds a program to 1<<28 instructions (2 GB of them).
const outBits = 28

// Every op fits in the bits above out.
var _ [1<<(32-outBits) - 1 - int(syntax.InstRuneAnyNotNL)]struct{}

func (i *inst) op() syntax.InstOp { return syntax.InstOp(i.opOut >> outBits) }
func (i *inst) out() uint32       { return i.opOut & (1<<outBits - 1) }

// byteSet is a set of bytes, one bit each, and badRune.
type byteSet [5]uint64

// badRune is the symbol the automata read where the text holds no byte-
// rune (see byteRune): a byte that is not UTF-8, as where chunks cut a
// latin1 pair in two, or U+FFFD itself. The regexp reads each as
// U+FFFD, so an instruction matches badRune when it matches U+FFFD.
const badRune = 256

func (b *byteSet) has(c int) bool { return b[c>>6]>>(c&63)&1 != 0 }

// prog is one or more compiled programs, concatenated, with the distinct
// byte sets of their rune instructions.
type prog struct {
	inst  []inst
	sets  []byteSet
	index map[byteSet]uint32 // while adding
}

// add appends sp, its InstMatch naming regex match, and returns its
// start.
func (p *prog) add(sp *syntax.Prog, match uint32) (start uint32) {
	if p.index == nil {
		p.index = map[byteSet]uint32{}
	}
	off := uint32(len(p.inst))
	p.inst = slices.Grow(p.inst, len(sp.Inst))
	for i := range sp.Inst {
		in := &sp.Inst[i]
		if in.Out+off >= 1<<outBits {
			panic("sa: program too big")
		}
		n := inst{opOut: uint32(in.Op)<<outBits | (in.Out + off), arg: in.Arg}
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			n.arg += off
		case syntax.InstMatch:
			n.arg = match
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			b := byteSetOf(in)
			id, ok := p.index[b]
			if !ok {
				id = uint32(len(p.sets))
				p.index[b] = id
				p.sets = append(p.sets, b)
			}
			n.arg = id
		}
		p.inst = append(p.inst, n)
	}
	return off + uint32(sp.Start)
}

// byteSetOf is the set of bytes (runes 0..255) and badRune (U+FFFD) that
// the rune instruction in matches: in.MatchRune asked for each of them, computed from its
// ranges instead, since programs are compiled again after every budget
// reset and the largest rules have tens of thousands of instructions.
func byteSetOf(in *syntax.Inst) byteSet {
	var b byteSet
	set := func(r rune) {
		switch {
		case r >= 0 && r < 256:
			b[r>>6] |= 1 << (r & 63)
		case r == utf8.RuneError:
			b[badRune>>6] |= 1 << (badRune & 63)
		}
	}
	switch in.Op {
	case syntax.InstRuneAny:
		return byteSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), 1}
	case syntax.InstRuneAnyNotNL:
		b = byteSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), 1}
		b[0] &^= 1 << '\n'
		return b
	}
	runes := in.Rune
	if len(runes) == 1 {
		// As MatchRunePos: a single rune, with its case folds when the
		// instruction folds case.
		r0 := runes[0]
		set(r0)
		if syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
			for r := unicode.SimpleFold(r0); r != r0; r = unicode.SimpleFold(r) {
				set(r)
			}
		}
		return b
	}
	for i := 0; i+1 < len(runes); i += 2 {
		for r := runes[i]; r <= min(runes[i+1], 255); r++ {
			set(r)
		}
		if runes[i] <= utf8.RuneError && utf8.RuneError <= runes[i+1] {
			set(utf8.RuneError)
		}
	}
	return b
}

// done drops what only add needs and the spare capacity.
func (p *prog) done() {
	p.index = nil
	p.inst = slices.Clip(p.inst)
	p.sets = slices.Clip(p.sets)
}

// entries are a table's transitions, 16 bits each (a state number, 0 or
// matchID), two to a word: the tables are most of a warm engine's
// memory, and sync/atomic has no 16-bit load.
type entries []uint32

// A state number must fit in 15 bits.
var _ [1<<15 - (maxDFAStates + 2)]struct{}

func newEntries(n int) entries {
	return make(entries, (n+1)/2)
}

// load reads entry i; safe without the lock.
func (e entries) load(i int32) int32 {
	return int32(int16(atomic.LoadUint32(&e[i>>1]) >> (uint(i&1) * 16)))
}

// store writes entry i; called under the automaton's lock (the other
// half of the word is written by lock holders only).
func (e entries) store(i, v int32) {
	p := &e[i>>1]
	sh := uint(i&1) * 16
	atomic.StoreUint32(p, atomic.LoadUint32(p)&^(0xffff<<sh)|uint32(uint16(v))<<sh)
}

// keepRows copies into e (a new table's entries) the rows of the states
// startID..k-1 of from, nc entries each; a transition to a state not
// kept (target(entry) >= k) is unknown again.
func (e entries) keepRows(from entries, k, nc int32, target func(int32) int32) {
	for i := startID * nc; i < k*nc; i++ {
		if n := from.load(i); n != 0 && target(n) < k {
			e.store(i, n)
		}
	}
}

// copyFrom copies a table's entries into a grown one (e).
func (e entries) copyFrom(from entries) {
	for i := range from {
		e[i] = atomic.LoadUint32(&from[i])
	}
}

// grownSize is the room for states of a full table of n: a quarter more,
// not double (most automata stop growing early; a warm engine's tables
// were a third empty), for a few more copies while warming up.
func grownSize(n int) int {
	return n + max(n/4, 16)
}

// byteClasses partitions the bytes and badRune into classes that the
// program cannot tell apart: the same rune instructions match them, and
// they agree on being a newline and a word byte (the empty-width tests).
func (p *prog) byteClasses() (class [badRune + 1]uint8, n int) {
	var id [badRune + 1]int
	for c := range badRune {
		switch {
		case c == '\n':
			id[c] = 2
		case isWordByte(byte(c)):
			id[c] = 1
		}
	}
	for i := range p.sets {
		b := &p.sets[i]
		// Split every class by whether the set holds the byte.
		var split [2 * (badRune + 1)]int16 // class*2+match -> new class+1
		next := int16(0)
		for c := range badRune + 1 {
			k := id[c]*2 + b2i(b.has(c))
			if split[k] == 0 {
				next++
				split[k] = next
			}
			id[c] = int(split[k] - 1)
		}
	}
	// Number the classes densely (the splits already did).
	for c := range badRune + 1 {
		class[c] = uint8(id[c])
		n = max(n, id[c]+1)
	}
	return class, n
}

// empty returns the empty-width conditions between the previous byte
// (flag) and the next byte c (c < 0: end of text).
func empty(flag uint8, c int) syntax.EmptyOp {
	var op syntax.EmptyOp
	if flag&prevStart != 0 {
		op |= syntax.EmptyBeginText | syntax.EmptyBeginLine
	}
	if flag&prevNL != 0 {
		op |= syntax.EmptyBeginLine
	}
	if c < 0 {
		op |= syntax.EmptyEndText | syntax.EmptyEndLine
	} else if c == '\n' {
		op |= syntax.EmptyEndLine
	}
	nextWord := c >= 0 && c < badRune && isWordByte(byte(c))
	if (flag&prevWord != 0) != nextWord {
		op |= syntax.EmptyWordBoundary
	} else {
		op |= syntax.EmptyNoWordBoundary
	}
	return op
}

// step follows the threads of s, plus a new one from the start (the
// search is unanchored), through the empty-width instructions allowed
// before byte c; it reports a match reached there and, for c >= 0, the
// threads after consuming c (in sc, valid until its next step).
func (d *dfa) step(sc *stepScratch, key []byte, c int) (matched bool, out []uint32) {
	op := empty(key[0], c)
	d.reload() // dropped by a reset, if at all
	gen, seen := sc.begin(len(d.prog.inst))
	stack := sc.stack[:0]
	if !d.anchored {
		stack = append(stack, d.start)
	}
	stack = keyPCs(stack, key)
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
			matched = true
		case syntax.InstFail:
		default: // rune instructions
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

// flagAfter is the flag of the previous symbol c (a byte or badRune,
// which is neither a newline nor a word byte).
func flagAfter(c int) uint8 {
	var f uint8
	if c == '\n' {
		f |= prevNL
	}
	if c < badRune && isWordByte(byte(c)) {
		f |= prevWord
	}
	return f
}

// byteRune reads the rune at the start of s, s[0] >= 0x80, as the
// automata do: the byte a latin1 pair (C2 xx or C3 xx) stands for, or
// badRune where the regexp reads U+FFFD (a byte that starts no UTF-8
// sequence, or U+FFFD itself); size is the bytes read, 0 for a rune
// above U+00FF, which the automata cannot read (the caller gives up).
func byteRune(s string) (c, size int) {
	if (s[0] == 0xc2 || s[0] == 0xc3) && len(s) > 1 && s[1]&0xc0 == 0x80 {
		return int(s[0]&0x1f)<<6 | int(s[1]&0x3f), 2
	}
	if r, n := utf8.DecodeRuneInString(s); r == utf8.RuneError {
		return badRune, n
	}
	return 0, 0
}

// match reports whether the regex matches somewhere in text, a string of
// byte-runes (see latin1: ASCII, or U+0080..U+00FF as two UTF-8 bytes);
// the automaton steps on the byte each rune stands for, and on badRune
// where the regexp reads U+FFFD (chunks cuts a long paragraph at a byte
// count, at times inside a pair). ok is false when it gave up.
func (d *dfa) match(text string) (matched, ok bool) {
	return d.matchAt(text, 0)
}

// matchAt is match for the matches that start at byte p or later (p at a
// rune boundary); the byte before p counts for ^ and \b.
func (d *dfa) matchAt(text string, p int) (matched, ok bool) {
	matched, ok, _ = d.scanAt(text, p)
	return matched, ok
}

// scanAt is matchAt that also says where it stopped: the end of the
// match, of the text, or of the dead state's byte (anchored).
// matchWithin is matchAt from p for a text where every match ends by
// hi: the scan stops past hi (the byte after a match decides its end's
// empty-width conditions; a rune's more bytes as margin).
func (d *dfa) matchWithin(text string, p, hi int) (matched, ok bool) {
	matched, ok, _ = d.scanTo(text, p, hi+1+utf8.UTFMax)
	return matched, ok
}

func (d *dfa) scanAt(text string, p int) (matched, ok bool, end int) {
	return d.scanTo(text, p, len(text))
}

// scanTo is scanAt that stops, without a match, before byte stop.
func (d *dfa) scanTo(text string, p, stop int) (matched, ok bool, end int) {
	if stop >= len(text) {
		stop = len(text)
	}
	if dbgOn {
		defer func() { dbgScan(end - p) }()
	}
	d.once.Do(d.init)
	if d.failed.Load() {
		return false, false, p
	}
	if !d.used.Load() {
		d.used.Store(true)
	}
	d.scanned.Add(int64(stop - p))
	t := d.tab.Load()
	s := int32(startID)
	if p > 0 {
		f := uint8(0)
		if c := text[p-1]; c < 0x80 {
			f = flagAfter(int(c))
		}
		if t, s = d.startAfter(t, f); s == 0 {
			return false, false, p
		}
	}
	trans := t.trans
	nc := d.nclass
	for i := p; i < stop; i++ {
		// cl is the class of symbol c, read by the byte (no bounds
		// check) but where c is not ASCII.
		b := text[i]
		cl, c := d.class[b], int(b)
		if b >= 0x80 {
			// latin1 writes 0x80..0xff as C2 xx or C3 xx.
			var size int
			if c, size = byteRune(text[i:]); size == 0 {
				return false, false, i
			}
			cl = d.class[c]
			i += size - 1
		}
		n := trans.load(s*nc + int32(cl))
		if n == 0 {
			if t, n = d.fillLocked(t, s, c); n == 0 {
				return false, false, i
			}
			trans = t.trans
		}
		if n < 0 {
			return n == matchID, true, i + 1
		}
		s = n
	}
	if stop < len(text) {
		return false, true, stop
	}
	m := d.atEnd(t, s)
	return m, true, len(text)
}

// atEnd reports whether the regex matches at the end of the text in
// state s of table t.
func (d *dfa) atEnd(t *dtable, s int32) bool {
	switch t.end[s].Load() {
	case 1:
		return false
	case 2:
		return true
	}
	sc := getStepScratch()
	d.mu.Lock()
	m, _ := d.step(sc, t.st.key(s), -1)
	d.mu.Unlock()
	stepScratches.Put(sc)
	t.end[s].Store(1 + int32(b2i(m)))
	return m
}

// startAfter returns the start state after a previous byte of flag f
// (not the start of the text), building it; 0 when the automaton gives
// up.
func (d *dfa) startAfter(t *dtable, f uint8) (*dtable, int32) {
	s := atomic.LoadInt32(&t.starts[f])
	if s == 0 {
		d.mu.Lock()
		s = d.state(keyPCs(nil, d.startKey(f)), f)
		t = d.tab.Load()
		if s != 0 {
			atomic.StoreInt32(&t.starts[f], s)
		}
		d.mu.Unlock()
	}
	return t, s
}

// scanBack is scanAt for the automaton of a reversed regex (see
// reverseTree) run on the text before q, backwards: it reports whether
// the regex matches a text that ends at q. The byte at q is the one
// before the search (for \b and $, which the reversal made ^), the start
// of the text its end. The text before q must be byte-runes: ASCII and
// latin1 pairs only (a backward read of other bytes need not cut them
// into the runes a forward read does); end is where it stopped.
func (d *dfa) scanBack(text string, q int) (matched, ok bool, end int) {
	d.once.Do(d.init)
	if d.failed.Load() {
		return false, false, q
	}
	if !d.used.Load() {
		d.used.Store(true)
	}
	d.scanned.Add(int64(q))
	t := d.tab.Load()
	s := int32(startID)
	if q < len(text) {
		f := uint8(0)
		if c := text[q]; c < 0x80 {
			f = flagAfter(int(c))
		}
		if t, s = d.startAfter(t, f); s == 0 {
			return false, false, q
		}
	}
	trans := t.trans
	nc := d.nclass
	for i := q; i > 0; i-- {
		b := text[i-1]
		cl, c := d.class[b], int(b)
		if b >= 0x80 {
			if i < 2 || text[i-2] != 0xc2 && text[i-2] != 0xc3 || b&0xc0 != 0x80 {
				return false, false, i
			}
			i--
			c = int(text[i-1]&0x1f)<<6 | int(b&0x3f)
			cl = d.class[c]
		}
		n := trans.load(s*nc + int32(cl))
		if n == 0 {
			if t, n = d.fillLocked(t, s, c); n == 0 {
				return false, false, i
			}
			trans = t.trans
		}
		if n < 0 {
			return n == matchID, true, i - 1
		}
		s = n
	}
	return d.atEnd(t, s), true, 0
}

// fillLocked is fill under the lock (the searches' slow path, apart so
// that their loops stay small).
func (d *dfa) fillLocked(t *dtable, s int32, c int) (*dtable, int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fill(t, s, c)
}

// fill returns the transition from state s of table t on symbol c (a
// byte or badRune), in the current table, computing it when unknown; 0
// when the automaton gives up. Called under mu.
func (d *dfa) fill(t *dtable, s int32, c int) (*dtable, int32) {
	cl := s*d.nclass + int32(d.class[c])
	if cur := d.tab.Load(); cur != t {
		if cur.gen != t.gen {
			// Flushed since: find the state in the new table.
			key := t.st.key(s)
			s = d.state(keyPCs(nil, key), key[0])
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
	if m {
		t.trans.store(cl, matchID)
		return t, matchID
	}
	if d.anchored && len(pcs) == 0 {
		t.trans.store(cl, deadID)
		return t, deadID
	}
	n := d.state(pcs, flagAfter(c))
	cur := d.tab.Load()
	if n != 0 && cur.gen == t.gen {
		cur.trans.store(cl, n)
	}
	return cur, n
}
