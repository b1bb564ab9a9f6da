// Package e2e_test holds mailwarden's end-to-end tests: the real binary as
// a milter of a real Postfix (and Sendmail), with real clamd, Redis and a
// test DNS server, driven through SMTP. The programs are started by
// package harness; one file per capability.
//
// Run them as root on Debian 12 (bash test/run.sh installs what they
// need). Without root or a server they skip, unless CI=true, where they
// fail.
package e2e_test

import (
	"os"
	"testing"

	"github.com/mailwarden/mailwarden/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
