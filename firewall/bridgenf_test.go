package firewall

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc makes root look like a host whose LAN lan0 is (or is not) a
// bridge and whose br_netfilter sysctls hold vals (nil: not loaded).
func fakeProc(t *testing.T, bridge bool, vals []string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "sys/class/net/lan0")
	if bridge {
		dir = filepath.Join(dir, "bridge")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		p := filepath.Join(root, bridgeNFSysctls[i])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func sysctl(t *testing.T, root string, i int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, bridgeNFSysctls[i]))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestBridgeNetfilterTurnedOff: on a bridged LAN, br_netfilter's calls
// into the IP hooks are turned off (both), or the start is refused with
// the sysctl to set; elsewhere nothing is touched.
func TestBridgeNetfilterTurnedOff(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	root := fakeProc(t, true, []string{"1", "1"})
	if err := setBridgeNetfilterAt(root, "lan0", log); err != nil {
		t.Fatal(err)
	}
	if a, b := sysctl(t, root, 0), sysctl(t, root, 1); a != "0" || b != "0" {
		t.Errorf("after the start: bridge-nf-call-iptables %s, -ip6tables %s; want 0 and 0", a, b)
	}

	root = fakeProc(t, false, []string{"1", "1"})
	if err := setBridgeNetfilterAt(root, "lan0", log); err != nil {
		t.Fatal(err)
	}
	if sysctl(t, root, 0) != "1" {
		t.Error("a LAN that is not a bridge: the sysctl was changed all the same")
	}

	if err := setBridgeNetfilterAt(fakeProc(t, true, nil), "lan0", log); err != nil {
		t.Errorf("br_netfilter not loaded: %v", err)
	}

	// A sysctl that cannot be written (even by root: /proc/version
	// takes no writes) refuses the start.
	root = fakeProc(t, true, []string{"1", "0"})
	path := filepath.Join(root, bridgeNFSysctls[0])
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/version", path); err != nil {
		t.Fatal(err)
	}
	err := setBridgeNetfilterAt(root, "lan0", log)
	if err == nil || !strings.Contains(err.Error(), "sysctl -w net.bridge.bridge-nf-call-iptables=0") {
		t.Errorf("an unwritable sysctl: got %v, want a refusal naming the sysctl to set", err)
	}
}
