package sa

import (
	"regexp/syntax"
	"slices"
	"sync"
	"sync/atomic"
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
	once   sync.Once
	tree   *syntax.Regexp // compiled on first use (startup stays fast)
	prog   *syntax.Prog
	mu     sync.Mutex
	states map[string]*dstate
	// class maps each byte to its class: bytes that no instruction, no
	// empty-width test and no line or word boundary tells apart share
	// one, so a state's table has one entry per class, not per byte.
	class  [256]uint8
	nclass int
	start  atomic.Pointer[dstate] // before the first byte
	failed atomic.Bool
	// scanned counts the bytes matched since the cache was last flushed:
	// a full cache is flushed and rebuilt (as RE2 does) when it served
	// enough bytes since, else the automaton gives up.
	scanned atomic.Int64
	// Scratch space of step, used under mu: seen[pc] == gen marks the
	// instructions visited in the current step.
	seen  []uint32
	gen   uint32
	stack []uint32
	next  []uint32
	key   []byte
}

type dstate struct {
	pcs  []uint32                 // threads waiting to consume a byte
	flag uint8                    // what the previous byte was
	next []atomic.Pointer[dstate] // per byte class; matchState: a match ends before that byte
	end  atomic.Int32             // at end of text: 0 not known yet, 1 no match, 2 match
}

// matchState is the target of every transition on which a match ends.
var matchState = &dstate{}

const (
	prevStart uint8 = 1 << iota // no byte yet
	prevNL
	prevWord

	maxDFAStates = 2000
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

func (d *dfa) init() {
	prog, err := syntax.Compile(d.tree.Simplify())
	d.tree = nil
	if err != nil {
		d.failed.Store(true)
		return
	}
	d.prog, d.states = prog, map[string]*dstate{}
	d.class, d.nclass = byteClasses(prog)
	st := d.state(nil, prevStart)
	if st == nil {
		d.failed.Store(true)
		return
	}
	d.start.Store(st)
}

func (d *dfa) state(pcs []uint32, flag uint8) *dstate {
	key := append(d.key[:0], flag)
	for _, pc := range pcs {
		key = append(key, byte(pc), byte(pc>>8), byte(pc>>16), byte(pc>>24))
	}
	d.key = key
	if s, ok := d.states[string(key)]; ok {
		return s
	}
	pcs = slices.Clone(pcs)
	if len(d.states) >= maxDFAStates {
		// A long-running daemon fills any cache in the end: flush it
		// when it has served flushBytesPerState bytes per state since
		// the last flush; texts that need a new state every few bytes
		// make the automaton give up (the regexp runs instead). States
		// in use elsewhere stay valid: a flush only stops sharing them.
		if d.scanned.Load() < flushBytesPerState*maxDFAStates || d.start.Load() == nil {
			d.failed.Store(true)
			return nil
		}
		d.scanned.Store(0)
		d.states = map[string]*dstate{}
		st := d.newState(nil, prevStart)
		d.states[string([]byte{prevStart})] = st
		d.start.Store(st)
		if flag == prevStart && len(pcs) == 0 {
			return st
		}
	}
	s := d.newState(pcs, flag)
	d.states[string(key)] = s
	return s
}

func (d *dfa) newState(pcs []uint32, flag uint8) *dstate {
	return &dstate{pcs: pcs, flag: flag, next: make([]atomic.Pointer[dstate], d.nclass)}
}

// byteClasses partitions the bytes into classes that the program cannot
// tell apart: the same rune instructions match them, and they agree on
// being a newline and a word byte (the empty-width tests).
func byteClasses(prog *syntax.Prog) (class [256]uint8, n int) {
	var id [256]int
	for c := range 256 {
		switch {
		case c == '\n':
			id[c] = 2
		case isWordByte(byte(c)):
			id[c] = 1
		}
	}
	seen := map[string]bool{}
	var key []byte
	for i := range prog.Inst {
		in := &prog.Inst[i]
		switch in.Op {
		case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		default:
			continue
		}
		key = append(key[:0], byte(in.Op), byte(in.Arg))
		for _, r := range in.Rune {
			key = utf8.AppendRune(append(key, '|'), r)
		}
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		// Split every class by whether the instruction matches.
		split := map[[2]int]int{}
		for c := range 256 {
			k := [2]int{id[c], b2i(in.MatchRune(rune(c)))}
			v, ok := split[k]
			if !ok {
				v = len(split)
				split[k] = v
			}
			id[c] = v
		}
	}
	// Number the classes densely (the splits already did).
	for c := range 256 {
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
	nextWord := c >= 0 && isWordByte(byte(c))
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
// threads after consuming c (scratch space, valid until the next step).
func (d *dfa) step(s *dstate, c int) (matched bool, out []uint32) {
	op := empty(s.flag, c)
	if d.seen == nil {
		d.seen = make([]uint32, len(d.prog.Inst))
	}
	d.gen++
	if d.gen == 0 { // wrapped: forget every old mark
		clear(d.seen)
		d.gen = 1
	}
	gen, seen := d.gen, d.seen
	stack := append(append(d.stack[:0], uint32(d.prog.Start)), s.pcs...)
	next := d.next[:0]
	for len(stack) > 0 {
		pc := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pc] == gen {
			continue
		}
		seen[pc] = gen
		in := &d.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			stack = append(stack, in.Arg, in.Out)
		case syntax.InstCapture, syntax.InstNop:
			stack = append(stack, in.Out)
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(in.Arg)&^op == 0 {
				stack = append(stack, in.Out)
			}
		case syntax.InstMatch:
			matched = true
		case syntax.InstFail:
		default: // rune instructions
			if c >= 0 && in.MatchRune(rune(c)) {
				next = append(next, in.Out)
			}
		}
	}
	d.stack, d.next = stack, next
	slices.Sort(next)
	out = next[:0]
	for i, pc := range next {
		if i == 0 || pc != next[i-1] {
			out = append(out, pc)
		}
	}
	return matched, out
}

func flagAfter(c byte) uint8 {
	var f uint8
	if c == '\n' {
		f |= prevNL
	}
	if isWordByte(c) {
		f |= prevWord
	}
	return f
}

// match reports whether the regex matches somewhere in text, a string of
// byte-runes (see latin1: ASCII, or U+0080..U+00FF as two UTF-8 bytes);
// the automaton steps on the byte each rune stands for. ok is false when
// it gave up.
func (d *dfa) match(text string) (matched, ok bool) {
	d.once.Do(d.init)
	if d.failed.Load() {
		return false, false
	}
	d.scanned.Add(int64(len(text)))
	s := d.start.Load()
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c >= 0x80 {
			// latin1 writes 0x80..0xff as C2 xx or C3 xx.
			if (c != 0xc2 && c != 0xc3) || i+1 >= len(text) || text[i+1]&0xc0 != 0x80 {
				return false, false
			}
			c = (c&0x1f)<<6 | text[i+1]&0x3f
			i++
		}
		cl := d.class[c]
		n := s.next[cl].Load()
		if n == nil {
			d.mu.Lock()
			m, pcs := d.step(s, int(c))
			if m {
				n = matchState
			} else {
				n = d.state(pcs, flagAfter(c))
			}
			if n != nil {
				s.next[cl].Store(n)
			}
			d.mu.Unlock()
			if n == nil {
				return false, false
			}
		}
		if n == matchState {
			return true, true
		}
		s = n
	}
	switch s.end.Load() {
	case 1:
		return false, true
	case 2:
		return true, true
	}
	d.mu.Lock()
	m, _ := d.step(s, -1)
	d.mu.Unlock()
	s.end.Store(1 + int32(b2i(m)))
	return m, true
}
