// Command mailwarden is a milter daemon for Postfix and Sendmail that
// verifies SPF, DKIM and DMARC, scans with ClamAV, scores spam, polices
// auto-generated mail and answers the MTA with one explained verdict.
//
// This package only wires things together: flags, config, signals and
// subcommands. Each subcommand lives in its own cmd_*.go file and is
// listed in commands below; logic that only the binary needs lives in
// internal/ (wire, corpus, eval, report, audit, health).
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int // exit code
}

// commands is every subcommand. Adding one: a cmd_NAME.go file with
// runNAME(args, stdout, stderr) int, and a line here.
var commands = commandTable(
	command{"audit", "check Postfix's config (postconf -n or main.cf) and ours against the guidance", runAudit},
	command{"check", "run the pipeline on a message file and explain the verdict", runCheck},
	command{"config", "check a config file, or print the default one", runConfig},
	command{"dkim", "make a DKIM signing key (keygen) or compare the configured keys with DNS (check)", runDKIM},
	command{"dmarc", "DMARC aggregate reports: send the due ones (or a dry run), ingest received ones", runDMARC},
	command{"eval", "measure spam scoring on a ham and a spam corpus (k-fold cross-validation)", runEval},
	command{"learn", "teach the Bayes classifier ham and spam (or --forget them)", runLearn},
	command{"mode", "switch the running daemon's mode: enforce|monitor|tempfail-all|accept-all|config", runMode},
	command{"quarantine", "list, show, release, delete or purge quarantined mail (through the running daemon)", runQuarantine},
	command{"rules", "show what the SpamAssassin rule files give: loaded, translated, skipped and why", runRules},
	command{"report", "evaluate JSON logs: totals, rejections, auth failures, viruses, relay attempts, bursts", runReport},
	command{"serve", "run the milter daemon", runServe},
	command{"status", "show the running daemon's mode, uptime, sessions and backend health", runStatus},
	command{"version", "print the version", runVersion},
)

func commandTable(cs ...command) map[string]command {
	m := map[string]command{}
	for _, c := range cs {
		m[c.name] = c
	}
	return m
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mailwarden: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mailwarden COMMAND [flags]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'mailwarden COMMAND -h' for a command's flags.")
}

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
