// Package e2e holds parkportal's end-to-end tests: each builds a virtual
// park in network namespaces (package lab), runs the real parkportal
// binary in its gateway with real iptables, ipset and tc, and drives it
// with real clients (curl, iperf3). They need root and skip without it;
// CI runs them as root.
package e2e
