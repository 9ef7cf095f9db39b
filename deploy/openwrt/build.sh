#!/bin/sh
# build.sh: cross-compile parkportal for the common OpenWrt targets and
# wrap each binary in an .ipk that OpenWrt's opkg installs, without the
# OpenWrt SDK or any opkg tool.
#
# Usage (from anywhere; also `make -C deploy/openwrt`):
#
#   deploy/openwrt/build.sh [ARCH...]
#
# Environment:
#   VERSION   package version (default: from `git describe`, e.g. 0.0.0+g1a2b3c4d5e6f)
#   DIST      output directory (default: <repo>/dist)
#   OUTER     ipk container: "tgz" (default) or "ar" -- see "Package format"
#   GO        go command (default: go)
#
# ARCH is one or more of the opkg architectures below; default: all five.
#
#   mips_24kc                 GOARCH=mips   GOMIPS=softfloat (big-endian MIPS: ath79, ramips mt7620 ...)
#   mipsel_24kc               GOARCH=mipsle GOMIPS=softfloat (ramips mt7621/mt76x8 ...)
#   arm_cortex-a7_neon-vfpv4  GOARCH=arm    GOARM=7          (ipq40xx, mediatek mt7623 ...)
#   aarch64_cortex-a53        GOARCH=arm64                   (mediatek filogic, bcm27xx ...)
#   x86_64                    GOARCH=amd64                   (x86/64 boxes and VMs)
#
# Output: $DIST/parkportal_<version>_<arch>.ipk per target, and
# $DIST/SIZES.txt with the stripped binary size per target.
#
# Package format. An .ipk holds three members, in this order:
# debian-binary ("2.0\n"), control.tar.gz and data.tar.gz. Debian and
# upstream opkg put them in an `ar` archive; OpenWrt's opkg (opkg-lede,
# the one on 24.10 routers) reads ONLY a gzip-compressed tar as the outer
# container -- its deb_extract() pipes the whole file through `gzip -d`
# and walks a tar, so an ar-wrapped ipk fails there with "Malformed
# package file". OpenWrt's own ipkg-build writes the tar.gz form, so that
# is the default here. OUTER=ar writes the ar form (GNU ar, deterministic)
# for upstream opkg/Yocto. Inside, both forms are identical.
#
# Everything in the package is owned by root (uid/gid 0, numeric) and
# timestamped with SOURCE_DATE_EPOCH (default: the last commit), so two
# builds of the same commit produce the same bytes.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
GO=${GO:-go}
DIST=${DIST:-$repo/dist}
OUTER=${OUTER:-tgz}

# Build tags of every router binary (sizes.sh and the SDK Makefile use
# the same): nethttpomithttp2 leaves net/http's HTTP/2 out (-0.56 MiB).
# Nothing needs it: the portal and console serve phones and browsers over
# HTTP/1.1, and Twilio's and operators' SMS APIs take HTTP/1.1 (twilio-go
# uses the http.Client it is given, with no HTTP/2 of its own).
router_tags=nethttpomithttp2
# Compiler flags of every router binary (sizes.sh, the SDK Makefile and
# the memory test use the same; TestRouterFlagsAgree checks): no inlining,
# except in the runtime, the standard library's hot paths, the crypto
# packages and the store (bbolt, encoding/json), which stay as fast as
# before. Inlined copies cost 1.1 MiB of a mipsel binary; docs/
# BENCHMARKS.md ("Inlining") has the size and speed measurements.
router_gcflags="-gcflags=all=-l -gcflags=runtime/...= -gcflags=internal/...= -gcflags=sync/...= -gcflags=reflect= -gcflags=strconv= -gcflags=bytes= -gcflags=strings= -gcflags=encoding/json= -gcflags=crypto/...= -gcflags=golang.org/x/crypto/...= -gcflags=vendor/golang.org/x/crypto/...= -gcflags=go.etcd.io/bbolt/...="

all_arches="mips_24kc mipsel_24kc arm_cortex-a7_neon-vfpv4 aarch64_cortex-a53 x86_64"

die() { echo "build.sh: $*" >&2; exit 1; }

for tool in tar gzip "$GO"; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[ "$OUTER" = tgz ] || [ "$OUTER" = ar ] || die "OUTER must be tgz or ar, not $OUTER"
[ "$OUTER" = tgz ] || command -v ar >/dev/null 2>&1 || die "ar not found (apt-get install binutils)"

if [ -z "${VERSION:-}" ]; then
	# v1.2.3 -> 1.2.3; v1.2.3-4-gabc -> 1.2.3+4.gabc; no tag -> 0.0.0+g<sha>.
	desc=$(git -C "$repo" describe --tags --match 'v[0-9]*' --dirty=.dirty 2>/dev/null || true)
	if [ -n "$desc" ]; then
		VERSION=$(echo "${desc#v}" | sed -e 's/-\([0-9]*\)-g/+\1.g/')
	else
		sha=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
		VERSION="0.0.0+g$sha"
		if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
			VERSION="$VERSION.dirty"
		fi
	fi
fi
case "$VERSION" in
*[!A-Za-z0-9.+~:-]*|'') die "VERSION '$VERSION' has characters opkg does not allow" ;;
esac

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

# goenv ARCH prints the GOARCH/GOARM/GOMIPS settings for an opkg arch.
goenv() {
	case "$1" in
	mips_24kc) echo "GOARCH=mips GOMIPS=softfloat" ;;
	mipsel_24kc) echo "GOARCH=mipsle GOMIPS=softfloat" ;;
	arm_cortex-a7_neon-vfpv4) echo "GOARCH=arm GOARM=7" ;;
	aarch64_cortex-a53) echo "GOARCH=arm64" ;;
	x86_64) echo "GOARCH=amd64" ;;
	*) return 1 ;;
	esac
}

# depends prints the runtime dependencies, comma-separated, from the one
# list the SDK Makefile also uses (the PARKPORTAL_DEPENDS lines).
depends() {
	sed -n 's/^PARKPORTAL_DEPENDS[ 	]*+=[ 	]*\([^ 	#]*\).*/\1/p' "$here/Makefile" |
		sed -e 's/^+//' | paste -sd, - | sed -e 's/,/, /g'
}

# makevar NAME prints a `NAME:=value` line's value from the Makefile.
makevar() {
	sed -n "s/^$1:=//p" "$here/Makefile" | head -n 1
}

# tarball DIR OUT writes DIR's contents as a deterministic, root-owned
# gzip'd tar in the GNU format opkg's tar reader understands.
tarball() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort) >"$1.list"
	tar --format=gnu --numeric-owner --owner=0 --group=0 \
		--mtime="@$SOURCE_DATE_EPOCH" --no-recursion \
		-C "$1" -cf - -T "$1.list" | gzip -9n >"$2"
	rm -f "$1.list"
}

arches=${*:-$all_arches}
for a in $arches; do
	goenv "$a" >/dev/null || die "unknown arch $a (want one of: $all_arches)"
done

deps=$(depends)
[ -n "$deps" ] || die "no PARKPORTAL_DEPENDS found in $here/Makefile"

mkdir -p "$DIST"
work=$(mktemp -d "${TMPDIR:-/tmp}/parkportal-ipk.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

sizes="$work/SIZES.txt"
printf '# parkportal %s: stripped binary size per target (go build -trimpath -tags %s %s -ldflags "-s -w")\n' "$VERSION" "$router_tags" "$router_gcflags" >"$sizes"
printf '# %-26s %10s %8s %10s\n' arch bytes MiB ipk_bytes >>"$sizes"

for a in $arches; do
	echo "build.sh: $a"
	root="$work/$a"
	data="$root/data"
	ctrl="$root/control"
	mkdir -p "$data/usr/bin" "$data/etc/init.d" "$data/etc/config" \
		"$data/etc/uci-defaults" "$data/usr/share/parkportal" \
		"$data/lib/upgrade/keep.d" "$ctrl"

	# shellcheck disable=SC2046,SC2086 # goenv's and router_gcflags' words are meant to split
	(cd "$repo" && env CGO_ENABLED=0 GOOS=linux $(goenv "$a") \
		"$GO" build -trimpath -tags "$router_tags" $router_gcflags -ldflags "-s -w -X main.version=$VERSION" \
		-o "$data/usr/bin/parkportal" ./cmd/parkportal)

	install -m 0755 "$here/files/parkportal.init" "$data/etc/init.d/parkportal"
	install -m 0755 "$here/files/parkportal-gate.init" "$data/etc/init.d/parkportal-gate"
	install -m 0600 "$here/files/parkportal.config" "$data/etc/config/parkportal"
	install -m 0755 "$here/files/parkportal.uci-defaults" "$data/etc/uci-defaults/90-parkportal"
	install -m 0755 "$here/files/firewall.include" "$data/usr/share/parkportal/firewall.include"
	install -m 0644 "$here/files/parkportal.keep" "$data/lib/upgrade/keep.d/parkportal"
	chmod 0755 "$data/usr/bin/parkportal"

	bin_bytes=$(wc -c <"$data/usr/bin/parkportal" | tr -d ' ')
	installed=$(du -sb "$data" | cut -f1)

	cat >"$ctrl/control" <<CONTROL
Package: parkportal
Version: $VERSION
Depends: $deps
Source: deploy/openwrt
SourceName: parkportal
License: $(makevar PKG_LICENSE)
Section: net
Architecture: $a
Installed-Size: $installed
Maintainer: $(makevar PKG_MAINTAINER)
Description: Captive portal for free public-park Wi-Fi: visitors log in
 with their mobile number and an SMS PIN; the gateway's firewall lets
 them out and shapes them to the park's rate.
CONTROL
	echo /etc/config/parkportal >"$ctrl/conffiles"
	install -m 0755 "$here/files/postinst" "$ctrl/postinst"
	install -m 0755 "$here/files/prerm" "$ctrl/prerm"

	printf '2.0\n' >"$root/debian-binary"
	tarball "$ctrl" "$root/control.tar.gz"
	tarball "$data" "$root/data.tar.gz"
	touch -d "@$SOURCE_DATE_EPOCH" "$root/debian-binary" "$root/control.tar.gz" "$root/data.tar.gz"

	ipk="$DIST/parkportal_${VERSION}_$a.ipk"
	rm -f "$ipk"
	if [ "$OUTER" = ar ]; then
		(cd "$root" && ar -rcD "$ipk" debian-binary control.tar.gz data.tar.gz)
	else
		tar --format=gnu --numeric-owner --owner=0 --group=0 \
			--mtime="@$SOURCE_DATE_EPOCH" -C "$root" \
			-cf - ./debian-binary ./control.tar.gz ./data.tar.gz | gzip -9n >"$ipk"
	fi
	ipk_bytes=$(wc -c <"$ipk" | tr -d ' ')
	awk -v a="$a" -v b="$bin_bytes" -v i="$ipk_bytes" \
		'BEGIN { printf "%-28s %10d %8.2f %10d\n", a, b, b / 1048576, i }' >>"$sizes"
	echo "build.sh: wrote $ipk"
done

if [ "$arches" = "$all_arches" ]; then
	cp "$sizes" "$DIST/SIZES.txt"
else
	# A partial build adds its lines to whatever SIZES.txt holds.
	[ -f "$DIST/SIZES.txt" ] || head -n 2 "$sizes" >"$DIST/SIZES.txt"
	for a in $arches; do
		grep -v "^$a " "$DIST/SIZES.txt" >"$work/sizes.old" || true
		grep "^$a " "$sizes" >>"$work/sizes.old"
		cp "$work/sizes.old" "$DIST/SIZES.txt"
	done
fi
# Issue 14's budgets for a 16 MB-flash router: the stripped mipsel
# binary at most 11 MiB, its ipk at most 4 MiB (TestSizes enforces them).
grep -v '^# budget:' "$DIST/SIZES.txt" >"$work/sizes.new" || true
awk '$1 == "mipsel_24kc" {
	printf "# budget: mipsel_24kc binary at most 11 MiB: %s (%.2f MiB)\n", ($2 <= 11534336 ? "met" : "NOT MET"), $2 / 1048576
	printf "# budget: mipsel_24kc ipk at most 4 MiB: %s (%.2f MiB)\n", ($4 <= 4194304 ? "met" : "NOT MET"), $4 / 1048576
}' "$work/sizes.new" >>"$work/sizes.new.budget"
cat "$work/sizes.new" "$work/sizes.new.budget" >"$DIST/SIZES.txt"
cat "$DIST/SIZES.txt"
