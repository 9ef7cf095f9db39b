package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/firewall"
)

// gatedMarker is the file that says this gateway runs a gate: serve
// writes it once its gate is in the kernel, cleanup removes it. Without
// it close-gate does nothing, so a fresh install whose config still holds
// placeholders never cuts a LAN off at boot.
func gatedMarker(cfg *config.Config) string { return cfg.DBPath + ".gated" }

// markGated writes the marker if it is missing or stale. A failure is
// reported, not fatal: the daemon works without it; only the next boot's
// gate would wait for the daemon.
func markGated(cfg *config.Config, backend string) error {
	body := fmt.Sprintf("# parkportal serves here: at boot, parkportal close-gate (/etc/init.d/parkportal-gate)\n# shuts the gate before the LAN comes up. 'parkportal cleanup' removes this file.\nlan_iface=%s\nlan_cidr=%s\nfirewall=%s\n",
		cfg.LANIface, cfg.LANPrefix, backend)
	path := gatedMarker(cfg)
	if b, err := os.ReadFile(path); err == nil && string(b) == body {
		return nil // flash is written only when something changed
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %s: %w", tmp, err)
	}
	return nil
}

func cmdCloseGate(args []string) error {
	cfg, err := loadConfig(newFlags("close-gate", "close-gate [--config FILE | --lab-defaults]   at boot, before the LAN is up: put the gate in the kernel with nobody let through\n                                                   (only where parkportal has served, and only if no gate is there)"), args)
	if err != nil {
		return err
	}
	marker := gatedMarker(cfg)
	if _, err := os.Stat(marker); errors.Is(err, fs.ErrNotExist) {
		fmt.Printf("gate not closed: parkportal has not served here yet (no %s), so the LAN is left as the base firewall has it\n", marker)
		return nil
	} else if err != nil {
		return fmt.Errorf("checking %s: %w", marker, err)
	}
	fc := firewallConfig(cfg, newLogger(cfg.LogLevel))
	fc.Shaping = false // the daemon's: it needs the LAN device, not up yet at boot
	fw, err := firewall.New(fc)
	if err != nil {
		return err
	}
	closed, err := fw.CloseGate()
	if err != nil {
		return err
	}
	if !closed {
		fmt.Printf("the gate is already in the kernel (%s); left as it is\n", fw.Backend())
		return nil
	}
	fmt.Printf("gate closed (%s): visitors on %s (%s) get only the portal, DNS and DHCP until parkportal serve lets them through\n",
		fw.Backend(), cfg.LANIface, cfg.LANPrefix)
	return nil
}
