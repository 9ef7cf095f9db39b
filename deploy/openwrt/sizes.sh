#!/bin/sh
# sizes.sh: what each part of parkportal costs in a stripped router
# binary, measured, not guessed.
#
# Usage: deploy/openwrt/sizes.sh [GOARCH [GOMIPS/GOARM]]   (default: mipsle softfloat)
#
# It builds testdata/sizefloor -- a small program with what a Go captive
# portal links anyway: runtime, HTTP server with TLS, HTTPS client,
# html/template -- alone and with one part of parkportal switched on at a
# time (each used the way parkportal uses it), then parkportal itself,
# all with the flags and tags build.sh uses (CGO_ENABLED=0 -trimpath
# -ldflags "-s -w" -tags nethttpomithttp2).
#
# The floor row is a reference, not a bound. An earlier version of this
# script built it with net/http's HTTP/2 (9.31 MiB) and called it the
# floor no Go portal could go under, so that a 10 MB budget left "no
# room": wrong on both counts. Without HTTP/2, which nothing here needs,
# the same program is 0.56 MiB smaller, and parts share code with the
# floor and with each other, so parkportal costs less than the floor
# plus every row (docs/BENCHMARKS.md, "Size and memory", has the
# figures before and after the dependencies that cost most were
# replaced).
#
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

# The same as build.sh's (TestRouterTagsAgree and TestRouterFlagsAgree check).
router_tags=nethttpomithttp2
router_gcflags="-gcflags=all=-l -gcflags=runtime/...= -gcflags=internal/...= -gcflags=sync/...= -gcflags=reflect= -gcflags=strconv= -gcflags=bytes= -gcflags=strings= -gcflags=encoding/json= -gcflags=crypto/...= -gcflags=golang.org/x/crypto/...= -gcflags=vendor/golang.org/x/crypto/...= -gcflags=go.etcd.io/bbolt/...="

case "$goarch" in
mips | mipsle) export GOMIPS="$variant" ;;
arm) export GOARM="${2:-7}" ;;
esac
export GOOS=linux GOARCH="$goarch" CGO_ENABLED=0

build() { # build NAME TAGS PACKAGE
	# shellcheck disable=SC2086 # router_gcflags' words are meant to split
	(cd "$repo" && "$GO" build -trimpath -ldflags "-s -w" -tags "$router_tags${2:+,$2}" $router_gcflags -o "$out/$1" "$3")
}

mib() { awk -v b="$1" 'BEGIN { printf "%6.2f MiB", b / 1048576 }'; }

build floor "" ./deploy/openwrt/testdata/sizefloor
floor=$(stat -c %s "$out/floor")
printf '%-34s %s %s %s\n' "binary ($goarch)" "  stripped" "    +floor" "   gzip -9"
printf '%-34s %s %13s %s\n' "floor: net/http+TLS+html/template" "$(mib "$floor")" "" "$(mib "$(gzip -9c "$out/floor" | wc -c)")"
for tag in phone metrics devwatch netlink bbolt twilio; do
	build "$tag" "$tag" ./deploy/openwrt/testdata/sizefloor
	size=$(stat -c %s "$out/$tag")
	label="floor + $tag"
	case "$tag" in
	phone) label="floor + phone (table)" ;;
	metrics) label="floor + metrics (promtext)" ;;
	bbolt) label="floor + bbolt + layeh radius" ;;
	esac
	printf '%-34s %s   +%s\n' "$label" "$(mib "$size")" "$(mib $((size - floor)))"
done
build parkportal "" ./cmd/parkportal
size=$(stat -c %s "$out/parkportal")
printf '%-34s %s   +%s %s\n' "parkportal" "$(mib "$size")" "$(mib $((size - floor)))" "$(mib "$(gzip -9c "$out/parkportal" | wc -c)")"
