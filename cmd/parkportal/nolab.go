//go:build !lab

package main

import "errors"

// errNoLab answers `parkportal lab` in a router build, which leaves the
// virtual park (package lab: namespaces, an internet host, scripted
// visitors, iperf3 and crowd helpers) out to save flash.
var errNoLab = errors.New(`this parkportal is a router build and has no virtual park.
On a development machine, as root, from a clone of the repository, run:
  scripts/lab.sh                 (scripts/lab.sh --check for the scripted visitor)
or build the lab yourself: go build -tags lab ./cmd/parkportal && ./parkportal lab`)

func cmdLab([]string) error { return errNoLab }

func cmdLabInternet([]string) error { return errNoLab }
