package sa

import "slices"

// automaton is an Aho-Corasick automaton over bytes, matching ASCII
// case-insensitively (patterns are lower case; the text is lowered byte
// by byte while scanning). The states near the root, where a scan spends
// nearly all its time, have a dense row of transitions over byte classes
// (bytes that occur in no pattern share class 0); the deep ones, most
// of the states and with one child each as a rule, keep only their trie
// edges and their fail link. States are numbered breadth first: the
// dense ones are 0..ndense-1.
type automaton struct {
	class   [256]uint8
	nclass  int
	ndense  int32
	delta   []int32  // dense state*nclass + class -> state, or nil
	delta16 []uint16 // the same, when every state fits in 16 bits
	// Deep state s (k = s-ndense): its trie edges are
	// edgeClass/edgeTo[first[k]:first[k+1]], its fail link fail[k].
	first     []int32
	edgeClass []uint8
	edgeTo    []int32
	fail      []int32
	// The patterns that end in state s: outPat[outAt[s]:outAt[s+1]] (one
	// slice per state took 24 bytes of each, most of them empty).
	outAt   []int32
	outPat  []int32
	dict    []int32 // next state on the fail chain with output, or -1
	npat    int
	lengths []int
	emit    []bool // a state with output, itself or on its fail chain
}

// denseDepth is the depth of the deepest states with a dense row.
const denseDepth = 3

var lowerTable = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if i >= 'A' && i <= 'Z' {
			t[i] = byte(i + 'a' - 'A')
		}
	}
	return
}()

func newAutomaton(pats []string) *automaton {
	a := &automaton{npat: len(pats)}
	for _, p := range pats {
		a.lengths = append(a.lengths, len(p))
		for i := 0; i < len(p); i++ {
			c := lowerTable[p[i]]
			if a.class[c] == 0 {
				a.nclass++
				if a.nclass > 255 {
					a.nclass = 255
				}
				a.class[c] = uint8(a.nclass)
			}
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		a.class[c] = a.class[c+'a'-'A']
	}
	a.nclass++
	// Trie, built in the transition table itself: 0 is "no edge" (the
	// root is never a target), filled in below from the fail links.
	nc := a.nclass
	a.delta = make([]int32, nc, trieSize(pats)*nc)
	outs := [][]int32{nil} // by trie state, until the numbering
	for id, p := range pats {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := int(a.class[lowerTable[p[i]]])
			n := a.delta[int(s)*nc+c]
			if n == 0 {
				n = int32(len(outs))
				outs = append(outs, nil)
				a.delta = append(a.delta, make([]int32, nc)...)
				a.delta[int(s)*nc+c] = n
			}
			s = n
		}
		outs[s] = append(outs[s], int32(id))
	}
	n := len(outs)
	fail := make([]int32, n)
	dict := make([]int32, n)
	for i := range dict {
		dict[i] = -1
	}
	// BFS: a state's missing edges are its fail state's edges. The
	// order of the queue is the new numbering (newID); the deep
	// states' trie edges are recorded as they come, in that order.
	newID := make([]int32, n)
	depth := make([]uint8, n)
	order := make([]int32, 1, n)
	enqueue := func(t, parent int32) {
		newID[t] = int32(len(order))
		depth[t] = min(depth[parent], denseDepth) + 1
		order = append(order, t)
	}
	for c := 0; c < nc; c++ {
		if t := a.delta[c]; t != 0 {
			enqueue(t, 0)
		}
	}
	for q := 1; q < len(order); q++ {
		s := order[q]
		deep := depth[s] > denseDepth
		if deep {
			a.first = append(a.first, int32(len(a.edgeTo)))
		}
		row := a.delta[int(s)*nc : int(s+1)*nc]
		frow := a.delta[int(fail[s])*nc : int(fail[s]+1)*nc]
		for c := 0; c < nc; c++ {
			if t := row[c]; t != 0 {
				f := frow[c]
				fail[t] = f
				if len(outs[f]) > 0 {
					dict[t] = f
				} else {
					dict[t] = dict[f]
				}
				enqueue(t, s)
				if deep {
					a.edgeClass = append(a.edgeClass, uint8(c))
					a.edgeTo = append(a.edgeTo, newID[t])
				}
			} else {
				row[c] = frow[c]
			}
		}
	}
	// Renumber: dense rows first, then the deep states' links.
	nd := 0
	for nd < n && depth[order[nd]] <= denseDepth {
		nd++
	}
	a.ndense = int32(nd)
	a.first = append(a.first, int32(len(a.edgeTo)))
	a.fail = make([]int32, n-nd)
	for k := range a.fail {
		a.fail[k] = newID[fail[order[nd+k]]]
	}
	a.outAt = make([]int32, n+1)
	a.outPat = make([]int32, 0, len(pats))
	a.dict = make([]int32, n)
	a.emit = make([]bool, n)
	for i, s := range order {
		a.outPat = append(a.outPat, outs[s]...)
		a.outAt[i+1] = int32(len(a.outPat))
		a.dict[i] = -1
		if dict[s] >= 0 {
			a.dict[i] = newID[dict[s]]
		}
		a.emit[i] = len(outs[s]) > 0 || a.dict[i] >= 0
	}
	// The deep states' edges grew by append: keep only what they hold.
	a.first, a.edgeClass, a.edgeTo = slices.Clone(a.first), slices.Clone(a.edgeClass), slices.Clone(a.edgeTo)
	dense := make([]int32, nd*nc)
	for i := range nd {
		row := a.delta[int(order[i])*nc : int(order[i]+1)*nc]
		for c, t := range row {
			dense[i*nc+c] = newID[t]
		}
	}
	a.delta = dense
	if n <= maxStates16 {
		a.delta16 = make([]uint16, len(a.delta))
		for i, t := range a.delta {
			a.delta16[i] = uint16(t)
		}
		a.delta = nil
	}
	return a
}

// maxStates16 is the most states of an automaton with 16-bit entries (a
// variable for the tests).
var maxStates16 = 1 << 16

// trieSize bounds the number of trie nodes of pats: the root and one
// node per distinct prefix (in ASCII lower case).
func trieSize(pats []string) int {
	low := make([]string, len(pats))
	for i, p := range pats {
		low[i] = asciiLower(p)
	}
	slices.Sort(low)
	n := 1
	prev := ""
	for _, p := range low {
		l := 0
		for l < len(p) && l < len(prev) && p[l] == prev[l] {
			l++
		}
		n += len(p) - l
		prev = p
	}
	return n
}

// scan calls hit(pattern, end) for every occurrence in text.
func (a *automaton) scan(text string, hit func(pat int32, end int)) {
	if a == nil || a.npat == 0 {
		return
	}
	nd := a.ndense
	nc := int32(a.nclass)
	s := int32(0)
	for i := 0; i < len(text); i++ {
		c := a.class[text[i]]
		switch {
		case s >= nd:
			s = a.deepNext(s, c)
		case a.delta16 != nil:
			s = int32(a.delta16[s*nc+int32(c)])
		default:
			s = a.delta[s*nc+int32(c)]
		}
		if a.emit[s] {
			a.emitAt(s, i+1, hit)
		}
	}
}

// deepNext is the transition from deep state s on class c: its trie edge,
// else its fail state's transition.
func (a *automaton) deepNext(s int32, c uint8) int32 {
	for s >= a.ndense {
		k := s - a.ndense
		for e := a.first[k]; e < a.first[k+1]; e++ {
			if a.edgeClass[e] == c {
				return a.edgeTo[e]
			}
		}
		s = a.fail[k]
	}
	if a.delta16 != nil {
		return int32(a.delta16[s*int32(a.nclass)+int32(c)])
	}
	return a.delta[s*int32(a.nclass)+int32(c)]
}

// emitAt reports the patterns that end at end in state s.
func (a *automaton) emitAt(s int32, end int, hit func(pat int32, end int)) {
	for t := s; t >= 0; t = a.dict[t] {
		for _, p := range a.outPat[a.outAt[t]:a.outAt[t+1]] {
			hit(p, end)
		}
	}
}
