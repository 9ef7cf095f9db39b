#!/usr/bin/env bash
# Reproduces the figures in docs/BENCHMARKS.md: the portal under wrk
# (redirected probe and splash page, 50 connections, 10 s each), the
# daemon's CPU and peak memory, memory with 5,000 stored sessions, the
# slowloris, crowd and soak tests. Everything runs in a lab park of
# network namespaces (documentation addresses only) that the tests build
# and remove. Needs root.
#
# Usage: bench/portal.sh [--soak DURATION]   (default soak 5m)
set -euo pipefail
cd "$(dirname "$0")/.."
soak=5m
while (($#)); do
	case "$1" in
	--soak) soak="$2"; shift 2 ;;
	*) echo "usage: $0 [--soak DURATION]" >&2; exit 2 ;;
	esac
done
if [[ $EUID -ne 0 ]]; then
	echo "bench/portal.sh: needs root (network namespaces, iptables)" >&2
	exit 1
fi
scripts/deps.sh test
echo "== machine: $(nproc) cores, $(uname -r), $(go version | cut -d' ' -f3)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {
	# -count=1: never a cached result; -v: the figures are in the log.
	"$@" >"$log" 2>&1 && rc=0 || rc=$?
	grep -E 'BENCH|connections, 3 s|slow connection|splash load|daemon: fds|crowd of|soak [0-9]|RSS [0-9]|after warm-up|^--- |^ok|^FAIL' "$log" || true
	if ((rc != 0)); then
		echo "(exit $rc; full output kept in $log.fail)"
		cp "$log" "$log.fail"
	fi
}
echo "== wrk: 50 connections, 10 s, probe and splash; memory with 5,000 sessions"
PARKPORTAL_BENCH=1 run go test -count=1 -timeout 10m -run '^TestLoadBench$' -v ./e2e
echo "== CI versions: wrk 3 s at 20 connections, slowloris, crowd"
run go test -count=1 -timeout 10m -run '^(TestLoadSmoke|TestSlowloris|TestCrowd)$' -v ./e2e
echo "== soak ($soak)"
PARKPORTAL_SOAK=$soak run go test -count=1 -timeout 3h -run '^TestSoak$' -v ./e2e
