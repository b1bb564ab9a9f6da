// Package e2e holds mailwarden's end-to-end tests (package e2e_test):
// the mailwarden binary against real Postfix, Sendmail, clamd, Redis,
// OpenDKIM, SpamAssassin and Chromium, started privately on 127.0.0.1 by
// test/harness. Run them with `bash test/run.sh` (as root); with CI=true a
// server that cannot start fails its test instead of skipping it.
package e2e
