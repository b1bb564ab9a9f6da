package bayes

import (
	"math/rand/v2"
	"testing"
)

// TestTokenTab holds tokenTab to a Go map under random sets (counts going
// to zero and back included), with few distinct hashes so that probes
// collide and wrap, and hash 0 among them.
func TestTokenTab(t *testing.T) {
	for _, keys := range []int{3, 100, 5000} {
		rng := rand.New(rand.NewPCG(uint64(keys), 1))
		var tab tokenTab
		model := map[uint64]packed{}
		key := func() uint64 {
			k := rng.Uint64N(uint64(keys))
			if k%7 == 0 {
				return k << 40 // hashes near each other in the high bits: same home slot
			}
			return k * 0x9e3779b97f4a7c15
		}
		for i := range 20 * keys {
			k := key()
			var p packed
			if rng.IntN(3) > 0 {
				p = packed{spam: rng.Uint32N(4), ham: rng.Uint32N(4)}
			}
			tab.set(k, p)
			if p == (packed{}) {
				delete(model, k)
			} else {
				model[k] = p
			}
			if i%97 == 0 {
				for mk, mp := range model {
					if got := tab.get(mk); got != mp {
						t.Fatalf("keys %d step %d: get(%#x) = %v, want %v", keys, i, mk, got, mp)
					}
				}
				if tab.n >= 64 && tab.zeros > tab.n/4 {
					t.Fatalf("keys %d step %d: %d of %d slots hold zero counts", keys, i, tab.zeros, tab.n)
				}
				if tab.len() != len(model) {
					t.Fatalf("keys %d step %d: len %d, want %d", keys, i, tab.len(), len(model))
				}
			}
		}
		for range 1000 {
			k := key()
			if got := tab.get(k); got != model[k] {
				t.Fatalf("keys %d: get(%#x) = %v, want %v", keys, k, got, model[k])
			}
		}
		if tab.n > len(tab.slots) || float64(tab.n) > maxLoad*float64(len(tab.slots))+1 {
			t.Fatalf("keys %d: %d used of %d slots", keys, tab.n, len(tab.slots))
		}
		tab.fit()
		for mk, mp := range model {
			if got := tab.get(mk); got != mp {
				t.Fatalf("keys %d after fit: get(%#x) = %v, want %v", keys, mk, got, mp)
			}
		}
		if tab.zeros != 0 || tab.n != len(model) {
			t.Fatalf("keys %d after fit: n %d zeros %d, want %d and 0", keys, tab.n, tab.zeros, len(model))
		}
	}
	var empty tokenTab
	if empty.get(0) != (packed{}) || empty.len() != 0 {
		t.Fatal("empty table answers")
	}
}
