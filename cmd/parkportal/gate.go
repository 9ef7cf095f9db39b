package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/parkwifi/parkportal/config"
	"github.com/parkwifi/parkportal/firewall"
)

// gatedMarker is the file that says this gateway runs a gate: serve
// writes it once its gate is in the kernel, cleanup removes it. Without
// it close-gate does nothing, so a fresh install whose config still holds
// placeholders never cuts a LAN off at boot.
func gatedMarker(dbPath string) string { return dbPath + ".gated" }

// servedGate is the marker's content: the gate as serve last built it,
// so that close-gate can shut the same gate when the config file no
// longer parses (an edit gone wrong, then a reboot) rather than leave the
// LAN open.
type servedGate struct {
	Note        string       `json:"note"`
	Backend     string       `json:"firewall_backend"`
	LANIface    string       `json:"lan_iface"`
	LANPrefix   netip.Prefix `json:"lan_cidr"`
	GatewayIP   netip.Addr   `json:"gateway_ip"`
	PortalPort  int          `json:"portal_port"`
	TLSPort     int          `json:"tls_port,omitempty"`
	AdminPort   int          `json:"admin_port"`
	CoAPort     int          `json:"das_port,omitempty"`
	TrustedMACs []string     `json:"trusted_macs,omitempty"`
}

const servedGateNote = "parkportal serves here: at boot, parkportal close-gate (/etc/init.d/parkportal-gate) shuts this gate before the LAN comes up; 'parkportal cleanup' removes this file"

func servedGateOf(fc firewall.Config, backend string) servedGate {
	g := servedGate{
		Note: servedGateNote, Backend: backend, LANIface: fc.LANIface, LANPrefix: fc.LANPrefix,
		GatewayIP: fc.GatewayIP, PortalPort: fc.PortalPort, TLSPort: fc.TLSPort, AdminPort: fc.AdminPort,
		CoAPort: fc.CoAPort,
	}
	for _, m := range fc.TrustedMACs {
		g.TrustedMACs = append(g.TrustedMACs, m.String())
	}
	return g
}

// firewallConfig is the gate g describes, without shaping.
func (g servedGate) firewallConfig() (firewall.Config, error) {
	fc := firewall.Config{
		Backend: g.Backend, LANIface: g.LANIface, LANPrefix: g.LANPrefix, GatewayIP: g.GatewayIP,
		PortalPort: g.PortalPort, TLSPort: g.TLSPort, AdminPort: g.AdminPort, CoAPort: g.CoAPort,
	}
	for _, s := range g.TrustedMACs {
		m, err := net.ParseMAC(s)
		if err != nil {
			return fc, fmt.Errorf("trusted MAC %q: %w", s, err)
		}
		fc.TrustedMACs = append(fc.TrustedMACs, m)
	}
	if fc.LANIface == "" || !fc.LANPrefix.IsValid() || !fc.GatewayIP.IsValid() || fc.PortalPort == 0 {
		return fc, errors.New("LAN interface, prefix, gateway address or portal port missing")
	}
	return fc, nil
}

// markGated writes the marker if it is missing or stale. A failure is
// reported, not fatal: the daemon works without it; only the next boot's
// gate would wait for the daemon.
func markGated(dbPath string, fc firewall.Config, backend string) error {
	body, err := json.MarshalIndent(servedGateOf(fc, backend), "", "  ")
	if err != nil {
		return err
	}
	body = append(body, '\n')
	path := gatedMarker(dbPath)
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, body) {
		return nil // flash is written only when something changed
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %s: %w", tmp, err)
	}
	return nil
}

// lastServedGate reads the gate serve last built from the marker next to
// the database that the unloadable config file fe names (found line by
// line), or next to the default database.
func lastServedGate(fe *fileError) (firewall.Config, error) {
	dbPath := dbPathOf(fe.path)
	if dbPath == "" {
		dbPath = config.Defaults().DBPath
	}
	marker := gatedMarker(dbPath)
	b, err := os.ReadFile(marker)
	if errors.Is(err, fs.ErrNotExist) {
		return firewall.Config{}, fmt.Errorf("%w; and parkportal has not served here (no %s): gate not closed", fe, marker)
	}
	var g servedGate
	if err == nil {
		err = json.Unmarshal(b, &g)
	}
	var fc firewall.Config
	if err == nil {
		fc, err = g.firewallConfig()
	}
	if err != nil {
		return fc, fmt.Errorf("%w; and %s cannot stand in for it (%v): gate not closed", fe, marker, err)
	}
	fmt.Fprintf(os.Stderr, "parkportal: %v\nclosing the gate parkportal last served with (%s) instead\n", fe, marker)
	fc.Logger = newLogger("info")
	return fc, nil
}

// dbPathOf finds db_path in a UCI file line by line, for a file that no
// longer parses as a whole; "" if there is none.
func dbPathOf(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == "option" && fields[1] == "db_path" {
			return strings.Trim(fields[2], `'"`)
		}
	}
	return ""
}

func cmdCloseGate(args []string) error {
	cfg, err := loadConfig(newFlags("close-gate", "close-gate [--config FILE | --lab-defaults]   at boot, before the LAN is up: put the gate in the kernel with nobody let through\n                                                   (only where parkportal has served, and only if no gate is there)"), args)
	var fe *fileError
	var fc firewall.Config
	switch {
	case errors.As(err, &fe):
		// The file does not load: fall back on the gate serve last
		// built, which the marker holds, rather than leave the LAN open.
		if fc, err = lastServedGate(fe); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		marker := gatedMarker(cfg.DBPath)
		if _, err := os.Stat(marker); errors.Is(err, fs.ErrNotExist) {
			fmt.Printf("gate not closed: parkportal has not served here yet (no %s), so the LAN is left as the base firewall has it\n", marker)
			return nil
		} else if err != nil {
			return fmt.Errorf("checking %s: %w", marker, err)
		}
		fc = firewallConfig(cfg, newLogger(cfg.LogLevel))
	}
	// Shaping is the daemon's: it needs the LAN device, not up yet at
	// boot. The walled garden is the daemon's too (the site policy in its
	// store): until it starts, nothing but the portal, DNS and DHCP.
	fc.Shaping, fc.WalledGarden = false, nil
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
		fw.Backend(), fc.LANIface, fc.LANPrefix)
	return nil
}
