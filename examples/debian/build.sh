#!/usr/bin/env bash
# Builds mailwarden_VERSION_ARCH.deb from this repository with dpkg-deb
# (no packaging tool beyond dpkg): the static binary in /usr/bin, the
# commented default config (examples/mailwarden.toml) as the conffile
# /etc/mailwarden/mailwarden.toml, the hardened unit (examples/
# mailwarden.service, run as the system user mailwarden instead of a
# dynamic user) and the maintainer scripts of this directory.
#
#   bash examples/debian/build.sh [OUTDIR]      # prints the .deb's path
#
# VERSION (default 0.0.0~gitDATE.REV) and GOARCH may be set in the
# environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root}"
export PATH="/usr/local/go/bin:$PATH"

arch="${GOARCH:-$(go env GOARCH)}"
if [ -z "${VERSION:-}" ]; then
	rev=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	date=$(git -C "$root" log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date -u +%Y%m%d)
	VERSION="0.0.0~git${date}.${rev}"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/pkg"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/etc/mailwarden" "$pkg/lib/systemd/system" \
	"$pkg/usr/share/doc/mailwarden/examples"

(cd "$root" && CGO_ENABLED=0 GOARCH="$arch" go build -trimpath \
	-ldflags "-s -w -X main.version=$VERSION" -o "$pkg/usr/bin/mailwarden" ./cmd/mailwarden)

install -m 0644 "$root/examples/mailwarden.toml" "$pkg/etc/mailwarden/mailwarden.toml"

# The unit of examples/ is written for a manual install (binary in
# /usr/local/bin, DynamicUser=yes). A package owns /usr/bin and a fixed
# user, whose /var/lib/mailwarden a dynamic user could not share, and
# may write the Postfix socket directory its postinst creates.
unit="$pkg/lib/systemd/system/mailwarden.service"
sed -e 's#/usr/local/bin/mailwarden#/usr/bin/mailwarden#g' -e 's#binary in /usr/local/bin#binary in /usr/bin#' \
	-e 's#^DynamicUser=yes$#User=mailwarden\nGroup=mailwarden#' \
	-e 's#^\#ReadWritePaths=/var/spool/postfix/mailwarden$#ReadWritePaths=-/var/spool/postfix/mailwarden#' \
	"$root/examples/mailwarden.service" >"$unit"
chmod 0644 "$unit"
for want in '^ExecStart=/usr/bin/mailwarden serve ' '^User=mailwarden$' '^Group=mailwarden$' \
	'^ReadWritePaths=-/var/spool/postfix/mailwarden$'; do
	if ! grep -q "$want" "$unit"; then
		echo "build.sh: examples/mailwarden.service changed: no line $want after rewriting" >&2
		exit 1
	fi
done
if grep -v '^#' "$unit" | grep -q -e '^DynamicUser=' -e '/usr/local/bin'; then
	echo "build.sh: examples/mailwarden.service changed: DynamicUser or /usr/local/bin left" >&2
	exit 1
fi

for f in postfix-main.cf postfix-master.cf sendmail.mc grafana-dashboard.json; do
	install -m 0644 "$root/examples/$f" "$pkg/usr/share/doc/mailwarden/examples/$f"
done
if [ -d "$root/examples/dovecot" ]; then
	cp -r "$root/examples/dovecot" "$pkg/usr/share/doc/mailwarden/examples/"
fi
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/mailwarden/README.md"
install -m 0644 "$root/LICENSE" "$pkg/usr/share/doc/mailwarden/copyright"

sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$arch/" "$here/control.in" >"$pkg/DEBIAN/control"
echo "Installed-Size: $(du -sk --exclude=DEBIAN "$pkg" | cut -f1)" >>"$pkg/DEBIAN/control"
install -m 0644 "$here/conffiles" "$pkg/DEBIAN/conffiles"
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$pkg/DEBIAN/$s"
done
find "$pkg" -type d -exec chmod 0755 {} +

mkdir -p "$out"
deb="$out/mailwarden_${VERSION}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
