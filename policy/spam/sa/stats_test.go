package sa

import (
	"fmt"
	"os"
	"sort"
	"testing"
)

func TestPrintStats(t *testing.T) {
	if os.Getenv("SA_STATS") == "" {
		t.Skip("SA_STATS not set")
	}
	rs, err := Load(DefaultPaths("/var/lib/spamassassin", "/usr/share/spamassassin", "/etc/spamassassin"), Env{})
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []Options{{}, {Bayes: true}} {
		e, err := Compile(rs, set)
		if err != nil {
			t.Fatal(err)
		}
		st := e.Stats()
		fmt.Printf("set %d: defined %d run %d scored %d re2 %d bt %d prefiltered %d evals %d skipped %d errors %d\n", st.ScoreSet, st.Defined, st.Run, st.Scored, st.RE2, st.Backtracking, st.Prefiltered, st.NativeEvals, len(st.Skipped), len(st.Errors))
		type kv struct {
			k string
			v EvalStat
		}
		var l []kv
		for k, v := range st.MissingEvals {
			l = append(l, kv{k, v})
		}
		sort.Slice(l, func(i, j int) bool { return l[i].v.Score > l[j].v.Score })
		for _, x := range l {
			fmt.Printf("  %-40s %3d %6.2f\n", x.k, x.v.Rules, x.v.Score)
		}
		reasons := map[string]int{}
		for _, s := range st.Skipped {
			r := s.Reason
			if len(r) > 40 {
				r = r[:40]
			}
			reasons[r]++
		}
		for r, n := range reasons {
			if n > 0 {
				fmt.Printf("  skip %4d %s\n", n, r)
			}
		}
		for _, e := range st.Errors[:min(10, len(st.Errors))] {
			fmt.Println("  err", e)
		}
	}
}
