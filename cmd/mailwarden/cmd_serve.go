package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/daemon"
	"github.com/mailwarden/mailwarden/filter"
	"github.com/mailwarden/mailwarden/policy/store"
)

// runServe is `mailwarden serve`: flags, the config, the logger; the
// daemon itself is internal/daemon.
// serveGCPercent is the daemon's GOGC unless the environment sets one.
const serveGCPercent = 50

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: "+defaultConfigPath+" when it exists, else the built-in default, see 'mailwarden config default')")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	*cfgPath = configPath(*cfgPath)
	if os.Getenv("GOGC") == "" {
		// Most of the live heap is long-lived (the Bayes token table,
		// ~17 MB for the corpus); Go's default GOGC=100 lets the heap
		// grow to twice the live set between collections. 50 keeps peak
		// RSS under the corpus ~13 MB lower at no measurable CPU cost
		// (README, Performance). GOGC in the environment still wins.
		debug.SetGCPercent(serveGCPercent)
	}
	cfg, err := loadServeConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	level := &slog.LevelVar{}
	logger, closeLog, err := daemon.NewLogger(cfg, level, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer closeLog()
	// Every library logs through our handler: go-redis and go-milter have
	// their own hooks; the log package (any other library) follows
	// slog.SetDefault. A plain-text line in a JSON log is one `report`
	// skips.
	slog.SetDefault(logger)
	filter.SetMilterLogger(logger)
	store.SetRedisLogger(logger)

	d := daemon.New(daemon.Options{ConfigPath: *cfgPath, Load: loadServeConfig, Logger: logger, Level: level, Version: versionString()})
	return d.Run(cfg)
}
