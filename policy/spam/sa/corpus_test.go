package sa

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The corpus tests and the benchmark read the Debian rule set and the
// shared corpus; they are skipped where either is missing.

const (
	corpusDir = "../../../../shared/corpus/spamassassin"
	debianDir = "/usr/share/spamassassin"
)

func corpusFiles(t testing.TB, kind string) []string {
	files, _ := filepath.Glob(filepath.Join(corpusDir, kind, "*.eml"))
	if len(files) == 0 {
		t.Skip("corpus not found")
	}
	return files
}

// eachCorpusMessage calls fn with every message of the corpus, ham then
// spam.
func eachCorpusMessage(t testing.TB, fn func(path string, raw []byte)) {
	for _, kind := range []string{"ham", "spam"} {
		for _, f := range corpusFiles(t, kind) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			fn(f, raw)
		}
	}
}

// sample returns n files chosen by the SHA-256 of their names: a fixed,
// reproducible sample that does not depend on anything learned.
func sample(files []string, n int) []string {
	type kv struct{ k, f string }
	var l []kv
	for _, f := range files {
		h := sha256.Sum256([]byte(filepath.Base(f)))
		l = append(l, kv{hex.EncodeToString(h[:8]), f})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].k < l[j].k })
	out := []string{}
	for _, x := range l[:min(n, len(l))] {
		out = append(out, x.f)
	}
	return out
}

var (
	debianOnce sync.Once
	debianRS   *Ruleset
	debianErr  error
)

func debianRules(t testing.TB) *Ruleset {
	if _, err := os.Stat(filepath.Join(debianDir, "72_active.cf")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Debian spamassassin rules are required in CI: %v", err)
		}
		t.Skip("Debian spamassassin rules not installed")
	}
	debianOnce.Do(func() {
		debianRS, debianErr = Load([]string{debianDir, "/etc/spamassassin"}, Env{})
	})
	if debianErr != nil {
		t.Fatal(debianErr)
	}
	return debianRS
}

func loadMessages(t testing.TB, files []string) []*Message {
	var ms []*Message
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, FromRaw(raw))
	}
	return ms
}

// TestDebianRulesLoad: the shipped rule set loads without errors and the
// bulk of its scored rules run.
func TestDebianRulesLoad(t *testing.T) {
	rs := debianRules(t)
	if len(rs.Errors) > 0 {
		t.Errorf("%d parse errors, first: %v", len(rs.Errors), rs.Errors[0])
	}
	e, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	t.Logf("defined %d, run %d (scored %d), RE2 %d, backtracking %d, prefiltered %d, native evals %d, skipped %d",
		st.Defined, st.Run, st.Scored, st.RE2, st.Backtracking, st.Prefiltered, st.NativeEvals, len(st.Skipped))
	if st.Scored < 600 {
		t.Errorf("only %d scored rules run", st.Scored)
	}
}

// TestCorpusScores reports FP and recall at score >= 5 with rules alone
// (score set 0: no Bayes, no network tests) on a fixed 300 + 300 sample.
// Nothing is tuned on this sample; the test asserts only loose bounds and
// prints the figures. With SA_HITS=dir it also writes each message's hits
// for comparison with SpamAssassin.
func TestCorpusScores(t *testing.T) {
	if sampled() {
		t.Skip("corpus run: a minute or more (test/run.sh runs it without -race)")
	}
	rs := debianRules(t)
	e, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dump := os.Getenv("SA_HITS")
	res := map[string][2]int{}
	for _, kind := range []string{"ham", "spam"} {
		files := sample(corpusFiles(t, kind), 300)
		var lines []string
		for i, m := range loadMessages(t, files) {
			r := e.Check(m, Input{})
			c := res[kind]
			c[0]++
			if r.Score >= 5 {
				c[1]++
			}
			res[kind] = c
			var names []string
			for _, h := range r.Hits {
				names = append(names, h.Rule)
			}
			lines = append(lines, fmt.Sprintf("%s\t%.1f\t%s", files[i], r.Score, strings.Join(names, ",")))
		}
		if dump != "" {
			os.WriteFile(filepath.Join(dump, kind+".mw"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
		}
	}
	fp := float64(res["ham"][1]) / float64(res["ham"][0]) * 100
	recall := float64(res["spam"][1]) / float64(res["spam"][0]) * 100
	t.Logf("rules alone, score set 0, threshold 5: FP %.1f %% (%d/%d), recall %.1f %% (%d/%d)",
		fp, res["ham"][1], res["ham"][0], recall, res["spam"][1], res["spam"][0])
	if recall < 30 || fp > 20 {
		t.Errorf("implausible: FP %.1f %%, recall %.1f %%", fp, recall)
	}
}

// BenchmarkCorpus runs the whole Debian rule set over the corpus; the
// figure to read is msgs/s (one goroutine: messages per CPU-second).
//
// SA_CACHE_MB sets Options.CacheBytes in MB (-1: no bound). SA_BENCH_PAR
// checks with that many goroutines at once, as the daemon does (they
// share the automata); msgs/cpu-s is then the figure to read.
func BenchmarkCorpus(b *testing.B) {
	rs := debianRules(b)
	var opt Options
	if s := os.Getenv("SA_CACHE_MB"); s != "" {
		var mb int64
		fmt.Sscan(s, &mb)
		opt.CacheBytes = mb << 20
	}
	e, err := Compile(rs, opt)
	if err != nil {
		b.Fatal(err)
	}
	var files []string
	for _, k := range []string{"ham", "spam"} {
		files = append(files, corpusFiles(b, k)...)
	}
	if n := os.Getenv("SA_BENCH_N"); n != "" {
		var k int
		fmt.Sscan(n, &k)
		files = sample(files, k)
	}
	raws := make([][]byte, len(files))
	for i, f := range files {
		raws[i], _ = os.ReadFile(f)
	}
	// Warm the lazily built automata once, as a running daemon has.
	for _, raw := range raws {
		e.Check(FromRaw(raw), Input{})
	}
	// What the warm engine holds (its automata and compiled regexps), the
	// messages read for the benchmark included.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap := float64(ms.HeapInuse) / (1 << 20)
	par := 1
	if s := os.Getenv("SA_BENCH_PAR"); s != "" {
		fmt.Sscan(s, &par)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range par {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(len(raws)); i = next.Add(1) - 1 {
					e.Check(FromRaw(raws[i]), Input{})
				}
			})
		}
		wg.Wait()
		n += len(raws)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
	// The machine is shared: the figure that counts is per CPU-second.
	b.ReportMetric(float64(n)/(cpuTime()-cpu0).Seconds(), "msgs/cpu-s")
	b.ReportMetric(heap, "heap-MB")
	cs := e.CacheStats()
	b.ReportMetric(float64(cs.Bytes)/(1<<20), "cache-MB")
	b.ReportMetric(float64(cs.Resets), "resets")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompile measures what the daemon pays at each start and reload
// for the Debian rule set: Load (parse the files) and Compile.
func BenchmarkCompile(b *testing.B) {
	debianRules(b) // skips where the rules are missing
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		n++
		rs, err := Load([]string{debianDir, "/etc/spamassassin"}, Env{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(rs, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	// The machine is shared: the figure that counts is CPU time.
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(n), "cpu-ms/op")
}

// sampled says a corpus oracle checks a sample, not the whole corpus: in
// -short runs and under the race detector (see raceOn).
func sampled() bool { return testing.Short() || raceOn }
