package firewall

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// bridgeNFSysctls are the switches with which br_netfilter passes frames
// bridged between the LAN's ports through the IP hooks.
var bridgeNFSysctls = []string{
	"proc/sys/net/bridge/bridge-nf-call-iptables",
	"proc/sys/net/bridge/bridge-nf-call-ip6tables",
}

// setBridgeNetfilter turns off br_netfilter's calls into the IP hooks
// when the LAN is a bridge. With them on, a visitor's packets meet our
// rules (and NAT) on the bridge port, before the upload shaper's IFB
// redirect, which then drops the connection's NAT state: redirected
// visitors never reach the portal. OpenWrt leaves them off; Debian turns
// them on once something loads br_netfilter. A gateway on which they
// cannot be turned off is refused rather than run half-working.
func setBridgeNetfilter(lan string, log *slog.Logger) error {
	return setBridgeNetfilterAt("/", lan, log)
}

// setBridgeNetfilterAt is setBridgeNetfilter with /proc and /sys under
// root, for tests.
func setBridgeNetfilterAt(root, lan string, log *slog.Logger) error {
	if _, err := os.Stat(filepath.Join(root, "sys/class/net", lan, "bridge")); err != nil {
		return nil // not a bridge: nothing is bridged through the hooks
	}
	for _, rel := range bridgeNFSysctls {
		path := filepath.Join(root, rel)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // br_netfilter is not loaded
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if strings.TrimSpace(string(b)) == "0" {
			continue
		}
		name := strings.ReplaceAll(strings.TrimPrefix(rel, "proc/sys/"), "/", ".")
		if err := os.WriteFile(path, []byte("0\n"), 0o644); err != nil {
			return fmt.Errorf("%s is 1 and could not be set to 0 (%w): with it, visitors' traffic is filtered and NATed on the bridge port and redirected visitors cannot reach the portal; set it with 'sysctl -w %s=0' and start again", name, err, name)
		}
		log.Warn("turned off br_netfilter for the LAN bridge: visitors' frames must meet parkportal's rules at the IP layer, after the upload shaper", "sysctl", name, "lan_iface", lan)
	}
	return nil
}
