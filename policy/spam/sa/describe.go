package sa

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Describe writes what was loaded, translated and skipped, for
// `mailwarden rules`: one summary, the eval functions not implemented by
// the score weight they carry, then every skipped rule and why.
func (e *Engine) Describe(w io.Writer) error {
	st := e.stats
	var b strings.Builder
	fmt.Fprintf(&b, "files: %d\n", len(st.Files))
	for _, f := range st.Files {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	fmt.Fprintf(&b, "score set: %d\n", st.ScoreSet)
	fmt.Fprintf(&b, "rules defined: %d; run: %d (%d scored, the rest feed metas)\n", st.Defined, st.Run, st.Scored)
	kinds := make([]Kind, 0, len(st.ByKind))
	for k := range st.ByKind {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-10s %d\n", k, st.ByKind[k])
	}
	fmt.Fprintf(&b, "regexes: %d RE2, %d backtracking (bounded), %d screened by literals\n", st.RE2, st.Backtracking, st.Prefiltered)
	fmt.Fprintf(&b, "eval rules implemented natively: %d\n", st.NativeEvals)
	if len(st.MissingEvals) > 0 {
		type kv struct {
			name string
			s    EvalStat
		}
		var l []kv
		for n, s := range st.MissingEvals {
			l = append(l, kv{n, s})
		}
		sort.Slice(l, func(i, j int) bool {
			if l[i].s.Score != l[j].s.Score {
				return l[i].s.Score > l[j].s.Score
			}
			return l[i].name < l[j].name
		})
		fmt.Fprintf(&b, "eval functions not implemented (rules, |score| carried):\n")
		for _, x := range l {
			fmt.Fprintf(&b, "  %-50s %3d %6.2f\n", x.name, x.s.Rules, x.s.Score)
		}
	}
	fmt.Fprintf(&b, "skipped rules: %d\n", len(st.Skipped))
	for _, s := range st.Skipped {
		fmt.Fprintf(&b, "  %-32s %-10s %6.2f  %s\n", s.Rule, s.Kind, s.Score, s.Reason)
	}
	if len(st.Errors) > 0 {
		fmt.Fprintf(&b, "errors: %d\n", len(st.Errors))
		for _, e := range st.Errors {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Description returns a rule's describe text.
func (e *Engine) Description(rule string) string {
	if i, ok := e.byName[rule]; ok && e.rules[i] != nil {
		return e.rules[i].def.Description
	}
	return ""
}
