#!/bin/sh
# sizes.sh: what each part of parkportal costs in a stripped router
# binary, measured, not guessed.
#
# Usage: deploy/openwrt/sizes.sh [GOARCH [GOMIPS/GOARM]]   (default: mipsle softfloat)
#
# It builds testdata/sizefloor -- the floor any Go captive portal pays:
# runtime, HTTP server with TLS, HTTPS client, html/template -- alone and
# with one of parkportal's dependencies switched on at a time (each used
# the way parkportal uses it), then parkportal itself, all with the
# flags build.sh uses (CGO_ENABLED=0 -trimpath -ldflags "-s -w").
# The "gzip -9" column is close to what the binary occupies on the
# router's flash: opkg unpacks onto the overlay (JFFS2 or UBIFS), which
# stores it compressed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
GO=${GO:-go}
goarch=${1:-mipsle}
variant=${2:-softfloat}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

case "$goarch" in
mips | mipsle) export GOMIPS="$variant" ;;
arm) export GOARM="${2:-7}" ;;
esac
export GOOS=linux GOARCH="$goarch" CGO_ENABLED=0

build() { # build NAME TAGS PACKAGE
	(cd "$repo" && "$GO" build -trimpath -ldflags "-s -w" -tags "$2" -o "$out/$1" "$3")
}

mib() { awk -v b="$1" 'BEGIN { printf "%6.2f MiB", b / 1048576 }'; }

build floor "" ./deploy/openwrt/testdata/sizefloor
floor=$(stat -c %s "$out/floor")
printf '%-34s %s %s %s\n' "binary ($goarch)" "  stripped" "    +floor" "   gzip -9"
printf '%-34s %s %13s %s\n' "floor: net/http+TLS+html/template" "$(mib "$floor")" "" "$(mib "$(gzip -9c "$out/floor" | wc -c)")"
for tag in prometheus phonenumbers devwatch netlink bbolt twilio; do
	build "$tag" "$tag" ./deploy/openwrt/testdata/sizefloor
	size=$(stat -c %s "$out/$tag")
	label="floor + $tag"
	[ "$tag" = bbolt ] && label="floor + bbolt + layeh radius"
	printf '%-34s %s   +%s\n' "$label" "$(mib "$size")" "$(mib $((size - floor)))"
done
build parkportal "" ./cmd/parkportal
size=$(stat -c %s "$out/parkportal")
printf '%-34s %s   +%s %s\n' "parkportal" "$(mib "$size")" "$(mib $((size - floor)))" "$(mib "$(gzip -9c "$out/parkportal" | wc -c)")"
