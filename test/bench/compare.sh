#!/usr/bin/env bash
# Side by side: mailwarden's full pipeline and rspamd 3.4 (Debian package,
# its shipped config) under the same load driver, corpus, DNS server and
# clamd, in one run. A benchmark, not a test: it asserts nothing.
#
#   bash test/bench/compare.sh                  # both, without and with AV, c=1 and c=8
#   DUR=30s CONC="8" MODES="av" bash test/bench/compare.sh
#   ONLY=mailwarden bash test/bench/compare.sh  # skip rspamd
#   BIG=50 bash test/bench/compare.sh           # also 50 concurrent 10 MB messages
#   RULES=off bash test/bench/compare.sh        # mailwarden without the SpamAssassin rules
#   MW_METRICS=127.0.0.1:9899 MW_PPROF=true ... # /metrics and /debug/pprof/ on the daemon
#
# What runs, all private to a temp dir (no system service is touched):
#   - test/bench/dnsstub on 127.0.0.1: NXDOMAIN with SOA for every corpus
#     domain, so SPF/DKIM/DMARC do their lookups against a local server;
#   - clamd with its own config (DisableCache yes, so replayed messages are
#     really scanned; MaxThreads $CLAMD_THREADS, by default the number of
#     cores: scanning is CPU-bound, so more threads only make each scan
#     slower, and mailwarden's scan timeout counts from the scan's start
#     while the rest wait in its queue) and the EICAR signatures the e2e
#     tests use (the machine has no official database);
#   - mailwarden serve with test/bench/full.toml: auth, spam with a Bayes
#     database trained on the corpus (trained once, kept in $BAYES_DB),
#     auto-reply memory, virus when the mode is "av"; bolt store;
#   - rspamd -f with --var LOCAL_CONFDIR/DBDIR/RUNDIR pointing here: the
#     shipped /etc/rspamd config plus local.d overrides for sockets and
#     logging only: the proxy worker in milter mode (self_scan, one process
#     per core) on a unix socket, the stub DNS server, a private Redis
#     (unix socket) for its Redis-backed modules (Bayes trained on the same
#     corpus with rspamc, once, kept in $RSPAMD_RDB; greylist and ratelimit
#     off: they soft-reject replayed mail before it is scanned), and in mode "av" the
#     antivirus module against the same clamd with scan_mime_parts = false
#     (the whole message, as mailwarden sends it).
# Load: ../shared/tools/miltbench -dir CORPUS -c N -d DUR -warmup 3s -watch PID.
# Figures per run: msg/s, p50/p99 ms, daemon CPU ms per message (utime +
# stime from /proc/PID/stat of the daemon and all its descendants, delta
# over the measured run, as miltbench -watch reports it), clamd CPU ms per
# message (same, on clamd's pid), peak RSS of the daemon tree (MB).
set -euo pipefail
cd "${ROOT:-$(dirname "$0")/../..}" # ROOT: the checkout, when running a copy of this script
root=$PWD
dur=${DUR:-15s}
conc=${CONC:-"1 8"}
modes=${MODES:-"noav av"}
only=${ONLY:-}
# RULES=off runs mailwarden without the SpamAssassin rules (on by default,
# as in a fresh install with the Debian rules).
rules=true
[ "${RULES:-on}" = off ] && rules=false
corpus=${CORPUS:-$root/../shared/corpus/spamassassin}
bayes_db=${BAYES_DB:-/tmp/mwbench-bayes-$(basename "$corpus").db}
rspamd_rdb=${RSPAMD_RDB:-/tmp/mwbench-rspamd-$(basename "$corpus").rdb}
clamd_threads=${CLAMD_THREADS:-$(nproc)}
big=${BIG:-0}
shared=$root/../shared
work=$(mktemp -d /tmp/mwcmp.XXXXXX)
declare -a pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
log() { echo "# $*" >&2; }
waitsock() { # path [seconds]
	for _ in $(seq $((${2:-60} * 10))); do [ -S "$1" ] && return 0; sleep 0.1; done
	echo "no socket $1" >&2
	return 1
}

# CPU seconds (utime+stime) of a pid and its live descendants.
treecpu() {
	local hz; hz=$(getconf CLK_TCK)
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" -v hz="$hz" '
		{ pid=$1; line=$0; sub(/^[0-9]+ \(.*\) /, "", line); split(line, f, " ");
		  ppid[pid]=f[2]; cpu[pid]=f[12]+f[13]+f[14]+f[15] }
		END { n=0; for (p in ppid) { q=p; while (q != "" && q != 0 && q != root) q=ppid[q]; if (q == root) n += cpu[p] } print n/hz }'
}

log "building into $work"
(cd "$shared/tools/miltbench" && GOFLAGS=-buildvcs=false go build -o "$work/miltbench" .)
go build -o "$work/mailwarden" ./cmd/mailwarden
go build -o "$work/dnsstub" ./test/bench/dnsstub

# DNS.
"$work/dnsstub" -addr-file "$work/dns.addr" \
	'bench.local 300 IN TXT "v=spf1 -all"' >/dev/null &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/dns.addr" ] && break; sleep 0.1; done
dns=$(cat "$work/dns.addr")
log "dns stub on $dns"

# clamd, private.
mkdir -p "$work/clamd/db" "$work/clamd/tmp"
eicar=$shared/conformance/clamav/eicar.txt
cp "$eicar" "$work/clamd/eicar.txt"
(cd "$work/clamd" && sigtool --md5 eicar.txt > db/bench.hdb)
printf 'Bench.EICAR-Body:0:*:%s\n' "$(tr -d '\r\n' < "$eicar" | od -An -tx1 | tr -d ' \n')" > "$work/clamd/db/bench.ndb"
cat > "$work/clamd/clamd.conf" <<EOF
Foreground yes
LogFile $work/clamd/clamd.log
PidFile $work/clamd/clamd.pid
DatabaseDirectory $work/clamd/db
TemporaryDirectory $work/clamd/tmp
LocalSocket $work/clamd/clamd.sock
LocalSocketMode 666
StreamMaxLength 25M
ScanMail yes
ScanArchive yes
MaxThreads $clamd_threads
MaxQueue 200
SelfCheck 0
OfficialDatabaseOnly no
Bytecode no
DisableCache yes
User $(id -un)
EOF
clamd --config-file="$work/clamd/clamd.conf" >"$work/clamd/out.log" 2>&1 &
clamd_pid=$!
pids+=($clamd_pid)
waitsock "$work/clamd/clamd.sock"
log "clamd pid $clamd_pid, MaxThreads $clamd_threads, DisableCache yes"

# Bayes: trained once (the learn command writes one transaction per message).
if [ ! -s "$bayes_db" ]; then
	log "training Bayes into $bayes_db (once; takes minutes)"
	sed "s#@STATE@#$bayes_db#;s#@SOCK@#$work/learn.sock#;s#@DNS@#$dns#;s#@VIRUS@#false#;s#@RULES@#false#;s#@CLAMD@#$work/clamd/clamd.sock#;s#@METRICS@##;s#@PPROF@#false#" \
		test/bench/full.toml > "$work/learn.toml"
	"$work/mailwarden" learn -config "$work/learn.toml" --spam "$corpus/spam" --ham "$corpus/ham" >&2
fi

# Private Redis for rspamd's Redis-backed modules (Bayes, ratelimit, ...).
if [ "$only" != mailwarden ]; then
	if [ -s "$rspamd_rdb" ]; then cp "$rspamd_rdb" "$work/redis.rdb"; fi
	redis-server --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 \
		--save '' --appendonly no --dir "$work" --dbfilename redis.rdb --daemonize no >"$work/redis.log" 2>&1 &
	redis_pid=$!
	pids+=($redis_pid)
	waitsock "$work/redis.sock"
fi

start_mailwarden() { # mode
	local d=$work/mw-$1 virus=false
	[ "$1" = av ] && virus=true
	mkdir -p "$d"
	cp "$bayes_db" "$d/state.db"
	sed "s#@STATE@#$d/state.db#;s#@SOCK@#$d/milter.sock#;s#@DNS@#$dns#;s#@VIRUS@#$virus#;s#@RULES@#$rules#;s#@CLAMD@#$work/clamd/clamd.sock#;s#@METRICS@#${MW_METRICS:-}#;s#@PPROF@#${MW_PPROF:-false}#" \
		test/bench/full.toml > "$d/mw.toml"
	"$work/mailwarden" serve -config "$d/mw.toml" 2>"$d/mw.log" &
	mw_pid=$!
	pids+=($mw_pid)
	waitsock "$d/milter.sock"
	mw_sock=$d/milter.sock
}

start_rspamd() { # mode
	local d=$work/rs-$1
	mkdir -p "$d/local.d" "$d/override.d" "$d/db" "$d/run"
	cat > "$d/local.d/options.inc" <<EOF
dns { nameserver = ["$dns"]; timeout = 1s; retransmits = 1; }
EOF
	cat > "$d/local.d/logging.inc" <<EOF
type = "file";
filename = "$d/rspamd.log";
level = "warning";
EOF
	cat > "$d/override.d/worker-normal.inc" <<EOF
enabled = false;
bind_socket = "$d/normal.sock";
EOF
	cat > "$d/override.d/worker-controller.inc" <<EOF
bind_socket = "$d/controller.sock mode=0600";
EOF
	# The proxy scans itself (self_scan), one process per core, like the
	# default count of the normal workers it replaces.
	cat > "$d/override.d/worker-proxy.inc" <<EOF
bind_socket = "$d/milter.sock mode=0666";
milter = yes;
timeout = 120s;
self_scan = yes;
count = $(nproc);
upstream "local" { default = yes; self_scan = yes; }
EOF
	cat > "$d/local.d/redis.conf" <<EOF
servers = "$work/redis.sock";
EOF
	# Greylisting and rate limits answer most replayed corpus mail with a
	# soft reject from a prefilter, before any check runs: off, so that
	# rspamd scans every message as mailwarden does.
	echo 'enabled = false;' > "$d/local.d/greylist.conf"
	echo 'enabled = false;' > "$d/local.d/ratelimit.conf"
	if [ "$1" = av ]; then
		cat > "$d/local.d/antivirus.conf" <<EOF
clamav {
  type = "clamav";
  servers = "$work/clamd/clamd.sock";
  scan_mime_parts = false;
  action = "reject";
  symbol = "CLAM_VIRUS";
  max_size = 26214400;
  timeout = 30s;
  no_cache = true; # no result cache in Redis: replayed messages are scanned again
}
EOF
	fi
	rspamd -f -i -u "$(id -un)" -g "$(id -gn)" -c /etc/rspamd/rspamd.conf \
		--var=LOCAL_CONFDIR="$d" --var=DBDIR="$d/db" --var=RUNDIR="$d/run" --var=LOGDIR="$d" \
		-p "$d/run/rspamd.pid" >"$d/out.log" 2>&1 &
	rs_pid=$!
	pids+=($rs_pid)
	waitsock "$d/milter.sock" 600 # rspamd compiles its rules first: minutes on a busy machine
	sleep 2 # let every worker finish loading its rules
	rs_sock=$d/milter.sock
	if [ ! -s "$rspamd_rdb" ]; then
		log "training rspamd's Bayes (once, kept in $rspamd_rdb)"
		rspamc -h "$d/controller.sock" -P q1 -n 4 --header "Learn-Type: bulk" learn_spam "$corpus/spam" > "$work/rspamc-learn.log" 2>&1 || true
		rspamc -h "$d/controller.sock" -P q1 -n 4 --header "Learn-Type: bulk" learn_ham "$corpus/ham" >> "$work/rspamc-learn.log" 2>&1 || true
		redis-cli -s "$work/redis.sock" SAVE >/dev/null
		cp "$work/redis.rdb" "$rspamd_rdb"
	fi
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# waitidle PID: until the process tree used < 0.3 s of CPU in 5 s (rspamd
# compiles its Hyperscan databases in a helper process for minutes after
# its socket opens; that is start-up, not per-message cost), at most 10 min.
waitidle() {
	local a b
	for _ in $(seq 120); do
		a=$(treecpu "$1")
		sleep 5
		b=$(treecpu "$1")
		if awk -v a="$a" -v b="$b" 'BEGIN { exit !(b - a < 0.3) }'; then return 0; fi
	done
	log "pid $1 still busy after 10 min; measuring anyway"
}

results=$work/results.tsv
printf 'mode\tc\tdaemon\tmsg/s\tp50ms\tp99ms\tdaemonCPUms/msg\tclamdCPUms/msg\tredisCPUms/msg\tpeakRSSMB\tcompleted\terrors\tactions\n' > "$results"

bench() { # label mode c pid sock [extra miltbench args...]
	local label=$1 mode=$2 c=$3 pid=$4 sock=$5
	shift 5
	local out=$work/$label-$mode-c$c.json cl0 cl1 dc0 dc1
	cl0=$(treecpu "$clamd_pid") rd0=0 rd1=0
	if [ "$label" = rspamd ]; then rd0=$(treecpu "$redis_pid"); fi
	"$work/miltbench" -milter "unix:$sock" -c "$c" -d "$dur" -warmup 3s -watch "$pid" \
		-json "$out" -label "$label" "$@" > "$work/$label-$mode-c$c.txt"
	cl1=$(treecpu "$clamd_pid")
	if [ "$label" = rspamd ]; then rd1=$(treecpu "$redis_pid"); fi
	jq -r --arg mode "$mode" --arg who "$label" --argjson cl "$(awk -v a="$cl0" -v b="$cl1" 'BEGIN { print b - a }')" \
		--argjson rd "$(awk -v a="$rd0" -v b="$rd1" 'BEGIN { print b - a }')" '
		[$mode, .concurrency, $who, (.msgs_per_sec*10|round/10), (.latency_ms.p50*100|round/100),
		 (.latency_ms.p99*100|round/100), (.peer_cpu_sec/.completed*1000*100|round/100),
		 ($cl/.completed*1000*100|round/100), ($rd/.completed*1000*100|round/100), (.peer_peak_rss_mb|round), .completed, .errors,
		 (.actions|to_entries|map("\(.key)=\(.value)")|join(","))] | @tsv' "$out" | tee -a "$results"
}

for mode in $modes; do
	if [ "$only" != rspamd ]; then start_mailwarden "$mode"; fi
	if [ "$only" != mailwarden ]; then
		start_rspamd "$mode"
		waitidle "$rs_pid"
	fi
	for c in $conc; do
		if [ "$only" != rspamd ]; then bench mailwarden "$mode" "$c" "$mw_pid" "$mw_sock" -dir "$corpus"; fi
		if [ "$only" != mailwarden ]; then bench rspamd "$mode" "$c" "$rs_pid" "$rs_sock" -dir "$corpus"; fi
	done
	if [ "$mode" = av ] && [ "$big" -gt 0 ]; then
		# $big concurrent 10 MB messages (text, so clamd scans every byte).
		mkdir -p "$work/big"
		python3 - "$work/big/big.eml" <<'EOF'
import sys, random
random.seed(1)
words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
with open(sys.argv[1], "w") as f:
    f.write("From: big@bench.example\r\nTo: user@bench.local\r\nSubject: big\r\n"
            "Message-ID: <big@bench.example>\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\n"
            "Content-Type: text/plain\r\n\r\n")
    n = 0
    while n < 10 << 20:
        line = " ".join(random.choice(words) for _ in range(12)) + "\r\n"
        f.write(line)
        n += len(line)
EOF
		for lab in mailwarden rspamd; do
			if [ -n "$only" ] && [ "$only" != "$lab" ]; then continue; fi
			if [ $lab = mailwarden ]; then p=$mw_pid s=$mw_sock; else p=$rs_pid s=$rs_sock; fi
			out=$work/$lab-big.json
			"$work/miltbench" -milter "unix:$s" -dir "$work/big" -c "$big" -n "$big" -timeout 300s \
				-watch "$p" -json "$out" -label "$lab-big" > "$work/$lab-big.txt"
			jq -r --arg lab "$lab" '["av-big10MB", .concurrency, $lab, (.msgs_per_sec*10|round/10),
				(.latency_ms.p50*100|round/100), (.latency_ms.p99*100|round/100),
				(.peer_cpu_sec/.completed*1000*100|round/100), "-", "-", (.peer_peak_rss_mb|round),
				.completed, .errors, (.actions|to_entries|map("\(.key)=\(.value)")|join(","))] | @tsv' "$out" | tee -a "$results"
		done
	fi
	if [ "$only" != rspamd ]; then stop "$mw_pid"; fi
	if [ "$only" != mailwarden ]; then stop "$rs_pid"; fi
done

echo
echo "== results (DUR=$dur, corpus $(basename "$corpus"), clamd MaxThreads $clamd_threads, $(nproc) cores)"
column -t -s $'\t' "$results"
[ -z "${KEEP:-}" ] || echo "kept $work"
