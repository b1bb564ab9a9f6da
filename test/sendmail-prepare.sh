#!/usr/bin/env bash
# Unpacks a private Sendmail for the end-to-end tests (test/sendmail_test.go)
# without installing it: Debian's sendmail packages conflict with postfix,
# which the other suites need. The packages are fetched with
# `apt-get download` and unpacked with `dpkg -x` into a cache directory
# (default test/.cache/sendmail, gitignored; override with
# MAILWARDEN_SENDMAIL_DIR), together with m4 (to build the .cf) and any
# shared library the binary lacks on this machine (libwrap0 on a stock
# Debian 12).
#
# The extracted sendmail is setgid mail; the bit is cleared on the copy so
# that the dynamic loader honours LD_LIBRARY_PATH (it ignores it for
# set-id programs) and the test's root process keeps its groups.
#
# Idempotent: a prepared directory (marker file .prepared) is left alone.
# Needs network access to the Debian mirror on the first run only.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${MAILWARDEN_SENDMAIL_DIR:-$PWD/test/.cache/sendmail}
root=$dir/root
marker=$dir/.prepared
bin=$root/usr/libexec/sendmail/sendmail

if [ -f "$marker" ] && [ -x "$bin" ]; then
	exit 0
fi

mkdir -p "$dir"
# One preparation at a time (the harness runs this script from several
# test processes when nothing is prepared); the loser finds it done.
exec 9>"$dir/.lock"
flock 9
if [ -f "$marker" ] && [ -x "$bin" ]; then
	exit 0
fi
debs=$(mktemp -d "$dir/debs.XXXXXX")
trap 'rm -rf "$debs"' EXIT
rm -rf "$root" "$marker"
mkdir -p "$root"

fetch() {
	# apt-get download writes into the working directory; as root it warns
	# that _apt cannot write there, which is harmless.
	(cd "$debs" && apt-get download -q "$@" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
	for p in "$@"; do
		if ! ls "$debs"/"$p"_*.deb >/dev/null 2>&1; then
			# The package lists may be missing or stale on a fresh machine.
			apt-get update -q >/dev/null
			(cd "$debs" && apt-get download -q "$p")
		fi
	done
}

echo "sendmail-prepare: fetching sendmail-bin sendmail-cf m4 into $dir"
fetch sendmail-bin sendmail-cf m4
for f in "$debs"/*.deb; do
	dpkg -x "$f" "$root"
done

# Libraries the binary needs that this machine lacks, by soname.
declare -A libpkg=(
	[libwrap.so.0]=libwrap0
	[liblockfile.so.1]=liblockfile1
	[libdb-5.3.so]=libdb5.3
	[libldap-2.5.so.0]=libldap-2.5-0
	[liblber-2.5.so.0]=libldap-2.5-0
	[libsasl2.so.2]=libsasl2-2
	[libnsl.so.2]=libnsl2
	[libtirpc.so.3]=libtirpc3
	[libssl.so.3]=libssl3
	[libcrypto.so.3]=libssl3
)
libdirs="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
for round in 1 2 3; do
	missing=$(LD_LIBRARY_PATH=$libdirs ldd "$bin" | awk '/not found/ {print $1}' | sort -u)
	[ -z "$missing" ] && break
	pkgs=()
	for so in $missing; do
		p=${libpkg[$so]:-}
		if [ -z "$p" ]; then
			echo "sendmail-prepare: $bin needs $so, and no package is known for it" >&2
			exit 1
		fi
		pkgs+=("$p")
	done
	echo "sendmail-prepare: fetching missing libraries: ${pkgs[*]}"
	rm -f "$debs"/*.deb
	fetch $(printf '%s\n' "${pkgs[@]}" | sort -u)
	for f in "$debs"/*.deb; do
		dpkg -x "$f" "$root"
	done
done
missing=$(LD_LIBRARY_PATH=$libdirs ldd "$bin" | awk '/not found/ {print $1}')
if [ -n "$missing" ]; then
	echo "sendmail-prepare: still missing: $missing" >&2
	exit 1
fi

chmod g-s "$bin" "$root/usr/libexec/sendmail/mailstats" 2>/dev/null || true
# Sendmail sleeps 60 s at start when the host name is not fully qualified
# (before it reads any config); the harness runs it in its own UTS
# namespace with a qualified name, and so does this smoke test.
version=$(LD_LIBRARY_PATH=$libdirs unshare -u sh -c 'echo mx.sendmail.test >/proc/sys/kernel/hostname && exec "$@"' sh \
	"$bin" -d0.1 -bt -C /dev/null </dev/null 2>&1 | sed -n '1p' || true)
case $version in
Version\ 8.*) ;;
*)
	echo "sendmail-prepare: $bin does not run: $version" >&2
	exit 1
	;;
esac
touch "$marker"
echo "sendmail-prepare: ready: sendmail $version in $root"
