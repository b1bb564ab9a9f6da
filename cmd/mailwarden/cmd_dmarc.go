package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/dmarc"
	"github.com/mailwarden/mailwarden/policy/dns"
	"github.com/mailwarden/mailwarden/policy/rua"
	"github.com/mailwarden/mailwarden/policy/store"
)

func runDMARC(args []string, stdout, stderr io.Writer) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: mailwarden dmarc send [-config F] [--date YYYY-MM-DD] [--dry-run --out DIR]")
		fmt.Fprintln(stderr, "       mailwarden dmarc ingest [--json] FILE|DIR")
		return 2
	}
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "send":
		return runDMARCSend(args[1:], stdout, stderr)
	case "ingest":
		return runDMARCIngest(args[1:], stdout, stderr)
	}
	return usage()
}

func runDMARCSend(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("dmarc send", flag.ContinueOnError)
	fset.SetOutput(stderr)
	cfgPath := fset.String("config", "", "config file; its [dmarc_report], [store] and [dns] are used")
	date := fset.String("date", "", "report on this UTC day only (YYYY-MM-DD); default: every finished day still due")
	nowFlag := fset.String("now", "", "the current time, RFC 3339 (for tests and replays); default: the clock")
	dry := fset.Bool("dry-run", false, "build the reports and write them to --out; send nothing, change nothing")
	out := fset.String("out", "", "directory for --dry-run: one .xml.gz and one .eml per report and destination")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden dmarc send [-config F] [--date YYYY-MM-DD] [--dry-run --out DIR]")
		fmt.Fprintln(stderr, "With the bolt store, stop the daemon first (bbolt locks its file) or use Redis;")
		fmt.Fprintln(stderr, "the daemon itself sends every hour.")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil || fset.NArg() > 0 || (*dry && *out == "") {
		fset.Usage()
		return 2
	}
	now := time.Now()
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden dmarc send: --now:", err)
			return 2
		}
		now = t
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	dc := dmarc.ConfigOf(cfg)
	if !dc.Enabled {
		fmt.Fprintln(stderr, "mailwarden dmarc send: [dmarc_report] enabled = false")
		return 1
	}
	st, err := store.Open(store.ConfigOf(cfg))
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden dmarc send:", err)
		return 1
	}
	defer st.Close()
	res, err := dns.New(dns.ConfigOf(cfg))
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden dmarc send:", err)
		return 1
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	svc := dmarc.New(dc, st, res, log)
	ctx := context.Background()
	day := rua.DayStart(now).AddDate(0, 0, -1)
	if *date != "" {
		if day, err = dmarc.ParseDate(*date); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	if *dry {
		reps, err := svc.Reporter.Build(ctx, day)
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden dmarc send:", err)
			return 1
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fmt.Fprintln(stderr, "mailwarden dmarc send:", err)
			return 1
		}
		for _, r := range reps {
			if err := os.WriteFile(filepath.Join(*out, r.FileName()), r.GZ, 0o644); err != nil {
				fmt.Fprintln(stderr, "mailwarden dmarc send:", err)
				return 1
			}
			eml := r.Compose(svc.Reporter.From, "rua@"+r.Domain, now)
			if err := os.WriteFile(filepath.Join(*out, r.FileName()+".eml"), eml, 0o644); err != nil {
				fmt.Fprintln(stderr, "mailwarden dmarc send:", err)
				return 1
			}
			fmt.Fprintf(stdout, "%s\t%s\t%d messages\n", r.Domain, r.FileName(), r.Messages)
		}
		return 0
	}
	if *date != "" {
		err = svc.Reporter.RunDay(ctx, day, now)
	} else {
		err = svc.Reporter.Run(ctx, now)
	}
	code := 0
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden dmarc send:", err)
		code = 1
	}
	for d := day; !d.After(day); d = d.AddDate(0, 0, 1) {
		jobs, err := svc.Reporter.Jobs(ctx, d)
		if err != nil {
			fmt.Fprintln(stderr, "mailwarden dmarc send:", err)
			return 1
		}
		for _, j := range jobs {
			state := string(j.State)
			if j.Unconfirmed {
				state += " (unconfirmed: the sender died after the final dot; not resent)"
			}
			if j.Notice {
				state += " (too large: notice sent)"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\tattempts=%d\n", j.ReportID, j.Domain, j.To, state, j.Attempts)
		}
	}
	return code
}

func runDMARCIngest(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("dmarc ingest", flag.ContinueOnError)
	fset.SetOutput(stderr)
	asJSON := fset.Bool("json", false, "print the summary as JSON")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden dmarc ingest [--json] FILE|DIR")
		fmt.Fprintln(stderr, "Reads received aggregate reports (.xml, .xml.gz, .zip) and sums them per source.")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil || fset.NArg() != 1 {
		fset.Usage()
		return 2
	}
	reps, errs := rua.ReadPath(fset.Arg(0))
	for _, e := range errs {
		fmt.Fprintln(stderr, "mailwarden dmarc ingest:", e)
	}
	s := rua.Summarize(reps)
	var err error
	if *asJSON {
		err = s.WriteJSON(stdout)
	} else {
		err = s.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden dmarc ingest:", err)
		return 1
	}
	if len(reps) == 0 {
		return 1
	}
	return 0
}
