package sa

import "slices"

// automaton is an Aho-Corasick automaton over bytes, matching ASCII
// case-insensitively (patterns are lower case; the text is lowered byte
// by byte while scanning). Transitions are a dense table over byte
// classes: bytes that occur in no pattern share class 0. Its entries
// are 16 bits wide when the states allow (the rule sets' do), else 32.
type automaton struct {
	class   [256]uint8
	nclass  int
	delta   []int32  // state*nclass + class -> state, or nil
	delta16 []uint16 // the same, when every state fits in 16 bits
	out     [][]int32
	dict    []int32 // next state on the fail chain with output, or -1
	npat    int
	lengths []int
	emit    []bool // a state with output, itself or on its fail chain
}

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
	a.out = [][]int32{nil}
	for id, p := range pats {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := int(a.class[lowerTable[p[i]]])
			n := a.delta[int(s)*nc+c]
			if n == 0 {
				n = int32(len(a.out))
				a.out = append(a.out, nil)
				a.delta = append(a.delta, make([]int32, nc)...)
				a.delta[int(s)*nc+c] = n
			}
			s = n
		}
		a.out[s] = append(a.out[s], int32(id))
	}
	n := len(a.out)
	fail := make([]int32, n)
	a.dict = make([]int32, n)
	for i := range a.dict {
		a.dict[i] = -1
	}
	// BFS: a state's missing edges are its fail state's edges.
	queue := make([]int32, 0, n)
	for c := 0; c < nc; c++ {
		if t := a.delta[c]; t != 0 {
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		row := a.delta[int(s)*nc : int(s+1)*nc]
		frow := a.delta[int(fail[s])*nc : int(fail[s]+1)*nc]
		for c := 0; c < nc; c++ {
			if t := row[c]; t != 0 {
				f := frow[c]
				fail[t] = f
				if len(a.out[f]) > 0 {
					a.dict[t] = f
				} else {
					a.dict[t] = a.dict[f]
				}
				queue = append(queue, t)
			} else {
				row[c] = frow[c]
			}
		}
	}
	a.emit = make([]bool, n)
	for i := range a.emit {
		a.emit[i] = len(a.out[i]) > 0 || a.dict[i] >= 0
	}
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
	if a.delta16 != nil {
		s := 0
		for i := 0; i < len(text); i++ {
			s = int(a.delta16[s*a.nclass+int(a.class[text[i]])])
			if a.emit[s] {
				a.emitAt(int32(s), i+1, hit)
			}
		}
		return
	}
	s := int32(0)
	nc := int32(a.nclass)
	for i := 0; i < len(text); i++ {
		s = a.delta[s*nc+int32(a.class[text[i]])]
		if a.emit[s] {
			a.emitAt(s, i+1, hit)
		}
	}
}

// emitAt reports the patterns that end at end in state s.
func (a *automaton) emitAt(s int32, end int, hit func(pat int32, end int)) {
	for t := s; t >= 0; t = a.dict[t] {
		for _, p := range a.out[t] {
			hit(p, end)
		}
	}
}
