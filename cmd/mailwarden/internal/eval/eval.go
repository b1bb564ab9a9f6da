// Package eval measures spam scoring on a labelled corpus for `mailwarden
// eval`: a stratified, deterministic k-fold split, scoring with the
// pipeline, false-positive rate, recall and the ROC AUC (Mann-Whitney U).
package eval

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam"
)

// Msg is one corpus message.
type Msg struct {
	Path   string
	Raw    []byte
	Spam   bool
	Fold   int
	Test   bool // in the test sample of its fold
	Score  float64
	Detail string // the spam check's detail (signals)
}

// FoldStats is one row of the eval table.
type FoldStats struct {
	Fold       string  `json:"fold"`
	Ham        int     `json:"ham"`
	Spam       int     `json:"spam"`
	FP         int     `json:"false_positives"`
	FN         int     `json:"false_negatives"`
	FPRate     float64 `json:"fp_rate"`
	Recall     float64 `json:"recall"`
	AUC        float64 `json:"auc"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	Seconds    float64 `json:"seconds"`
	// CPUSeconds is the process's user+system time while scoring: unlike
	// msgs_per_sec it does not depend on what else the machine runs.
	CPUSeconds    float64 `json:"cpu_seconds"`
	MsgsPerCPUSec float64 `json:"msgs_per_cpu_sec"`
}

// AssignFolds is a stratified, deterministic split: within each class the
// messages are ordered by a digest of their path and dealt round-robin into
// the folds, so every fold has the class ratio of the corpus and the same
// files always land in the same fold (test/spamassassin-compare.sh relies
// on it). maxTest > 0 marks a stratified sample of each fold as its test
// set.
func AssignFolds(msgs []*Msg, k, maxTest int) {
	// The file name, not the path: the split must not depend on how the
	// corpus directory was spelled on the command line.
	key := func(m *Msg) string {
		h := sha256.Sum256([]byte(filepath.Base(m.Path)))
		return string(h[:])
	}
	var hams, spams []*Msg
	for _, m := range msgs {
		if m.Spam {
			spams = append(spams, m)
		} else {
			hams = append(hams, m)
		}
	}
	for _, class := range [][]*Msg{hams, spams} {
		sort.Slice(class, func(i, j int) bool { return key(class[i]) < key(class[j]) })
		for i, m := range class {
			m.Fold = i % k
		}
	}
	for _, m := range msgs {
		m.Test = true
	}
	if maxTest <= 0 {
		return
	}
	n := len(msgs)
	hamShare := float64(len(hams)) / float64(max(n, 1))
	wantHam := int(float64(maxTest)*hamShare + 0.5)
	wantSpam := maxTest - wantHam
	for _, class := range []struct {
		ms   []*Msg
		want int
	}{{hams, wantHam}, {spams, wantSpam}} {
		taken := map[int]int{}
		for _, m := range class.ms { // already in digest order
			m.Test = taken[m.Fold] < class.want
			taken[m.Fold]++
		}
	}
}

// ScoreAll runs the pipeline on every message with w workers.
func ScoreAll(p *policy.Pipeline, parse func(raw []byte) (*message.Message, error), msgs []*Msg, w int, progress func(done, n int)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	next, done := 0, 0
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= len(msgs) {
					mu.Unlock()
					return
				}
				m := msgs[next]
				next++
				mu.Unlock()
				pm, err := parse(m.Raw)
				if err != nil {
					m.Score = 0
				} else {
					v := p.Run(context.Background(), pm)
					m.Score = v.Score
					for _, c := range v.Checks {
						if c.Name == spam.Name {
							m.Detail = c.Detail
						}
					}
				}
				mu.Lock()
				done++
				progress(done, len(msgs))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// Stats computes the table row of a set of scored messages.
func Stats(name string, msgs []*Msg, threshold float64) FoldStats {
	s := FoldStats{Fold: name}
	var hs, ss []float64
	for _, m := range msgs {
		if m.Spam {
			s.Spam++
			ss = append(ss, m.Score)
			if m.Score < threshold {
				s.FN++
			}
		} else {
			s.Ham++
			hs = append(hs, m.Score)
			if m.Score >= threshold {
				s.FP++
			}
		}
	}
	if s.Ham > 0 {
		s.FPRate = float64(s.FP) / float64(s.Ham)
	}
	if s.Spam > 0 {
		s.Recall = float64(s.Spam-s.FN) / float64(s.Spam)
	}
	s.AUC = AUC(hs, ss)
	return s
}

// AUC is the area under the ROC curve: the probability that a random spam
// scores above a random ham (ties count half), by the Mann-Whitney U
// statistic.
func AUC(ham, spam []float64) float64 {
	if len(ham) == 0 || len(spam) == 0 {
		return 0
	}
	h := append([]float64(nil), ham...)
	sort.Float64s(h)
	var u float64
	for _, s := range spam {
		lo := sort.SearchFloat64s(h, s) // ham strictly below s
		hi := lo
		for hi < len(h) && h[hi] == s {
			hi++
		}
		u += float64(lo) + float64(hi-lo)/2
	}
	return u / float64(len(ham)) / float64(len(spam))
}

// SplitByDate is the train/test split by time: messages whose arrival
// (received; unknown counts as training) is before cutoff are the training
// set (Fold 1), the others the test set (Fold 0).
func SplitByDate(msgs []*Msg, cutoff time.Time, received func(raw []byte) (time.Time, bool)) {
	for _, m := range msgs {
		t, ok := received(m.Raw)
		m.Fold = 1
		if ok && !t.Before(cutoff) {
			m.Fold = 0
		}
	}
}

// SampleTest marks the test set of a train/test split (Fold 0): all of
// it, or with maxTest > 0 a stratified sample of maxTest messages, or with
// perClass > 0 that many of each class, in the digest order of their file
// names (deterministic).
func SampleTest(msgs []*Msg, maxTest, perClass int) {
	var hams, spams []*Msg
	for _, m := range msgs {
		m.Test = m.Fold == 0
		switch {
		case m.Fold != 0:
		case m.Spam:
			spams = append(spams, m)
		default:
			hams = append(hams, m)
		}
	}
	wantHam, wantSpam := len(hams), len(spams)
	switch {
	case perClass > 0:
		wantHam, wantSpam = perClass, perClass
	case maxTest > 0 && maxTest < len(hams)+len(spams):
		wantHam = int(float64(maxTest)*float64(len(hams))/float64(len(hams)+len(spams)) + 0.5)
		wantSpam = maxTest - wantHam
	}
	for _, c := range []struct {
		ms   []*Msg
		want int
	}{{hams, wantHam}, {spams, wantSpam}} {
		sort.Slice(c.ms, func(i, j int) bool { return digest(c.ms[i]) < digest(c.ms[j]) })
		for i, m := range c.ms {
			m.Test = i < c.want
		}
	}
}

func digest(m *Msg) string {
	h := sha256.Sum256([]byte(filepath.Base(m.Path)))
	return string(h[:])
}
