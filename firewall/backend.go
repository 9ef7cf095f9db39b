package firewall

import (
	"fmt"
)

// newBackend picks the backend cfg asks for: "nftables", "iptables", or
// (empty or "auto") nftables wherever the kernel has nf_tables, which is
// OpenWrt 22.03 and later (fw4) and Debian 11 and later.
//
// The other backend's leftovers (from an upgrade, or a changed setting)
// are removed once the chosen one is in place: see Firewall.Ensure.
func newBackend(cfg Config) (backend, error) {
	name := cfg.Backend
	if name == "" || name == "auto" {
		name = "iptables"
		if nfTablesAvailable() {
			name = "nftables"
		}
	}
	switch name {
	case "nftables":
		return newNFTables(cfg)
	case "iptables":
		return newIPTables(cfg)
	}
	return nil, fmt.Errorf("firewall backend %q: want nftables, iptables or auto", cfg.Backend)
}

// otherBackend returns the backend cfg did not pick, for removing what a
// previous run left in it, or nil when the host cannot have one (no
// iptables command, no nf_tables).
func otherBackend(cfg Config, chosen backend) backend {
	switch chosen.(type) {
	case *backendNFTables:
		if b, err := newIPTables(cfg); err == nil {
			return b
		}
	case *backendIPTables:
		if nfTablesAvailable() {
			if b, err := newNFTables(cfg); err == nil {
				return b
			}
		}
	}
	return nil
}
