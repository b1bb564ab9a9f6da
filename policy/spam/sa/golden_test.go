package sa

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/corpus_hits.golden")

// TestCorpusHitsGolden: the speed work must not change what fires. The hit
// sets of a fixed corpus sample (60 ham + 60 spam, chosen by name hash)
// were recorded before the prefilter and scan changes, and must stay the
// same. Run with -update-golden only when a change of hits is intended.
func TestCorpusHitsGolden(t *testing.T) {
	rs := debianRules(t)
	// No time bound on a backtracking match: the golden records what the
	// rules say, and the engine's 20 ms can run out under -race on a busy
	// machine (a resource bound, not the rule's meaning).
	e, err := Compile(rs, Options{MatchTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, kind := range []string{"ham", "spam"} {
		files := sample(corpusFiles(t, kind), 60)
		for i, m := range loadMessages(t, files) {
			r := e.Check(m, Input{})
			var names []string
			for _, h := range r.Hits {
				names = append(names, h.Rule)
			}
			lines = append(lines, fmt.Sprintf("%s/%s\t%.3f\t%s", kind, filepath.Base(files[i]), r.Score, strings.Join(names, ",")))
		}
	}
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", "corpus_hits.golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wl := strings.Split(string(want), "\n")
	gl := strings.Split(got, "\n")
	if len(wl) != len(gl) {
		t.Fatalf("%d lines, want %d", len(gl), len(wl))
	}
	bad := 0
	for i := range wl {
		if wl[i] != gl[i] {
			bad++
			if bad <= 10 {
				t.Errorf("hits changed:\n got %s\nwant %s", gl[i], wl[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d messages changed", bad, len(wl)-1)
	}
}
