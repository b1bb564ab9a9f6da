package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/corpus"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/message"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/store"
)

func runLearn(args []string, stdout, stderr io.Writer) int {
	for i, a := range args {
		if a == "--fit" || a == "-fit" {
			return runLearnFit(append(append([]string{}, args[:i]...), args[i+1:]...), stdout, stderr)
		}
	}
	fset := flag.NewFlagSet("learn", flag.ContinueOnError)
	fset.SetOutput(stderr)
	cfgPath := fset.String("config", "", "config file (default: the built-in default); its [store] and [spam.bayes] say where tokens go")
	var spamPaths, hamPaths multiFlag
	fset.Var(&spamPaths, "spam", "file or directory of spam (.eml files or mbox files; repeatable)")
	fset.Var(&hamPaths, "ham", "file or directory of ham (repeatable)")
	forget := fset.Bool("forget", false, "remove what was learned from these messages instead")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden learn [-config F] [--forget] --spam PATH... --ham PATH...")
		fmt.Fprintln(stderr, "With the bolt store, stop the daemon first (bbolt locks its file) or use Redis.")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if len(spamPaths)+len(hamPaths) == 0 || fset.NArg() > 0 {
		fset.Usage()
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	sec := spamSection(cfg)
	if !sec.Bayes.Enabled {
		fmt.Fprintln(stderr, "mailwarden learn: [spam.bayes] enabled = false")
		return 1
	}
	st, err := store.Open(store.ConfigOf(cfg))
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	defer st.Close()
	sc := *sec
	sc.DNSBL, sc.URIBL = nil, nil
	sc.Rules.Enabled = false // learning reads tokens only
	chk, err := spam.New(&sc, cfg, spam.Options{Store: st})
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	ts := chk.TokenStore()

	type job struct {
		class bayes.Class
		path  string
	}
	var jobs []job
	for _, c := range []struct {
		class bayes.Class
		paths []string
	}{{bayes.ClassSpam, spamPaths}, {bayes.ClassHam, hamPaths}} {
		for _, p := range c.paths {
			files, err := corpus.Files(p)
			if err != nil {
				fmt.Fprintln(stderr, "mailwarden learn:", err)
				return 1
			}
			for _, f := range files {
				jobs = append(jobs, job{c.class, f})
			}
		}
	}
	prog := newProgress(stderr, "learn")
	ctx := context.Background()
	var changed, same, bad int
	start := time.Now()
	for i, j := range jobs {
		err := corpus.Each(j.path, cfg.Message.MaxHeaders, func(m *message.Message) error {
			ok, err := bayes.Learn(ctx, ts, spam.MessageID(m), spam.Tokens(m, chk.Ignore()), j.class, *forget)
			if err != nil {
				return err
			}
			if ok {
				changed++
			} else {
				same++
			}
			return nil
		})
		if err != nil {
			var pe *corpus.ParseError
			if errors.As(err, &pe) {
				bad++
				fmt.Fprintf(stderr, "mailwarden learn: %s: %v (skipped)\n", j.path, err)
				continue
			}
			prog.done()
			fmt.Fprintln(stderr, "mailwarden learn:", err)
			return 1
		}
		prog.update(i+1, len(jobs))
	}
	prog.done()
	_, total, err := ts.Counts(ctx, nil)
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	verb := "learned"
	if *forget {
		verb = "forgot"
	}
	fmt.Fprintf(stdout, "%s %d messages (%d unchanged, %d unreadable) in %s; the store now holds %d spam and %d ham (Bayes scores from %d spam and %d ham)\n",
		verb, changed, same, bad, time.Since(start).Round(time.Millisecond), total.Spam, total.Ham, sec.Bayes.MinSpam, sec.Bayes.MinHam)
	return 0
}

// progress prints "\rNAME i/n" on a terminal and nothing otherwise.
type progress struct {
	w     io.Writer
	name  string
	on    bool
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, name string) *progress {
	return &progress{w: w, name: name, on: isTerminal(w)}
}

func (p *progress) update(i, n int) {
	if !p.on || (time.Since(p.last) < 100*time.Millisecond && i != n) {
		return
	}
	p.last = time.Now()
	p.shown = true
	fmt.Fprintf(p.w, "\r%s: %d/%d (%d%%)", p.name, i, n, i*100/max(n, 1))
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// isTerminal reports whether w is a terminal: a character device that
// answers the terminal ioctl (/dev/null is a character device too).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// spamSection is the [spam] section of cfg (its defaults when absent).
func spamSection(cfg *policy.Config) *spam.Config {
	return spam.ConfigOf(cfg)
}
