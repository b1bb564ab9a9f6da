package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/control"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/explain"
	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/wire"
)

// runCheck is `mailwarden check`. When the daemon of the config answers
// on its control socket, it runs the message through its pipeline in
// force, on its state, as a dry run (nothing written); otherwise this
// process builds the pipeline and opens the state store itself. The
// output says which happened.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: "+defaultConfigPath+" when it exists, else the built-in default)")
	var env explain.Envelope
	fs.StringVar(&env.ClientIP, "client-ip", "", "connecting client's address (default: none, i.e. a local submission)")
	fs.StringVar(&env.ClientName, "client-name", "unknown", "client's verified reverse DNS name")
	fs.StringVar(&env.HELO, "helo", "", "HELO/EHLO name")
	fs.StringVar(&env.From, "from", "", "envelope sender (default: the From: header's address; \"<>\" for the null sender)")
	fs.StringVar(&env.Auth, "auth", "", "SASL login name, as for an authenticated client")
	fs.StringVar(&env.QueueID, "queue-id", "CHECK", "queue id to show in logs")
	var rcpts multiFlag
	fs.Var(&rcpts, "rcpt", "envelope recipient (repeatable; default: the To: and Cc: addresses)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	explainFlag := fs.Bool("explain", false, "list every check's signals and their contributions")
	debug := fs.Bool("debug", false, "log per-check details to standard error (offline only)")
	offline := fs.Bool("offline", false, "do not ask the running daemon: build the pipeline and open the state here")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden check [flags] MESSAGE.eml")
		fmt.Fprintln(stderr, "Asks the running daemon (its control socket) when it answers: same pipeline, same state, nothing written.")
		fmt.Fprintln(stderr, "Exit code: 0 accept, 2 quarantine, 3 tempfail, 4 discard, 5 reject, 1 error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 1
	}
	env.Rcpts = rcpts
	*cfgPath = configPath(*cfgPath)
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden check:", err)
		return 1
	}

	src := explain.Source{Config: *cfgPath, Note: "--offline"}
	if !*offline {
		c, err := control.Dial(control.ConfigOf(cfg).Socket)
		if err == nil {
			defer c.Close()
			resp, err := c.Do(control.Request{Cmd: "check", Check: &control.CheckRequest{Envelope: env, JSON: *asJSON, Explain: *explainFlag}}, raw)
			if err != nil {
				fmt.Fprintln(stderr, "mailwarden check: the running daemon:", err)
				return 1
			}
			io.WriteString(stdout, resp.Output)
			return resp.ExitCode
		}
		src.Note = "no daemon answers on " + orBuiltin(control.ConfigOf(cfg).Socket, "no [control] socket")
		if !errors.Is(err, os.ErrNotExist) {
			src.Note += ": " + err.Error()
		}
	}

	m, err := explain.Message(raw, cfg, env, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden check:", err)
		return 1
	}
	logOut := io.Discard
	if *debug {
		logOut = stderr
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, svc, err := wire.Pipeline(cfg, logger, nil)
	if err != nil {
		fmt.Fprintln(stderr, "mailwarden check:", err)
		return 1
	}
	defer svc.Close()
	defer p.Close()
	v := p.Run(context.Background(), m)
	src.Setup = p.Describe()
	if *asJSON {
		explain.JSON(stdout, m, v, src, *explainFlag)
	} else {
		explain.Text(stdout, m, v, cfg, src, *explainFlag)
	}
	return explain.ExitCode(v.Action)
}

func orBuiltin(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
