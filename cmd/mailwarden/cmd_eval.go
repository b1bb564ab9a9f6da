package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
)

func init() {
	addCommand("eval", "measure spam scoring on a ham and a spam corpus (k-fold cross-validation)", runEval)
}

// evalMsg is one corpus message.
type evalMsg struct {
	path   string
	raw    []byte
	spam   bool
	fold   int
	test   bool // in the test sample of its fold
	score  float64
	detail string // the spam check's detail (signals)
}

// foldStats is one row of the eval table.
type foldStats struct {
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

type evalJSON struct {
	foldStats
	Folds           int         `json:"folds"`
	Threshold       float64     `json:"threshold"`
	MsgsPerSecCore  float64     `json:"msgs_per_sec_per_core"`
	Workers         int         `json:"workers"`
	PerFold         []foldStats `json:"per_fold"`
	FalsePositives  []string    `json:"false_positive_files,omitempty"`
	FalseNegatives  []string    `json:"false_negative_files,omitempty"`
	TrainingSeconds float64     `json:"training_seconds"`
}

func runEval(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("eval", flag.ContinueOnError)
	fset.SetOutput(stderr)
	cfgPath := fset.String("config", "", "config file (default: the built-in default)")
	var hamPaths, spamPaths multiFlag
	fset.Var(&hamPaths, "ham", "file or directory of ham (.eml or mbox; repeatable)")
	fset.Var(&spamPaths, "spam", "file or directory of spam (repeatable)")
	folds := fset.Int("folds", 10, "number of cross-validation folds (≥ 2)")
	asJSON := fset.Bool("json", false, "print one JSON object")
	onlyFold := fset.Int("test-fold", -1, "score only this fold (0-based), still training on all the others")
	maxTest := fset.Int("max-test", 0, "score at most this many messages per fold (a stratified sample; 0 = all)")
	printFolds := fset.Bool("print-folds", false, "print FOLD<TAB>CLASS<TAB>TEST(0/1)<TAB>PATH for every message and exit (for test/spamassassin-compare.sh)")
	workers := fset.Int("workers", runtime.GOMAXPROCS(0), "messages scored concurrently")
	showErrors := fset.Bool("show-errors", false, "list the misclassified files")
	dump := fset.Bool("dump", false, "print CLASS<TAB>SCORE<TAB>PATH<TAB>DETAIL for every scored message")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden eval [-config F] --ham DIR --spam DIR [--folds 10] [--json]")
		fmt.Fprintln(stderr, "Scores with the [spam] check and the core [[rule]]s, Bayes trained on the other folds in memory, DNS lists off.")
		fmt.Fprintln(stderr, "A false positive is ham at or above score.quarantine; recall is the share of spam at or above it.")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if len(hamPaths) == 0 || len(spamPaths) == 0 || *folds < 2 || fset.NArg() > 0 || *onlyFold >= *folds || *workers < 1 {
		fset.Usage()
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	sec := spamSection(cfg)
	base := *sec
	base.DNSBL, base.URIBL = nil, nil // no network in an evaluation
	base.Enabled = true

	// Load the corpus.
	var msgs []*evalMsg
	for _, c := range []struct {
		spam  bool
		paths []string
	}{{false, hamPaths}, {true, spamPaths}} {
		for _, p := range c.paths {
			files, err := messageFiles(p)
			if err != nil {
				fmt.Fprintln(stderr, "mailwarden eval:", err)
				return 1
			}
			for _, f := range files {
				data, err := readFile(f)
				if err != nil {
					fmt.Fprintln(stderr, "mailwarden eval:", err)
					return 1
				}
				for i, raw := range splitMessages(data) {
					name := f
					if i > 0 {
						name = fmt.Sprintf("%s#%d", f, i)
					}
					msgs = append(msgs, &evalMsg{path: name, raw: raw, spam: c.spam})
				}
			}
		}
	}
	assignFolds(msgs, *folds, *maxTest)
	if *printFolds {
		for _, m := range msgs {
			fmt.Fprintf(stdout, "%d\t%s\t%d\t%s\n", m.fold, className(m.spam), b2i(m.test), m.path)
		}
		return 0
	}

	// Tokenise every message once; fold stores are sums of the other
	// folds' counts.
	trainStart := time.Now()
	ignore := spam.NewHeaderSet(append(append([]string{}, base.IgnoreHeaders...), cfg.Headers.Status, cfg.Headers.Flag)...)
	perFold := make([]map[string]bayes.Count, *folds)
	foldTotals := make([]bayes.Count, *folds)
	for i := range perFold {
		perFold[i] = map[string]bayes.Count{}
	}
	prog := newProgress(stderr, "eval: tokenising")
	bad := 0
	for i, m := range msgs {
		pm, err := parseMessage(m.raw, cfg)
		if err != nil {
			bad++
			m.fold = -1
			continue
		}
		c := bayes.Count{Ham: 1}
		if m.spam {
			c = bayes.Count{Spam: 1}
		}
		for _, t := range spam.Tokens(pm, ignore) {
			x := perFold[m.fold][t]
			x.Spam += c.Spam
			x.Ham += c.Ham
			perFold[m.fold][t] = x
		}
		foldTotals[m.fold].Spam += c.Spam
		foldTotals[m.fold].Ham += c.Ham
		prog.update(i+1, len(msgs))
	}
	prog.done()
	trainSecs := time.Since(trainStart).Seconds()

	logger := discardLogger()
	var rows []foldStats
	var all []*evalMsg
	var scoreSecs, scoreCPU float64
	for f := 0; f < *folds; f++ {
		if *onlyFold >= 0 && f != *onlyFold {
			continue
		}
		t0 := time.Now()
		mem := bayes.NewMemory()
		for g := 0; g < *folds; g++ {
			if g != f {
				mem.Add(context.Background(), perFold[g], foldTotals[g])
			}
		}
		trainSecs += time.Since(t0).Seconds()
		sc := base
		fcfg := *cfg
		fcfg.Sections = map[string]any{spam.Name: &sc}
		p, err := policy.New(&fcfg, []policy.Module{spam.ModuleWith(spam.Options{Tokens: mem})}, logger, nil, nil)
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden eval:", err)
			return 1
		}
		var test []*evalMsg
		for _, m := range msgs {
			if m.fold == f && m.test {
				test = append(test, m)
			}
		}
		prog := newProgress(stderr, fmt.Sprintf("eval: fold %d/%d", f+1, *folds))
		start, cpu0 := time.Now(), cpuTime()
		scoreAll(p, cfg, test, *workers, prog)
		secs, cpu := time.Since(start).Seconds(), cpuTime()-cpu0
		prog.done()
		p.Close()
		scoreSecs += secs
		row := stats(fmt.Sprint(f+1), test, cfg.Score.Quarantine)
		row.Seconds, row.CPUSeconds = secs, cpu
		row.MsgsPerSec = float64(len(test)) / secs
		row.MsgsPerCPUSec = float64(len(test)) / max(cpu, 1e-9)
		scoreCPU += cpu
		rows = append(rows, row)
		all = append(all, test...)
	}
	total := stats("all", all, cfg.Score.Quarantine)
	total.Seconds = scoreSecs
	total.MsgsPerSec = float64(len(all)) / scoreSecs
	total.CPUSeconds = scoreCPU
	total.MsgsPerCPUSec = float64(len(all)) / max(scoreCPU, 1e-9)
	out := evalJSON{foldStats: total, Folds: *folds, Threshold: cfg.Score.Quarantine, Workers: *workers,
		MsgsPerSecCore: total.MsgsPerSec / float64(min(*workers, runtime.NumCPU())), PerFold: rows, TrainingSeconds: trainSecs}
	for _, m := range all {
		switch {
		case !m.spam && m.score >= cfg.Score.Quarantine:
			out.FalsePositives = append(out.FalsePositives, fmt.Sprintf("%s %s", m.path, m.detail))
		case m.spam && m.score < cfg.Score.Quarantine:
			out.FalseNegatives = append(out.FalseNegatives, fmt.Sprintf("%s %s", m.path, m.detail))
		}
	}
	if *dump {
		for _, m := range all {
			fmt.Fprintf(stdout, "%s\t%.2f\t%s\t%s\n", className(m.spam), m.score, m.path, m.detail)
		}
		return 0
	}
	if *asJSON {
		if !*showErrors {
			out.FalsePositives, out.FalseNegatives = nil, nil
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return 0
	}
	fmt.Fprintf(stdout, "mailwarden eval: %d ham, %d spam, %d folds, threshold %.1f (score.quarantine), %d unreadable\n\n", total.Ham, total.Spam, *folds, cfg.Score.Quarantine, bad)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fold\tham\tspam\tFP\tFP rate\tFN\trecall\tAUC\tmsgs/s\tmsgs/CPU-s\t")
	for _, r := range append(rows, total) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f%%\t%d\t%.2f%%\t%.4f\t%.0f\t%.0f\t\n", r.Fold, r.Ham, r.Spam, r.FP, 100*r.FPRate, r.FN, 100*r.Recall, r.AUC, r.MsgsPerSec, r.MsgsPerCPUSec)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d workers, %.0f msgs/s per core (wall clock), %.0f msgs per CPU-second; training %.1fs\n", *workers, out.MsgsPerSecCore, total.MsgsPerCPUSec, trainSecs)
	if *showErrors {
		for _, s := range out.FalsePositives {
			fmt.Fprintln(stdout, "FP", s)
		}
		for _, s := range out.FalseNegatives {
			fmt.Fprintln(stdout, "FN", s)
		}
	}
	return 0
}

// cpuTime is the user+system CPU time of this process so far, in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func className(spam bool) string {
	if spam {
		return "spam"
	}
	return "ham"
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// assignFolds is a stratified, deterministic split: within each class the
// messages are ordered by a digest of their path and dealt round-robin into
// the folds, so every fold has the class ratio of the corpus and the same
// files always land in the same fold (test/spamassassin-compare.sh relies
// on it). maxTest > 0 marks a stratified sample of each fold as its test
// set.
func assignFolds(msgs []*evalMsg, k, maxTest int) {
	// The file name, not the path: the split must not depend on how the
	// corpus directory was spelled on the command line.
	key := func(m *evalMsg) string {
		h := sha256.Sum256([]byte(filepath.Base(m.path)))
		return string(h[:])
	}
	var hams, spams []*evalMsg
	for _, m := range msgs {
		if m.spam {
			spams = append(spams, m)
		} else {
			hams = append(hams, m)
		}
	}
	for _, class := range [][]*evalMsg{hams, spams} {
		sort.Slice(class, func(i, j int) bool { return key(class[i]) < key(class[j]) })
		for i, m := range class {
			m.fold = i % k
		}
	}
	for _, m := range msgs {
		m.test = true
	}
	if maxTest <= 0 {
		return
	}
	n := len(msgs)
	hamShare := float64(len(hams)) / float64(max(n, 1))
	wantHam := int(float64(maxTest)*hamShare + 0.5)
	wantSpam := maxTest - wantHam
	for _, class := range []struct {
		ms   []*evalMsg
		want int
	}{{hams, wantHam}, {spams, wantSpam}} {
		taken := map[int]int{}
		for _, m := range class.ms { // already in digest order
			m.test = taken[m.fold] < class.want
			taken[m.fold]++
		}
	}
}

// scoreAll runs the pipeline on every message with w workers.
func scoreAll(p *policy.Pipeline, cfg *policy.Config, msgs []*evalMsg, w int, prog *progress) {
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
				pm, err := parseMessage(m.raw, cfg)
				if err != nil {
					m.score = 0
				} else {
					v := p.Run(context.Background(), pm)
					m.score = v.Score
					for _, c := range v.Checks {
						if c.Name == "spam" {
							m.detail = c.Detail
						}
					}
				}
				mu.Lock()
				done++
				prog.update(done, len(msgs))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// stats computes the table row of a set of scored messages.
func stats(name string, msgs []*evalMsg, threshold float64) foldStats {
	s := foldStats{Fold: name}
	var hs, ss []float64
	for _, m := range msgs {
		if m.spam {
			s.Spam++
			ss = append(ss, m.score)
			if m.score < threshold {
				s.FN++
			}
		} else {
			s.Ham++
			hs = append(hs, m.score)
			if m.score >= threshold {
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
	s.AUC = auc(hs, ss)
	return s
}

// auc is the area under the ROC curve: the probability that a random spam
// scores above a random ham (ties count half), by the Mann-Whitney U
// statistic.
func auc(ham, spam []float64) float64 {
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
