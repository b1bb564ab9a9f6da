package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/sa"
)

// runRules prints what the SpamAssassin rule files of [spam.rules] give:
// files read, rules run, regexes translated, evals and rules skipped and
// why; with --test, the rules a message hits.
func runRules(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: the built-in default)")
	paths := fs.String("paths", "", "comma-separated rule files or directories (default: [spam.rules] paths, else SpamAssassin's)")
	test := fs.String("test", "", "a message file: list the rules it hits; a directory, or more files after the flags: one line per file, PATH<TAB>RULE,RULE,...")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden rules [-config FILE] [-paths A,B] [-test MESSAGE.eml | -test DIR | -test MESSAGE.eml MESSAGE.eml...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || (fs.NArg() != 0 && *test == "") {
		if err == nil {
			fs.Usage()
		}
		return 2
	}
	// Many messages (a directory, or several files): only the hit names,
	// one line per file, for comparisons with SpamAssassin's
	// (test/sa-agreement.sh) without a process per message.
	var batch []string
	if *test != "" {
		if fi, err := os.Stat(*test); err == nil && fi.IsDir() {
			ents, err := os.ReadDir(*test)
			if err != nil {
				fmt.Fprintln(stderr, "mailwarden rules:", err)
				return 1
			}
			batch = []string{}
			for _, de := range ents {
				// Regular files, also through symbolic links (a sample
				// linked from a corpus).
				p := filepath.Join(*test, de.Name())
				if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
					batch = append(batch, p)
				}
			}
		} else if fs.NArg() > 0 {
			batch = append([]string{*test}, fs.Args()...)
		}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	sc := *spam.ConfigOf(cfg)
	if *paths != "" {
		sc.Rules.Paths = strings.Split(*paths, ",")
	}
	start := time.Now()
	e, err := spam.LoadRules(&sc)
	if errors.Is(err, sa.ErrNoRules) && len(sc.Rules.Paths) == 0 {
		// The daemon's RulesMissing case: not an error for it.
		fmt.Fprintf(stdout, "no SpamAssassin rule files installed (looked in %s): the daemon runs without [spam.rules], with the built-in weights fitted without rules (apt-get install spamassassin, or run sa-update)\n",
			strings.Join(spam.DefaultRulePaths(), ", "))
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden rules:", err)
		return 1
	}
	if batch != nil {
		return testMany(e, batch, stdout, stderr)
	}
	weights := "weights from " + sc.Weights
	switch sc.Weights {
	case "", spam.WeightsBuiltin:
		weights = "the built-in weights fitted with the rules"
	case spam.WeightsNone:
		weights = "the hand-set weights and SpamAssassin's scores"
	}
	if sc.Rules.Enabled {
		fmt.Fprintf(stdout, "[spam.rules] enabled: the daemon runs these rules, combined by %s\n", weights)
	} else {
		fmt.Fprintln(stdout, "[spam.rules] enabled = false: the daemon does not run these rules")
	}
	fmt.Fprintf(stdout, "loaded and compiled in %v\n", time.Since(start).Round(time.Millisecond))
	if err := e.Describe(stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *test != "" {
		raw, err := os.ReadFile(*test)
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden rules:", err)
			return 1
		}
		r := e.Check(sa.FromRaw(raw), sa.Input{Now: time.Now()})
		fmt.Fprintf(stdout, "%s: score %.2f\n", *test, r.Score)
		for _, h := range r.Hits {
			fmt.Fprintf(stdout, "  %6.2f  %-32s %s\n", h.Score, h.Signal(), e.Description(h.Rule))
		}
	}
	return 0
}

// testMany prints the scored rules each message hits, PATH<TAB>RULE,RULE,...
// in the order of the files; a file that cannot be read is an error.
func testMany(e *sa.Engine, files []string, stdout, stderr io.Writer) int {
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden rules:", err)
			return 1
		}
		r := e.Check(sa.FromRaw(raw), sa.Input{Now: time.Now()})
		names := make([]string, len(r.Hits))
		for i, h := range r.Hits {
			names[i] = h.Rule
		}
		fmt.Fprintf(stdout, "%s\t%s\n", f, strings.Join(names, ","))
	}
	return 0
}
