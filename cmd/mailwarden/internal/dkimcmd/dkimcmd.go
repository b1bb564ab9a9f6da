// Package dkimcmd implements "mailwarden dkim keygen" and "mailwarden
// dkim check": making a signing key with the DNS record to publish, and
// comparing every configured key with its published record (RFC 6376
// §3.6.1, §3.6.2.2). The logic is in policy/auth/sign; this is the
// command-line face of it.
package dkimcmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/mailwarden/mailwarden/policy/auth/dkimkey"
	"github.com/mailwarden/mailwarden/policy/auth/sign"
)

// Keygen runs "mailwarden dkim keygen --domain D --selector S
// [--algo rsa2048|rsa3072|ed25519] [--out FILE]": it writes the private
// key (PKCS#8 PEM, mode 0600, never over an existing file) and prints
// the zone record (255-byte strings) and the [[dkim_sign.key]] entry.
func Keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dkim keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	domain := fs.String("domain", "", "signing domain (d=)")
	selector := fs.String("selector", "", "selector (s=)")
	algo := fs.String("algo", string(sign.AlgoRSA2048), "rsa2048, rsa3072 or ed25519 (ed25519 only as a second key beside RSA)")
	out := fs.String("out", "", "key file to write (default SELECTOR.DOMAIN.pem)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailwarden dkim keygen --domain D --selector S [--algo rsa2048|rsa3072|ed25519] [--out FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *domain == "" || *selector == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	path := *out
	if path == "" {
		path = *selector + "." + strings.TrimSuffix(*domain, ".") + ".pem"
	}
	k, err := sign.GenerateKey(sign.Algo(*algo))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	zone, err := sign.ZoneRecord(*selector, *domain, k.Public())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := sign.WriteKey(path, k); err != nil {
		fmt.Fprintln(stderr, "mailwarden: writing the key:", err)
		return 1
	}
	abs, _ := filepath.Abs(path)
	fmt.Fprintf(stdout, "; private key written to %s (mode 0600)\n", abs)
	fmt.Fprintf(stdout, "; publish this record, then run 'mailwarden dkim check':\n%s\n\n", zone)
	fmt.Fprintf(stdout, "# and add to the configuration:\n[[dkim_sign.key]]\nname = %q\ndomain = %q\nselector = %q\nfile = %q\n",
		*selector+"."+*domain, *domain, *selector, abs)
	return 0
}

// Check prints the record state of every key of the table and returns
// 0 when all are ok, 1 otherwise.
func Check(ctx context.Context, tab *sign.Table, r dkimkey.Resolver, stdout io.Writer) int {
	code := 0
	if len(tab.Keys()) == 0 {
		fmt.Fprintln(stdout, "no [[dkim_sign.key]] configured")
		return 1
	}
	for _, k := range tab.Keys() {
		st, err := sign.Check(ctx, r, k)
		line := fmt.Sprintf("%-10s %-20s %s (%s)", st, k.Name, dkimkey.RecordName(k.Selector, k.Domain), k.Algorithm())
		if err != nil {
			line += ": " + err.Error()
		}
		fmt.Fprintln(stdout, line)
		if st != sign.RecordOK {
			code = 1
		}
	}
	return code
}
