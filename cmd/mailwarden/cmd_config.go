package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mailwarden/mailwarden/examples"
	"github.com/mailwarden/mailwarden/policy"
	"github.com/mailwarden/mailwarden/policy/virus"
)

func runConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: mailwarden config check FILE | mailwarden config default")
		return 2
	}
	switch args[0] {
	case "default":
		stdout.Write(examples.DefaultConfig)
		return 0
	case "check":
		fs := flag.NewFlagSet("config check", flag.ContinueOnError)
		fs.SetOutput(stderr)
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "usage: mailwarden config check FILE")
			return 2
		}
		cfg, err := policy.LoadFile(fs.Arg(0), sections())
		if err == nil {
			err = virus.CheckSections(cfg)
		}
		if err != nil {
			// Already redacted by policy.Load; a read error may quote the
			// path only.
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", fs.Arg(0))
		return 0
	}
	fmt.Fprintf(stderr, "mailwarden config: unknown subcommand %q\n", args[0])
	return 2
}

// loadConfig reads the config file, or the embedded default when path is "".
func loadConfig(path string) (*policy.Config, error) {
	if path == "" {
		return policy.Load("(default)", examples.DefaultConfig, sections())
	}
	return policy.LoadFile(path, sections())
}

// loadServeConfig is loadConfig for the daemon (start and reload): a file
// must also be a complete config of this daemon (policy.CheckComplete).
func loadServeConfig(path string) (*policy.Config, error) {
	if path == "" {
		return loadConfig(path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := policy.CheckComplete(path, data); err != nil {
		return nil, err
	}
	return policy.Load(path, data, sections())
}
