package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/corpus"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/eval"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/fit"
	"github.com/mailwarden/mailwarden/policy/message"
)

// runLearnFit is `mailwarden learn --fit`: fit the weights that combine
// the spam signals on the operator's corpus (see package fit), report the
// cross-validated figures and write the weights file [spam] weights loads.
// It reads the corpus only; the token store is not touched.
func runLearnFit(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("learn --fit", flag.ContinueOnError)
	fset.SetOutput(stderr)
	cfgPath := fset.String("config", "", "config file (default: the built-in default); its [spam] section says which signals there are")
	var spamPaths, hamPaths multiFlag
	fset.Var(&spamPaths, "spam", "file or directory of spam (repeatable)")
	fset.Var(&hamPaths, "ham", "file or directory of ham (repeatable)")
	out := fset.String("out", "", "where to write the weights (e.g. /var/lib/mailwarden/weights.toml); - for stdout")
	o := fit.DefaultOptions()
	fset.IntVar(&o.Folds, "folds", o.Folds, "cross-validation folds (also those Bayes is trained on for the features)")
	fset.Float64Var(&o.Lambda, "lambda", o.Lambda, "L2 penalty")
	fset.IntVar(&o.MinCount, "min-count", o.MinCount, "a signal needs this many messages to get its own weight")
	fset.Float64Var(&o.BayesAlone, "bayes-alone", o.BayesAlone, "the most Bayes may score on its own, in points (0: no bound)")
	fset.Float64Var(&o.RuleStrength, "rule-strength", o.RuleStrength, "L2 pull of a SpamAssassin rule's weight towards its own score × rule-scale (0: towards 0 with lambda)")
	fset.Float64Var(&o.RuleScale, "rule-scale", o.RuleScale, "our points per SpamAssassin point for that pull (2: its 5 is our quarantine 10)")
	fset.Float64Var(&o.MinPrior, "min-prior", o.MinPrior, "signals configured within ± this (SpamAssassin's informational 0.001 and T_ 0.01 rules) are not fitted and keep their score")
	fset.BoolVar(&o.SignConstrained, "sign-constrained", o.SignConstrained, "keep each weight on the side of its configured score (spam rules never negative, nice rules never positive)")
	fset.Float64Var(&o.FPCost, "fp-cost", o.FPCost, "a false positive costs as much as this many missed spams: quarantine where the odds reach it")
	var selSpam, selHam multiFlag
	fset.Var(&selSpam, "select-spam", "spam from another source or time: choose --rule-strength and --bayes-alone on it (repeatable)")
	fset.Var(&selHam, "select-ham", "ham for --select-spam (repeatable)")
	before := fset.String("before", "", "fit only on messages received before YYYY-MM-DD (topmost Received, else Date; as eval --split-date)")
	note := fset.String("note", "", "a line for the file's comment (how the corpus was chosen)")
	workers := fset.Int("workers", runtime.GOMAXPROCS(0), "messages read concurrently")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden learn --fit [-config F] --ham PATH... --spam PATH... --out FILE [--folds 5] [--lambda 1] [--fp-cost 20] [--bayes-alone 7.5]")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if len(spamPaths) == 0 || len(hamPaths) == 0 || *out == "" || fset.NArg() > 0 {
		fset.Usage()
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	o.AddHeader, o.Quarantine = cfg.Score.AddHeader, cfg.Score.Quarantine
	if err := o.Validate(); err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	msgs, err := loadMessages(hamPaths, spamPaths)
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	if *before != "" {
		cutoff, err := time.Parse("2006-01-02", *before)
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden learn: --before:", err)
			return 2
		}
		eval.SplitByDate(msgs, cutoff, corpus.Received)
		kept := msgs[:0]
		for _, m := range msgs {
			if m.Fold == 1 { // the training side of eval's split
				kept = append(kept, m)
			}
		}
		msgs = kept
	}
	eval.AssignFolds(msgs, o.Folds, 0)
	if len(selSpam) > 0 || len(selHam) > 0 {
		val, err := loadMessages(selHam, selSpam)
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden learn:", err)
			return 1
		}
		for _, m := range val {
			m.Fold = o.Folds
		}
		msgs = append(msgs, val...)
	}
	start := time.Now()
	prog := newProgress(stderr, "learn --fit: features")
	parse := func(raw []byte) (*message.Message, error) { return corpus.Parse(raw, cfg.Message.MaxHeaders) }
	samples, err := fit.Collect(msgs, o.Folds, cfg, *spamSection(cfg), parse, *workers, prog.update)
	prog.done()
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	if len(selSpam) > 0 || len(selHam) > 0 {
		var train, val []fit.Sample
		for _, s := range samples {
			if s.Fold == o.Folds {
				val = append(val, s)
			} else {
				train = append(train, s)
			}
		}
		choices, err := fit.Select(train, val, o, fit.Grid{
			RuleStrength: []float64{0, 10, 100},
			BayesAlone:   []float64{0, 10, 7.5, 5},
			Odds:         []float64{o.FPCost, o.FPCost / 2, 50, 200, 1000, 5000},
		})
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden learn:", err)
			return 1
		}
		fmt.Fprintf(stderr, "learn --fit: choosing on %d messages not fitted on (cost = %g × FP rate + miss rate at quarantine)\n", len(val), o.FPCost)
		fmt.Fprintf(stderr, "  %-13s %-11s %-6s %8s %8s %7s %7s\n", "rule-strength", "bayes-alone", "odds", "FP", "recall", "AUC", "cost")
		for _, c := range choices {
			fmt.Fprintf(stderr, "  %-13g %-11g %-6g %7.2f%% %7.2f%% %7.4f %7.4f\n", c.RuleStrength, c.BayesAlone, c.Odds, 100*c.Stats.FPRate, 100*c.Stats.Recall, c.Stats.AUC, c.Cost)
		}
		o.RuleStrength, o.BayesAlone, o.FPCost = choices[0].RuleStrength, choices[0].BayesAlone, choices[0].Odds
		fmt.Fprintf(stderr, "  chosen: --rule-strength %g --bayes-alone %g --fp-cost %g\n", o.RuleStrength, o.BayesAlone, o.FPCost)
		samples = train
	}
	cv, err := fit.CrossValidate(samples, o)
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	w, err := fit.Fit(samples, o)
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	w.Fit.CVFPRate, w.Fit.CVRecall, w.Fit.CVAUC = cv.Bayes.FPRate, cv.Bayes.Recall, cv.Bayes.AUC
	w.Fit.Corpus = *note
	alone := ""
	if o.BayesAlone > 0 {
		alone = fmt.Sprintf("; Bayes alone scores at most %g", o.BayesAlone)
	}
	comment := fmt.Sprintf(`Spam weights fitted by mailwarden learn --fit on %d ham and %d spam.
%s
Score = intercept + the weights of the signals that fired + bayes_logit * logit(Bayes p),
in points: even odds score add_header (%g), odds of %g:1 score quarantine (%g).
[bayes] applies when Bayes answered, [nobayes] otherwise%s.
%d-fold cross-validated at quarantine: with Bayes FP %.2f %%, recall %.2f %%, AUC %.4f;
without Bayes FP %.2f %%, recall %.2f %%, AUC %.4f.`,
		w.Fit.Ham, w.Fit.Spam, *note, o.AddHeader, o.FPCost, o.Quarantine, alone, o.Folds,
		100*cv.Bayes.FPRate, 100*cv.Bayes.Recall, cv.Bayes.AUC, 100*cv.NoBayes.FPRate, 100*cv.NoBayes.Recall, cv.NoBayes.AUC)
	data, err := w.Encode(comment)
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	if *out == "-" {
		stdout.Write(data)
	} else if err := os.WriteFile(*out, data, 0o644); err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	fmt.Fprintf(stderr, "learn --fit: %d ham, %d spam, %d-fold cross-validation at quarantine %g (%s)\n", w.Fit.Ham, w.Fit.Spam, o.Folds, o.Quarantine, time.Since(start).Round(time.Second))
	fmt.Fprintf(stderr, "  with Bayes:    FP %.2f %% (%d), recall %.2f %%, AUC %.4f\n", 100*cv.Bayes.FPRate, cv.Bayes.FP, 100*cv.Bayes.Recall, cv.Bayes.AUC)
	fmt.Fprintf(stderr, "  without Bayes: FP %.2f %% (%d), recall %.2f %%, AUC %.4f\n", 100*cv.NoBayes.FPRate, cv.NoBayes.FP, 100*cv.NoBayes.Recall, cv.NoBayes.AUC)
	if *out != "-" {
		fmt.Fprintf(stderr, "wrote %s; set [spam] weights = %q\n", *out, *out)
	}
	return 0
}

// loadMessages reads labelled corpora (files, directories, mbox files).
func loadMessages(hamPaths, spamPaths []string) ([]*eval.Msg, error) {
	var msgs []*eval.Msg
	for _, c := range []struct {
		spam  bool
		paths []string
	}{{false, hamPaths}, {true, spamPaths}} {
		for _, p := range c.paths {
			files, err := corpus.Files(p)
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				data, err := readFile(f)
				if err != nil {
					return nil, err
				}
				for i, raw := range corpus.Split(data) {
					name := f
					if i > 0 {
						name = fmt.Sprintf("%s#%d", f, i)
					}
					msgs = append(msgs, &eval.Msg{Path: name, Raw: raw, Spam: c.spam})
				}
			}
		}
	}
	return msgs, nil
}
