#!/usr/bin/env bash
# Sourced by scripts/test.sh and scripts/lab.sh from the repository's
# root: puts Go's usual install directory on PATH and stops with a clear
# message unless the Go there is at least the version go.mod names.
# Debian's own golang package is older than parkportal needs.

export PATH="$PATH:/usr/local/go/bin"
need=$(awk '$1 == "go" { print $2; exit }' go.mod)
need_minor=${need%.*} # "1.26.0" -> "1.26"
install_hint="install Go ${need_minor} or newer from https://go.dev/dl/ (e.g. tar -C /usr/local -xzf go${need_minor}.*.linux-amd64.tar.gz), which puts it in /usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
	echo "parkportal needs Go ${need_minor} or newer, and there is no go command on PATH ($PATH)." >&2
	echo "  $install_hint" >&2
	exit 1
fi
# GOTOOLCHAIN=local: report the Go that is installed, not one go.mod
# would make it download.
have=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null)
have=${have#go}
if [[ -z "$have" ]] || [[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]]; then
	echo "parkportal needs Go ${need_minor} or newer (go.mod says go ${need}); $(command -v go) is go${have:-?}." >&2
	echo "  $install_hint" >&2
	exit 1
fi
