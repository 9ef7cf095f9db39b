#!/usr/bin/env bash
# Installs the Debian packages parkportal's lab and tests use, if missing.
# Usage: scripts/deps.sh [lab|test]
set -euo pipefail
want=(iproute2 iptables ipset curl)
if [[ "${1:-test}" == test ]]; then
	want+=(iperf3 iputils-ping iputils-arping dnsmasq-base busybox freeradius freeradius-utils sqlite3 chromium qemu-user-static binutils shellcheck wrk)
fi
missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# FreeRADIUS's package starts a system instance; the tests run their own.
if command -v systemctl >/dev/null && systemctl is-active -q freeradius 2>/dev/null; then
	systemctl stop freeradius || true
fi
