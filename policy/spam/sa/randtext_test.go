package sa

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// randPieces joins 1 to most+1 pieces picked at random: the random texts
// of the tests that hold a hand-written scanner to the regexp it replaces.
func randPieces(rng *rand.Rand, pieces []string, most int) string {
	var b strings.Builder
	for n := rng.IntN(most); n >= 0; n-- {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

// wholeCorpus lists every ham and spam file of the corpus (300 of them
// when the tests are sampled).
func wholeCorpus(t testing.TB) []string {
	var files []string
	for _, k := range []string{"ham", "spam"} {
		files = append(files, corpusFiles(t, k)...)
	}
	if sampled() {
		files = sample(files, 300)
	}
	return files
}

// randRuns is n, or a tenth of it when the tests are sampled (-short,
// -race: the race detector makes each regexp and scanner run ~10 times
// slower); the tests' minimum match counts scale with it.
func randRuns(n int) int {
	if sampled() {
		return n / 10
	}
	return n
}
