package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/mailwarden/mailwarden/cmd/mailwarden/internal/dkimcmd"
	"github.com/mailwarden/mailwarden/policy/auth"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
	"github.com/mailwarden/mailwarden/policy/dns"
)

// runDKIM: "mailwarden dkim keygen ..." and "mailwarden dkim check [-config F]".
func runDKIM(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: mailwarden dkim keygen --domain D --selector S [--algo rsa2048|rsa3072|ed25519] [--out FILE]\n       mailwarden dkim check [-config F]")
		return 2
	}
	switch args[0] {
	case "keygen":
		return dkimcmd.Keygen(args[1:], stdout, stderr)
	case "check":
		fs := flag.NewFlagSet("dkim check", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfgPath := fs.String("config", "/etc/mailwarden/mailwarden.toml", "config file")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		tab, err := sign.NewTable(auth.SignConfigOf(cfg).TableConfig(), auth.LoadKeys)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		r, err := dns.New(dns.ConfigOf(cfg))
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return dkimcmd.Check(ctx, tab, r, stdout)
	}
	fmt.Fprintf(stderr, "mailwarden dkim: unknown subcommand %q\n", args[0])
	return 2
}
