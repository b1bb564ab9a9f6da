package fit

import (
	"context"
	"sync"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/eval"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
)

// Parse turns a raw message into the message model.
type Parse func(raw []byte) (*message.Message, error)

// Collect computes the features of every message (msgs carry their Fold,
// 0..folds-1): its signals as the [spam] section sec reports them (DNS
// lists off) and its Bayes probability from a classifier trained in memory
// on the other folds. Messages with Fold == folds are a validation set:
// their Bayes probability comes from all the folds and they teach Bayes
// nothing. Unreadable messages are left out.
func Collect(msgs []*eval.Msg, folds int, core *policy.Config, sec spam.Config, parse Parse, workers int, progress func(done, n int)) ([]Sample, error) {
	sec.DNSBL, sec.URIBL = nil, nil
	sec.Bayes.Enabled = true
	sec.Autolearn.Enabled = false
	ignore := spam.NewHeaderSet(append(append([]string{}, sec.IgnoreHeaders...), core.Headers.Status, core.Headers.Flag)...)
	perFold := make([]map[string]bayes.Count, folds)
	totals := make([]bayes.Count, folds)
	for i := range perFold {
		perFold[i] = map[string]bayes.Count{}
	}
	ok := make([]bool, len(msgs))
	for i, m := range msgs {
		pm, err := parse(m.Raw)
		if err != nil || m.Fold < 0 || m.Fold > folds {
			continue
		}
		ok[i] = true
		if m.Fold == folds {
			continue
		}
		CountTokens(perFold[m.Fold], &totals[m.Fold], spam.Tokens(pm, ignore), m.Spam)
	}
	out := make([]Sample, len(msgs))
	done := 0
	for f := 0; f <= folds; f++ {
		mem := bayes.NewMemory()
		for g := 0; g < folds; g++ {
			if g != f {
				mem.Add(context.Background(), perFold[g], totals[g])
			}
		}
		sc := sec
		chk, err := spam.New(&sc, core, spam.Options{Tokens: mem})
		if err != nil {
			return nil, err
		}
		var idx []int
		for i, m := range msgs {
			if ok[i] && m.Fold == f {
				idx = append(idx, i)
			}
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		next := 0
		for range max(workers, 1) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					if next >= len(idx) {
						mu.Unlock()
						return
					}
					i := idx[next]
					next++
					mu.Unlock()
					m := msgs[i]
					pm, err := parse(m.Raw)
					if err != nil {
						continue
					}
					ft := chk.Features(context.Background(), pm, nil)
					s := Sample{Path: m.Path, Spam: m.Spam, Fold: m.Fold, BayesP: ft.BayesP, BayesOK: ft.BayesOK}
					for _, x := range ft.Signals {
						s.Signals = append(s.Signals, x.Name)
						s.Prior = append(s.Prior, x.Score)
						nb, ok := ft.NoBayes[x.Name]
						if !ok {
							nb = x.Score
						}
						s.PriorNoBayes = append(s.PriorNoBayes, nb)
					}
					out[i] = s
					mu.Lock()
					done++
					if progress != nil {
						progress(done, len(msgs))
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	var res []Sample
	for i := range out {
		if ok[i] {
			res = append(res, out[i])
		}
	}
	return res, nil
}

// CountTokens adds one message's tokens to a fold's token counts and its
// message total, as learning it into a Bayes store would.
func CountTokens(counts map[string]bayes.Count, total *bayes.Count, toks []string, isSpam bool) {
	c := bayes.Count{Ham: 1}
	if isSpam {
		c = bayes.Count{Spam: 1}
	}
	for _, t := range toks {
		x := counts[t]
		x.Spam += c.Spam
		x.Ham += c.Ham
		counts[t] = x
	}
	total.Spam += c.Spam
	total.Ham += c.Ham
}
