package sa

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPrefixCursor: the cursor finds, from each place on, the same next
// prefix place as firstPrefix, with few and many prefixes.
func TestPrefixCursor(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	words := []string{"to:", "subject:", "from:", "reply-to:", "ab", "b", "xyz"}
	for n := 1; n <= 20; n++ {
		var prefixes []string
		for i := range n {
			prefixes = append(prefixes, words[i%len(words)]+strings.Repeat("q", i/len(words)))
		}
		for range 50 {
			var b strings.Builder
			for range 40 {
				w := words[rng.IntN(len(words))]
				if rng.IntN(2) == 0 {
					w = strings.ToUpper(w)
				}
				b.WriteString(w)
				b.WriteString([]string{"", " ", "\n", "q"}[rng.IntN(4)])
			}
			text := b.String()
			var c prefixCursor
			c.init(prefixes)
			for from := 0; from <= len(text); from += 1 + rng.IntN(3) {
				want := firstPrefix(text[from:], prefixes)
				if want >= 0 {
					want += from
				}
				if got := c.next(text, from); got != want {
					t.Fatalf("%d prefixes, from %d of %q: cursor %d, firstPrefix %d", n, from, text, got, want)
				}
			}
		}
	}
}
