#!/usr/bin/env bash
# Runs every test of mailwarden: unit, conformance, fuzz seeds, corpus
# evaluation and the end-to-end suites against real Postfix, clamd, Redis,
# OpenDKIM, SpamAssassin, Chromium and Sendmail.
#
# Run as root on Debian 12 (it installs the Debian packages that are
# missing; a rerun installs nothing). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"

# 1. Real servers from Debian packages, only what is missing.
pkgs=(postfix clamav-daemon clamav redis-server opendkim opendkim-tools spamassassin chromium
	python3-dkim python3-authres dovecot-imapd dovecot-sieve c-icap libc-icap-mod-virus-scan libmail-dmarc-perl libxml2-utils)
need=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "run.sh: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q "${need[@]}"
fi
# The tests start private instances of every server and leave the
# machine's own services alone (this may be someone's mail server). System
# instances that run only compete for CPU: say so, never stop them.
running=()
for s in clamd redis-server opendkim spamd master dovecot c-icap; do
	pgrep -x "$s" >/dev/null 2>&1 && running+=("$s")
done
if [ ${#running[@]} -gt 0 ]; then
	echo "run.sh: note: system instances running (${running[*]}); the tests do not use them and leave them running, but they compete for CPU"
fi

# 2. Static checks.
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
# go.mod lists exactly what the code imports (no stale or everything-indirect requirements).
if ! tidy=$(go mod tidy -diff 2>&1); then
	echo "go mod tidy would change go.mod/go.sum:"; echo "$tidy"; exit 1
fi

bash test/sendmail-prepare.sh || echo "run.sh: Sendmail not prepared; its end-to-end tests will fail" # apt-get download + dpkg -x (conflicts with postfix)

# 3. The Debian package: built, installed with dpkg -i, its unit's
# ExecStart run as its user, one message through Postfix, dpkg -r.
bash test/deb.sh

# 4. Every test, with the race detector. End-to-end tests fail (never skip)
# when CI=true and a server cannot start.
go test -race -count=1 -timeout 30m ./... 2>&1 | tee /tmp/mailwarden-test.log
# The rule engine's corpus oracles check the whole corpus without the race
# detector (under it they take a sample: whole, they took 8 minutes).
go test -count=1 -timeout 15m -run Corpus ./policy/spam/sa 2>&1 | tee -a /tmp/mailwarden-test.log
# The browser tests are a module of their own (chromedp stays out of the
# daemon's go.mod).
(cd test/browser && go vet ./... && go test -count=1 -timeout 10m ./...) 2>&1 | tee -a /tmp/mailwarden-test.log
