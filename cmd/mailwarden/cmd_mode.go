package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/policy"
)

// runMode sets (or with "config", drops) the run-time mode override through
// the control socket. The override takes effect for the next message and
// outlives config reloads; it is lost on restart.
func runMode(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (to find [control] socket)")
	socket := fs.String("socket", "", "control socket (default: [control] socket of the config)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden mode [-config F] [-socket S] enforce|monitor|tempfail-all|accept-all|config")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	want := fs.Arg(0)
	if want != "config" {
		if _, err := policy.ParseMode(want); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	sock, err := controlSocket(*cfgPath, *socket)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	resp, err := control.Call(sock, control.Request{Cmd: "mode", Mode: want})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	s := resp.Status
	src := "override"
	if !s.Override {
		src = "from the config"
	}
	fmt.Fprintf(stdout, "mode %s (%s; configured: %s)\n", s.Mode, src, s.ConfiguredMode)
	return 0
}
