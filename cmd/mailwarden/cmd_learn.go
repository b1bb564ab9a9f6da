package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/corpus"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/spam"
	"github.com/mailwarden/mailwarden/policy/spam/bayes"
	"github.com/mailwarden/mailwarden/policy/store"
)

// runLearn is `mailwarden learn`. When the daemon of the config answers
// on its control socket, every message goes through it, into its own
// store (bbolt allows one process; a Redis store is shared anyway);
// otherwise this process opens the store itself. "-" is one message on
// standard input (a Sieve pipe). Learning nothing is an error.
func runLearn(args []string, stdout, stderr io.Writer) int {
	for i, a := range args {
		if a == "--fit" || a == "-fit" {
			return runLearnFit(append(append([]string{}, args[:i]...), args[i+1:]...), stdout, stderr)
		}
	}
	fset := flag.NewFlagSet("learn", flag.ContinueOnError)
	fset.SetOutput(stderr)
	cfgPath := fset.String("config", "", "config file (default: "+defaultConfigPath+" when it exists, else the built-in default); its [control] socket and [store] say where tokens go")
	var spamPaths, hamPaths multiFlag
	fset.Var(&spamPaths, "spam", "file or directory of spam (.eml files or mbox files, symlinks followed; \"-\": one message on stdin; repeatable)")
	fset.Var(&hamPaths, "ham", "file or directory of ham (repeatable)")
	forget := fset.Bool("forget", false, "remove what was learned from these messages instead")
	offline := fset.Bool("offline", false, "do not go through the running daemon: open the store here")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden learn [-config F] [--forget] [--offline] --spam PATH... --ham PATH...")
		fmt.Fprintln(stderr, "Goes through the running daemon when its control socket answers; else opens the store.")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if len(spamPaths)+len(hamPaths) == 0 || fset.NArg() > 0 {
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
	if !sec.Bayes.Enabled {
		fmt.Fprintln(stderr, "mailwarden learn: [spam.bayes] enabled = false")
		return 1
	}

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
			if p == "-" {
				jobs = append(jobs, job{c.class, p})
				continue
			}
			files, err := corpus.Files(p)
			if err != nil {
				fmt.Fprintln(stderr, "mailwarden learn:", err)
				return 1
			}
			if len(files) == 0 {
				fmt.Fprintf(stderr, "mailwarden learn: %s: no message file in it\n", p)
				return 1
			}
			for _, f := range files {
				jobs = append(jobs, job{c.class, f})
			}
		}
	}
	// messages returns the raw messages of a job.
	messages := func(j job) ([][]byte, error) {
		if j.path == "-" {
			b, err := io.ReadAll(io.LimitReader(os.Stdin, control.MaxMessage))
			return [][]byte{b}, err
		}
		b, err := os.ReadFile(j.path)
		if err != nil {
			return nil, err
		}
		return corpus.Split(b), nil
	}

	// learn teaches one message; ok false: it was already learned so.
	var learn func(class bayes.Class, raw []byte) (ok bool, err error)
	var counts func() (spam, ham int64, err error)
	via := ""
	sock := control.ConfigOf(cfg).Socket
	var client *control.Client
	if !*offline {
		client, _ = control.Dial(sock)
	}
	ctx := context.Background()
	if client != nil {
		defer client.Close()
		via = "through the running daemon (" + sock + ")"
		var last control.LearnResult
		learn = func(class bayes.Class, raw []byte) (bool, error) {
			name := "ham"
			if class == bayes.ClassSpam {
				name = "spam"
			}
			resp, err := client.Do(control.Request{Cmd: "learn", Learn: &control.LearnRequest{Class: name, Forget: *forget}}, raw)
			if err != nil {
				if resp != nil && strings.HasPrefix(resp.Error, "learn: unreadable message") {
					return false, &corpus.ParseError{}
				}
				return false, err
			}
			last = *resp.Learned
			return resp.Learned.Changed, nil
		}
		counts = func() (int64, int64, error) { return last.Spam, last.Ham, nil }
	} else {
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
		via = "offline: this process opened the store"
		if !*offline {
			via += " (no daemon answers on " + orBuiltin(sock, "no [control] socket") + ")"
		}
		learn = func(class bayes.Class, raw []byte) (bool, error) {
			m, err := corpus.Parse(raw, cfg.Message.MaxHeaders)
			if err != nil {
				return false, err
			}
			return bayes.Learn(ctx, ts, spam.MessageID(m), spam.Tokens(m, chk.Ignore()), class, *forget)
		}
		counts = func() (int64, int64, error) {
			_, total, err := ts.Counts(ctx, nil)
			return total.Spam, total.Ham, err
		}
	}

	prog := newProgress(stderr, "learn")
	var changed, same, bad int
	start := time.Now()
	for i, j := range jobs {
		raws, err := messages(j)
		if err != nil {
			prog.done()
			fmt.Fprintln(stderr, "mailwarden learn:", err)
			return 1
		}
		for _, raw := range raws {
			ok, err := learn(j.class, raw)
			var pe *corpus.ParseError
			switch {
			case errors.As(err, &pe):
				bad++
				fmt.Fprintf(stderr, "mailwarden learn: %s: unreadable message (skipped)\n", j.path)
			case err != nil:
				prog.done()
				fmt.Fprintln(stderr, "mailwarden learn:", err)
				return 1
			case ok:
				changed++
			default:
				same++
			}
		}
		prog.update(i+1, len(jobs))
	}
	prog.done()
	if changed+same == 0 {
		fmt.Fprintf(stderr, "mailwarden learn: nothing learned: no readable message (%d unreadable) in %s\n", bad, strings.Join(append(spamPaths, hamPaths...), " "))
		return 1
	}
	nspam, nham, err := counts()
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden learn:", err)
		return 1
	}
	verb := "learned"
	if *forget {
		verb = "forgot"
	}
	fmt.Fprintf(stdout, "%s %d messages (%d unchanged, %d unreadable) in %s, %s; config %s; the store now holds %d spam and %d ham (Bayes scores from %d spam and %d ham)\n",
		verb, changed, same, bad, time.Since(start).Round(time.Millisecond), via, configName(*cfgPath), nspam, nham, sec.Bayes.MinSpam, sec.Bayes.MinHam)
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
