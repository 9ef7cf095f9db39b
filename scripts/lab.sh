#!/usr/bin/env bash
# Runs parkportal on its embedded defaults in a virtual park built from
# network namespaces. Needs root. Extra arguments go to `parkportal lab`
# (e.g. --check for the scripted visitor).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/need-go.sh
. scripts/need-go.sh
scripts/deps.sh lab
# -tags lab: the virtual park is left out of router builds; the daemon
# is otherwise built as on a router (deploy/openwrt/build.sh).
CGO_ENABLED=0 go build -tags lab,nethttpomithttp2 -o parkportal ./cmd/parkportal
exec ./parkportal lab "$@"
