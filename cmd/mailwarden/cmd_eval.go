package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/corpus"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/eval"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/fit"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/spam/sa"
)

type evalJSON struct {
	eval.FoldStats
	Folds           int              `json:"folds"`
	Threshold       float64          `json:"threshold"`
	MsgsPerSecCore  float64          `json:"msgs_per_sec_per_core"`
	Workers         int              `json:"workers"`
	PerFold         []eval.FoldStats `json:"per_fold"`
	FalsePositives  []string         `json:"false_positive_files,omitempty"`
	FalseNegatives  []string         `json:"false_negative_files,omitempty"`
	TrainingSeconds float64          `json:"training_seconds"`
}

func runEval(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("eval", flag.ContinueOnError)
	fset.SetOutput(stderr)
	cfgPath := fset.String("config", "", "config file (default: "+defaultConfigPath+" when it exists, else the built-in default)")
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
	var trainDirs, testDirs multiFlag
	fset.Var(&trainDirs, "train", "train Bayes on DIR/ham and DIR/spam (repeatable; with --test instead of folds)")
	fset.Var(&testDirs, "test", "score DIR/ham and DIR/spam (repeatable; with --train)")
	splitDate := fset.String("split-date", "", "with --ham/--spam: train on messages received before YYYY-MM-DD (topmost Received, else Date), score those received on or after it")
	sample := fset.Int("sample", 0, "with --train/--test or --split-date: score this many ham and this many spam of the test set")
	noBayes := fset.Bool("no-bayes", false, "score without Bayes, as a fresh install does")
	weightsFile := fset.String("weights", "", "override [spam] weights: builtin, none or a file from `learn --fit`")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden eval [-config F] --ham DIR --spam DIR [--folds 10] [--json]")
		fmt.Fprintln(stderr, "       mailwarden eval [-config F] --train DIR... --test DIR...   (each DIR holds ham/ and spam/)")
		fmt.Fprintln(stderr, "       mailwarden eval [-config F] --ham DIR --spam DIR --split-date 2002-09-01")
		fmt.Fprintln(stderr, "Scores with the [spam] check and the core [[rule]]s, Bayes trained on the other folds in memory, DNS lists off.")
		fmt.Fprintln(stderr, "A false positive is ham at or above score.quarantine; recall is the share of spam at or above it.")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	split := len(trainDirs)+len(testDirs) > 0 || *splitDate != ""
	var cutoff time.Time
	if *splitDate != "" {
		var err error
		if cutoff, err = time.Parse("2006-01-02", *splitDate); err != nil || len(trainDirs)+len(testDirs) > 0 {
			fset.Usage()
			return 2
		}
	}
	if len(trainDirs)+len(testDirs) > 0 {
		if len(trainDirs) == 0 || len(testDirs) == 0 || len(hamPaths)+len(spamPaths) > 0 {
			fset.Usage()
			return 2
		}
		for _, d := range trainDirs {
			hamPaths = append(hamPaths, filepath.Join(d, "ham"))
			spamPaths = append(spamPaths, filepath.Join(d, "spam"))
		}
	}
	if split {
		// One train/test split: the test set is fold 0, the training set
		// fold 1, and only fold 0 is scored.
		*folds, *onlyFold = 2, 0
	}
	if len(hamPaths) == 0 || len(spamPaths) == 0 || *folds < 2 || fset.NArg() > 0 || *onlyFold >= *folds || *workers < 1 {
		fset.Usage()
		return 2
	}
	*cfgPath = configPath(*cfgPath)
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	sec := spamSection(cfg)
	base := *sec
	base.DNSBL, base.URIBL = nil, nil // no network in an evaluation
	base.Enabled = true
	base.Autolearn.Enabled = false
	if *noBayes {
		base.Bayes.Enabled = false
	}
	if *weightsFile != "" {
		base.Weights = *weightsFile
	}

	// Load the corpus.
	var msgs []*eval.Msg
	trainSet := map[string]bool{}
	for _, c := range []struct {
		spam  bool
		paths []string
	}{{false, hamPaths}, {true, spamPaths}} {
		for _, p := range c.paths {
			trainSet[p] = true
		}
	}
	for _, d := range testDirs {
		hamPaths = append(hamPaths, filepath.Join(d, "ham"))
		spamPaths = append(spamPaths, filepath.Join(d, "spam"))
	}
	for _, c := range []struct {
		spam  bool
		paths []string
	}{{false, hamPaths}, {true, spamPaths}} {
		for _, p := range c.paths {
			isTrain := len(testDirs) == 0 || trainSet[p]
			files, err := corpus.Files(p)
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
				for i, raw := range corpus.Split(data) {
					name := f
					if i > 0 {
						name = fmt.Sprintf("%s#%d", f, i)
					}
					msgs = append(msgs, &eval.Msg{Path: name, Raw: raw, Spam: c.spam, Fold: b2i(isTrain)})
				}
			}
		}
	}
	switch {
	case *splitDate != "":
		eval.SplitByDate(msgs, cutoff, corpus.Received)
		eval.SampleTest(msgs, *maxTest, *sample)
	case len(testDirs) > 0:
		eval.SampleTest(msgs, *maxTest, *sample)
	default:
		eval.AssignFolds(msgs, *folds, *maxTest)
	}
	if *printFolds {
		for _, m := range msgs {
			fmt.Fprintf(stdout, "%d\t%s\t%d\t%s\n", m.Fold, className(m.Spam), b2i(m.Test), m.Path)
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
		if !base.Bayes.Enabled {
			continue
		}
		pm, err := corpus.Parse(m.Raw, cfg.Message.MaxHeaders)
		if err != nil {
			bad++
			m.Fold = -1
			continue
		}
		fit.CountTokens(perFold[m.Fold], &foldTotals[m.Fold], spam.Tokens(pm, ignore), m.Spam)
		prog.update(i+1, len(msgs))
	}
	prog.done()
	trainSecs := time.Since(trainStart).Seconds()

	// The SpamAssassin rules, when enabled, are read and compiled once for
	// all folds (nothing in them is learned).
	var rules *sa.Engine
	if base.Rules.Enabled {
		if rules, err = spam.LoadRules(&base); err != nil {
			fmt.Fprintln(stderr, "mailwarden eval:", err)
			return 1
		}
	}
	logger := discardLogger()
	var rows []eval.FoldStats
	var all []*eval.Msg
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
		p, err := policy.New(&fcfg, []policy.Module{spam.ModuleWith(spam.Options{Tokens: mem, Rules: rules})}, logger, nil, nil)
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden eval:", err)
			return 1
		}
		var test []*eval.Msg
		for _, m := range msgs {
			if m.Fold == f && m.Test {
				test = append(test, m)
			}
		}
		prog := newProgress(stderr, fmt.Sprintf("eval: fold %d/%d", f+1, *folds))
		start, cpu0 := time.Now(), cpuTime()
		eval.ScoreAll(p, func(raw []byte) (*message.Message, error) { return corpus.Parse(raw, cfg.Message.MaxHeaders) }, test, *workers, prog.update)
		secs, cpu := time.Since(start).Seconds(), cpuTime()-cpu0
		prog.done()
		p.Close()
		scoreSecs += secs
		row := eval.Stats(fmt.Sprint(f+1), test, cfg.Score.Quarantine)
		row.Seconds, row.CPUSeconds = secs, cpu
		row.MsgsPerSec = float64(len(test)) / secs
		row.MsgsPerCPUSec = float64(len(test)) / max(cpu, 1e-9)
		scoreCPU += cpu
		rows = append(rows, row)
		all = append(all, test...)
	}
	total := eval.Stats("all", all, cfg.Score.Quarantine)
	total.Seconds = scoreSecs
	total.MsgsPerSec = float64(len(all)) / scoreSecs
	total.CPUSeconds = scoreCPU
	total.MsgsPerCPUSec = float64(len(all)) / max(scoreCPU, 1e-9)
	out := evalJSON{FoldStats: total, Folds: *folds, Threshold: cfg.Score.Quarantine, Workers: *workers,
		MsgsPerSecCore: total.MsgsPerSec / float64(min(*workers, runtime.NumCPU())), PerFold: rows, TrainingSeconds: trainSecs}
	for _, m := range all {
		switch {
		case !m.Spam && m.Score >= cfg.Score.Quarantine:
			out.FalsePositives = append(out.FalsePositives, fmt.Sprintf("%s %s", m.Path, m.Detail))
		case m.Spam && m.Score < cfg.Score.Quarantine:
			out.FalseNegatives = append(out.FalseNegatives, fmt.Sprintf("%s %s", m.Path, m.Detail))
		}
	}
	if *dump {
		for _, m := range all {
			fmt.Fprintf(stdout, "%s\t%.2f\t%s\t%s\n", className(m.Spam), m.Score, m.Path, m.Detail)
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
	mode := fmt.Sprintf("%d folds", *folds)
	if split {
		mode = "train/test split"
	}
	if *noBayes {
		mode += ", no Bayes"
	}
	fmt.Fprintf(stdout, "mailwarden eval: %d ham, %d spam, %s, threshold %.1f (score.quarantine), %d unreadable\n\n", total.Ham, total.Spam, mode, cfg.Score.Quarantine, bad)
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
