#!/usr/bin/env bash
# Builds the .deb (examples/debian/build.sh) and runs TestDebPackage on
# it: dpkg -i on this machine, systemd-analyze verify, the daemon started
# the way its unit does, one message through a private Postfix, dpkg -r
# (which keeps /etc/mailwarden and /var/lib/mailwarden). Needs root.
# test/run.sh calls it; `.ci/run` calls test/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
deb=$(bash examples/debian/build.sh "$out")
echo "deb.sh: built $(basename "$deb")"
MAILWARDEN_DEB="$deb" go test -count=1 -timeout 5m -run '^TestDebPackage$' ./test/
