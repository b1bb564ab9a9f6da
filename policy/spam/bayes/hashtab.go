package bayes

import "math/bits"

// tokenTab is Table's in-memory token table: an open-addressing hash
// table of (64-bit token hash, spam count, ham count) slots, 16 bytes
// each, probed linearly. A Go map of the same entries costs ~40 bytes a
// token (its groups are sized in powers of two and half empty after each
// doubling); here the slot array is sized to the token count at a load
// factor of at most maxLoad (grown by half when full, fitted once a load
// is done), ~19 bytes a token, and a lookup is one multiply and, nearly
// always, one cache line.
//
// Hash 0 marks an empty slot: a token hashing to 0 is kept as 1 (one more
// collision in 2⁶⁴). A token whose counts fall to 0 keeps its slot (it
// reads as absent, as it should); the table is rebuilt without them when
// they are a quarter of it.
type tokenTab struct {
	slots []tokSlot
	n     int // used slots
	zeros int // used slots with both counts 0
}

type tokSlot struct {
	h uint64
	p packed
}

const maxLoad = 0.85

func keyOf(h uint64) uint64 { return h | b2u(h == 0) }

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// home is the first slot probed for h: h scaled onto [0, len(slots)).
func (t *tokenTab) home(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(t.slots)))
	return int(hi)
}

// get returns h's counts (zero when absent).
func (t *tokenTab) get(h uint64) packed {
	if len(t.slots) == 0 {
		return packed{}
	}
	h = keyOf(h)
	for i := t.home(h); ; {
		s := &t.slots[i]
		if s.h == h {
			return s.p
		}
		if s.h == 0 {
			return packed{}
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// set stores h's counts.
func (t *tokenTab) set(h uint64, p packed) {
	if float64(t.n+1) > maxLoad*float64(len(t.slots)) {
		t.resize(max(16, len(t.slots)+len(t.slots)/2))
	}
	h = keyOf(h)
	i := t.home(h)
	for {
		s := &t.slots[i]
		if s.h == h {
			t.zeros += int(b2u(p == packed{})) - int(b2u(s.p == packed{}))
			s.p = p
			break
		}
		if s.h == 0 {
			if p == (packed{}) {
				return // absent already
			}
			*s = tokSlot{h, p}
			t.n++
			break
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
	if t.zeros > 0 && t.zeros >= t.n/4 && t.n >= 64 {
		t.fit()
	}
}

// fit resizes the table to its live tokens at the full load factor,
// dropping the zeroed ones.
func (t *tokenTab) fit() {
	t.resize(max(16, int(float64(t.n-t.zeros)/maxLoad)+1))
}

func (t *tokenTab) resize(size int) {
	old := t.slots
	t.slots = make([]tokSlot, size)
	t.n, t.zeros = 0, 0
	for _, s := range old {
		if s.h == 0 || s.p == (packed{}) {
			continue
		}
		i := t.home(s.h)
		for t.slots[i].h != 0 {
			if i++; i == len(t.slots) {
				i = 0
			}
		}
		t.slots[i] = s
		t.n++
	}
}

// len is the number of tokens with a count.
func (t *tokenTab) len() int { return t.n - t.zeros }
