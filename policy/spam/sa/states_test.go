package sa

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestStateSet checks the state index against a map: every key added is
// found with its number, keys not added are not, and a prefix holds the
// first states, numbered as before, with room to grow.
func TestStateSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ss := newStateSet(4)
	want := map[string]int32{}
	var keys []string
	randKey := func() string {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(4)) // short alphabet: many near misses
		}
		return string(b)
	}
	for len(keys) < 3000 {
		k := randKey()
		if _, ok := want[k]; ok {
			if got := ss.find([]byte(k)); got != want[k] {
				t.Fatalf("find(%q) = %d, want %d", k, got, want[k])
			}
			continue
		}
		if got := ss.find([]byte(k)); got != 0 {
			t.Fatalf("find(%q) = %d before it was added", k, got)
		}
		s := ss.add([]byte(k), uint32(len(keys)))
		if s != int32(len(keys)+1) {
			t.Fatalf("add(%q) = %d, want %d", k, s, len(keys)+1)
		}
		want[k] = s
		keys = append(keys, k)
	}
	check := func(ss *stateSet, n int) error {
		if ss.n() != n+1 {
			return fmt.Errorf("n() = %d, want %d", ss.n(), n+1)
		}
		for i, k := range keys[:n] {
			s := int32(i + 1)
			if got := ss.find([]byte(k)); got != s {
				return fmt.Errorf("find(%q) = %d, want %d", k, got, s)
			}
			if string(ss.key(s)) != k || ss.birth[s] != uint32(i) {
				return fmt.Errorf("state %d: key %q birth %d, want %q %d", s, ss.key(s), ss.birth[s], k, i)
			}
		}
		for _, k := range keys[n:] {
			if got := ss.find([]byte(k)); got != 0 {
				return fmt.Errorf("find(%q) = %d, not in the set", k, got)
			}
		}
		if 2*ss.n() > len(ss.slots) {
			return fmt.Errorf("%d states in %d slots", ss.n(), len(ss.slots))
		}
		return nil
	}
	if err := check(ss, len(keys)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{1, 2, 17, 1000, len(keys)} {
		p := ss.prefix(k, k+k/8+4)
		if err := check(p, k-1); err != nil {
			t.Fatalf("prefix(%d): %v", k, err)
		}
		if got := p.size(); got != ss.prefixSize(k, k+k/8+4) {
			t.Errorf("prefix(%d) holds %d bytes, prefixSize says %d", k, got, ss.prefixSize(k, k+k/8+4))
		}
		// The prefix grows on its own; the set it came from is unchanged.
		p.add([]byte("new key"), 0)
		if got := p.find([]byte("new key")); got != int32(k) {
			t.Errorf("prefix(%d): new key is %d, want %d", k, got, k)
		}
	}
	if err := check(ss, len(keys)); err != nil {
		t.Fatalf("after prefixes: %v", err)
	}
}
