package session

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/firewall"
	"github.com/parkwifi/parkportal/internal/netnstest"
	"github.com/parkwifi/parkportal/store"
	"github.com/vishvananda/netlink"
)

func TestZZ(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	netnstest.Enter(t, "ppzz")
	lan := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0"}, PeerName: "lan0p"}
	netlink.LinkAdd(lan)
	netlink.LinkSetUp(lan)
	prefix := netip.MustParsePrefix("198.51.0.0/16")
	fw, _ := firewall.New(firewall.Config{Backend: os.Getenv("ZZ"), LANIface: "lan0", LANPrefix: prefix, GatewayIP: netip.MustParseAddr("198.51.0.1"), PortalPort: 2050, AdminPort: 2052, Shaping: true, IFBName: "pp-ifb0", Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	defer fw.Teardown()
	st, _ := store.Open(filepath.Join(t.TempDir(), "b.db"))
	m := NewManager(Options{Store: st, Gate: fw, LANPrefix: prefix, Logger: slog.New(slog.DiscardHandler), Policy: Policy{SessionTimeout: time.Hour, RateDown: 8e6, RateUp: 8e6}})
	m.Restore()
	for i := 0; i < 500; i++ {
		m.Activate(benchLogin(10 + i))
	}
	for k := 0; k < 3; k++ {
		n, err := m.Resync()
		t.Logf("resync %d %v", n, err)
	}
}
