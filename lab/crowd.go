package lab

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// Device is one simulated phone of a crowd: a macvlan interface with its
// own MAC and address inside a visitor namespace.
type Device struct {
	NS    string
	Iface string
	MAC   string
	IP    netip.Addr
}

// AddCrowd creates n devices in visitor v's namespace, with addresses
// from 198.51.100.first upward (at most 254). Each device is a macvlan on
// the visitor's eth0, so the gateway sees n distinct MAC/IP pairs on its
// LAN, as it would n phones. Use Device.CurlArgs to send from one.
func AddCrowd(v Visitor, first, n int) ([]Device, error) {
	if first < 2 || first+n-1 > 254 {
		return nil, fmt.Errorf("lab: crowd 198.51.100.%d + %d does not fit the LAN", first, n)
	}
	// Many interfaces on one subnet in one namespace: each must answer
	// ARP only for its own address, or the gateway learns wrong MACs.
	for _, sysctl := range []string{"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"} {
		if out, err := exec.Command("ip", "netns", "exec", v.NS, "sysctl", "-qw", sysctl).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("lab: sysctl %s: %v: %s", sysctl, err, out)
		}
	}
	var batch []string
	var devs []Device
	for i := 0; i < n; i++ {
		host := first + i
		d := Device{
			NS:    v.NS,
			Iface: fmt.Sprintf("mv%d", host),
			MAC:   fmt.Sprintf("02:00:5e:02:00:%02x", host),
			IP:    netip.AddrFrom4([4]byte{198, 51, 100, byte(host)}),
		}
		devs = append(devs, d)
		batch = append(batch,
			fmt.Sprintf("link add %s link eth0 address %s type macvlan mode bridge", d.Iface, d.MAC),
			fmt.Sprintf("addr add %s/24 dev %s noprefixroute", d.IP, d.Iface),
			fmt.Sprintf("link set %s up", d.Iface),
			// Bound to its interface (curl --interface), each device has
			// its own routes.
			fmt.Sprintf("route add 198.51.100.0/24 dev %s src %s metric %d", d.Iface, d.IP, 100+host),
			fmt.Sprintf("route add 203.0.113.0/24 via %s dev %s src %s metric %d", GatewayLAN, d.Iface, d.IP, 100+host),
		)
	}
	cmd := exec.Command("ip", "-n", v.NS, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(batch, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("lab: building crowd: %v: %s", err, out)
	}
	return devs, nil
}

// CurlArgs are the curl flags that make a request come from d, with its
// own cookie jar.
func (d Device) CurlArgs() []string {
	jar := fmt.Sprintf("/tmp/pp-cookies-%s-%s.txt", d.NS, d.Iface)
	return []string{"--interface", d.Iface, "-b", jar, "-c", jar}
}
