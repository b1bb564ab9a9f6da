package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"text/tabwriter"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/audit"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/daemon"
	"github.com/mailwarden/mailwarden/policy/relay"
	"github.com/mailwarden/mailwarden/policy/spool"
)

// runAudit exits 0 when nothing needs fixing, 3 with warnings, 4 with
// critical findings, 1 on errors.
func runAudit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mainCF := fs.String("main-cf", "", "read this main.cf instead of running `postconf -n`")
	cfgPath := fs.String("config", "", "mailwarden config (default: the built-in default)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	verbose := fs.Bool("v", false, "also list the checks that passed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var src io.Reader
	if *mainCF != "" {
		f, err := os.Open(*mainCF)
		if err != nil {
			fmt.Fprintf(stderr, "audit: %v\n", err)
			return 1
		}
		defer f.Close()
		src = f
	} else {
		out, err := exec.Command("postconf", "-n").Output()
		if err != nil {
			fmt.Fprintf(stderr, "audit: postconf -n: %v (use --main-cf FILE)\n", err)
			return 1
		}
		src = bytes.NewReader(out)
	}
	pf, err := audit.ParseMainCF(src)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	in := audit.Input{Postfix: pf, Config: cfg, Listen: daemon.ListenOf(cfg).Address}
	in.RelayGuard = relay.ConfigOf(cfg).Enabled
	if s := spool.ConfigOf(cfg); s.Enabled {
		in.SpoolDirs = append([]string{}, spool.Dirs(s, cfg)...)
	}
	findings := audit.Run(in)
	worst := audit.SevOK
	for _, f := range findings {
		worst = max(worst, f.Severity)
	}
	if *asJSON {
		e := json.NewEncoder(stdout)
		e.SetIndent("", "  ")
		e.Encode(findings)
	} else {
		w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "SEVERITY\tCHECK\tFINDING")
		for _, f := range findings {
			if f.Severity == audit.SevOK && !*verbose {
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", f.Severity, f.ID, f.Message)
			if f.Fix != "" {
				fmt.Fprintf(w, "\t\tfix: %s\n", f.Fix)
			}
		}
		w.Flush()
	}
	switch worst {
	case audit.SevCritical:
		return 4
	case audit.SevWarning:
		return 3
	}
	return 0
}
