package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/daemon"
)

// runServe is `mailwarden serve`: flags, the config, the logger; the
// daemon itself is internal/daemon.
func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: the built-in default, see 'mailwarden config default')")
	if err := fs.Parse(args); err != nil {
		return 2
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

	d := daemon.New(daemon.Options{ConfigPath: *cfgPath, Load: loadServeConfig, Logger: logger, Level: level, Version: versionString()})
	return d.Run(cfg)
}
