package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/quarcli"
)

// runQuarantine is `mailwarden quarantine list|show|release|delete|purge`
// and `senders|allow|deny|unlist` (the recipients' sender lists):
// the running daemon holds the index, so the command goes through the
// control socket.
func runQuarantine(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quarantine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, quarcli.Usage+"\nflags before the command:\n"); fs.PrintDefaults() }
	cfgPath := fs.String("config", "", "config file (to find [control] socket)")
	socket := fs.String("socket", "", "control socket (default: [control] socket of the config)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	req, err := quarcli.Parse(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	req.By = os.Getenv("SUDO_USER")
	if req.By == "" {
		if u, err := user.Current(); err == nil {
			req.By = u.Username
		}
	}
	sock, err := controlSocket(*cfgPath, *socket)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	resp, err := control.Call(sock, control.Request{Cmd: "quarantine", Quarantine: &req})
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden quarantine:", err)
		return 1
	}
	if resp.Quarantine == nil {
		fmt.Fprintln(stderr, "mailwarden quarantine: empty answer")
		return 1
	}
	if err := quarcli.Print(stdout, req, resp.Quarantine, time.Now()); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
