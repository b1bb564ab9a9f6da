package main

import (
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/report"
	"github.com/mailwarden/mailwarden/policy"
)

func runReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := report.DefaultOptions()
	since := fs.String("since", "", `only lines newer than this (e.g. "24h", "7d"); default: everything`)
	htmlFile := fs.String("html", "", "also write a self-contained HTML page with charts to this file")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of text")
	topN := fs.Int("top", def.Top, "length of the top-N tables")
	burstN := fs.Int("burst", def.BurstCount, "report an address or client with at least this many messages within -burst-window (0: off)")
	burstW := fs.String("burst-window", def.BurstWindow.String(), "window for -burst")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden report [--since 24h] [--html FILE] [--json] LOGFILE... (- is standard input; .gz is read compressed)")
		fs.PrintDefaults()
	}
	// Flags may follow the file names.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) == 0 {
		fs.Usage()
		return 2
	}
	opt := report.Options{Top: *topN, BurstCount: *burstN}
	w, err := policy.ParseDuration(*burstW)
	if err != nil {
		fmt.Fprintf(stderr, "report: -burst-window: %v\n", err)
		return 2
	}
	opt.BurstWindow = w
	now := time.Now()
	if *since != "" {
		d, err := policy.ParseDuration(*since)
		if err != nil || d <= 0 {
			fmt.Fprintf(stderr, "report: -since %q: want a positive duration like 24h or 7d\n", *since)
			return 2
		}
		opt.Since = now.Add(-d)
	}
	rep := report.New(opt)
	for _, f := range files {
		if err := readLog(rep, f); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	rep.Finish()
	if *asJSON {
		e := json.NewEncoder(stdout)
		e.SetIndent("", "  ")
		if err := e.Encode(rep); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	} else if err := rep.WriteText(stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *htmlFile != "" {
		f, err := os.Create(*htmlFile)
		if err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
			return 1
		}
		err = rep.WriteHTML(f, now)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintf(stderr, "report: %v\n", err)
			return 1
		}
	}
	return 0
}

func readLog(rep *report.Report, name string) error {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		defer f.Close()
		r = f
	}
	if strings.HasSuffix(name, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("report: %s: %w", name, err)
		}
		defer gz.Close()
		r = gz
	}
	if err := rep.Read(r); err != nil {
		return fmt.Errorf("report: %s: %w", name, err)
	}
	return nil
}
