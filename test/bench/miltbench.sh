#!/usr/bin/env bash
# Throughput of the core pipeline (lists, rules, headers; every module off)
# measured with the independent load driver ../shared/tools/miltbench on
# the SpamAssassin corpus, at concurrency 1 and 8, over a unix socket.
#
#   bash test/bench/miltbench.sh [DURATION] [CONFIG]
#
# CONFIG defaults to test/bench/core.toml; its @SOCK@ is replaced by a
# private socket. Prints miltbench's figures (messages/s, latency
# percentiles, the daemon's CPU and peak RSS).
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-20s}
cfg_in=${2:-test/bench/core.toml}
shared=../shared
work=$(mktemp -d /tmp/mwbench.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$shared/tools/miltbench" && GOFLAGS=-buildvcs=false go build -o "$work/miltbench" .)
go build -o "$work/mailwarden" ./cmd/mailwarden
sed "s#@SOCK@#$work/milter.sock#" "$cfg_in" > "$work/mw.toml"
"$work/mailwarden" serve -config "$work/mw.toml" 2>"$work/mw.log" &
pid=$!
for _ in $(seq 50); do [ -S "$work/milter.sock" ] && break; sleep 0.1; done
for c in 1 8; do
	echo "== concurrency $c"
	"$work/miltbench" -milter "unix:$work/milter.sock" -dir "$shared/corpus/spamassassin" \
		-c "$c" -d "$dur" -warmup 3s -watch "$pid"
done
