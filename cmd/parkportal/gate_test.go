package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/parkwifi/parkportal/firewall"
)

// TestServedGateRoundTrip: the marker serve writes gives close-gate the
// same gate back (without shaping and walled garden, which are the
// daemon's), written once and not again while nothing changed.
func TestServedGateRoundTrip(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:5e:00:53:01")
	fc := firewall.Config{
		Backend: "auto", LANIface: "br-lan", LANPrefix: netip.MustParsePrefix("198.51.100.0/24"),
		GatewayIP: netip.MustParseAddr("198.51.100.1"), PortalPort: 2050, TLSPort: 2051, AdminPort: 2052, CoAPort: 3799,
		TrustedMACs: []net.HardwareAddr{mac}, Shaping: true, IFBName: "pp-ifb0",
		WalledGarden: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28")},
	}
	db := filepath.Join(t.TempDir(), "parkportal.db")
	if err := markGated(db, fc, "nftables"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(gatedMarker(db))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("marker mode %o, want 600", st.Mode().Perm())
	}
	cfgFile := filepath.Join(t.TempDir(), "parkportal")
	os.WriteFile(cfgFile, []byte("config parkportal 'main'\n\toption lan_cidr 'broken'\n\toption db_path '"+db+"'\n"), 0o600)
	got, err := lastServedGate(&fileError{path: cfgFile, err: os.ErrInvalid})
	if err != nil {
		t.Fatal(err)
	}
	want := fc
	want.Backend, want.Shaping, want.IFBName, want.WalledGarden = "nftables", false, "", nil
	got.Logger = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from the marker:\n%+v\nwant:\n%+v", got, want)
	}

	// Unchanged: not written again (flash).
	old := st.ModTime()
	os.Chtimes(gatedMarker(db), old.Add(-1e9), old.Add(-1e9))
	if err := markGated(db, fc, "nftables"); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(gatedMarker(db)); !st2.ModTime().Equal(old.Add(-1e9)) {
		t.Error("an unchanged marker was written again")
	}

	// No marker where the broken file points: nothing to stand in.
	os.Remove(gatedMarker(db))
	if _, err := lastServedGate(&fileError{path: cfgFile, err: os.ErrInvalid}); err == nil {
		t.Error("a broken config without a marker closed a gate")
	}
}
