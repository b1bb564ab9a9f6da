# Shared by test/spamassassin-compare.sh and test/sa-agreement.sh (sourced,
# from the repository's root): a work directory with its cleanup, the
# mailwarden binary built into it, and a private spamd.

# sa_init TOOL... checks that the tools are installed, makes $work
# (readable by spamd, which runs as nobody when started by root), removes
# it and stops spamd on exit, and builds $work/mailwarden.
sa_init() {
	local b
	for b in "$@"; do
		command -v "$b" >/dev/null || { echo "$0: $b not found (apt-get install spamassassin spamc)" >&2; exit 1; }
	done
	work=$(mktemp -d /tmp/sa-run.XXXXXX)
	chmod 755 "$work"
	spamd_pid=
	trap sa_cleanup EXIT
	go build -o "$work/mailwarden" ./cmd/mailwarden
}

sa_cleanup() {
	[ -n "$spamd_pid" ] && kill "$spamd_pid" 2>/dev/null || true
	rm -rf "$work"
}

# sa_spamd DIR WORKERS starts spamd -L (local tests only) with DIR/site
# as its site config, DIR/home as its home and WORKERS children, and
# waits until it answers; it sets $port and $spamd_pid.
sa_spamd() {
	local user=()
	[ "$(id -u)" = 0 ] && user=(-u nobody)
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	spamd -L -x -s stderr -i 127.0.0.1 -A 127.0.0.1 -p "$port" -m "$2" --min-spare=1 --max-spare="$2" \
		--siteconfigpath "$1/site" --helper-home-dir="$1/home" "${user[@]}" \
		--pidfile "$1/spamd.pid" 2>"$1/spamd.log" &
	spamd_pid=$!
	for _ in $(seq 1 120); do
		spamc -d 127.0.0.1 -p "$port" -K >/dev/null 2>&1 && return 0
		kill -0 "$spamd_pid" 2>/dev/null || { cat "$1/spamd.log" >&2; exit 1; }
		sleep 1
	done
	echo "$0: spamd did not answer in 120 s" >&2
	exit 1
}

# sa_stop stops spamd.
sa_stop() {
	kill "$spamd_pid" 2>/dev/null || true
	wait "$spamd_pid" 2>/dev/null || true
	spamd_pid=
}
