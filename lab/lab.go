// Package lab builds a virtual park out of network namespaces: a gateway
// where parkportal runs, visitors on a bridged LAN, and an "internet"
// host. `parkportal lab` and the end-to-end tests both use it, so what a
// newcomer tries by hand is what CI checks.
//
//	visitor-1 ──veth──┐
//	visitor-N ──veth──┤ bridge lan0 ── gateway ── wan0 ──veth── internet (203.0.113.10)
//
// Only documentation address ranges are used: LAN 198.51.100.0/24
// (gateway .1, visitors .11 up), WAN 192.0.2.0/24, the internet host
// 203.0.113.10 and IPv6 2001:db8::/32.
package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Addresses of the virtual park.
var (
	LANPrefix   = netip.MustParsePrefix("198.51.100.0/24")
	GatewayLAN  = netip.MustParseAddr("198.51.100.1")
	GatewayWAN  = netip.MustParseAddr("192.0.2.1")
	InternetWAN = netip.MustParseAddr("192.0.2.2")
	InternetIP  = netip.MustParseAddr("203.0.113.10")
	LAN6Prefix  = netip.MustParsePrefix("2001:db8:1::/64")
	GatewayLAN6 = netip.MustParseAddr("2001:db8:1::1")
	Internet6   = netip.MustParseAddr("2001:db8:2::10")
)

// LANIface is the gateway's LAN bridge inside its namespace.
const LANIface = "lan0"

// Park is one built virtual park.
type Park struct {
	Prefix   string // names of namespaces and links start with it
	Gateway  string // namespace names
	Internet string
	Visitors []Visitor
}

// Visitor is one visitor namespace.
type Visitor struct {
	NS  string
	IP  netip.Addr
	IP6 netip.Addr
	MAC string
}

// Build creates a park with n visitors. prefix must be short (at most 6
// characters): link names are limited to 15. On error, everything made
// so far is removed.
func Build(prefix string, n int) (*Park, error) {
	if len(prefix) == 0 || len(prefix) > 6 || n < 1 || n > 200 {
		return nil, fmt.Errorf("lab: want a 1-6 character prefix and 1-200 visitors")
	}
	p := &Park{Prefix: prefix, Gateway: prefix + "-gw", Internet: prefix + "-inet"}
	for i := 0; i < n; i++ {
		p.Visitors = append(p.Visitors, Visitor{
			NS:  fmt.Sprintf("%s-v%d", prefix, i+1),
			IP:  netip.AddrFrom4([4]byte{198, 51, 100, byte(11 + i)}),
			IP6: netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%x", 0x11+i)),
			// Locally administered, unicast, and readable.
			MAC: fmt.Sprintf("02:00:5e:00:01:%02x", 0x11+i),
		})
	}
	// A leftover park from a crashed run would make every step fail.
	p.Destroy()
	if err := p.build(); err != nil {
		p.Destroy()
		return nil, err
	}
	return p, nil
}

func (p *Park) build() error {
	gw, inet := p.Gateway, p.Internet
	steps := [][]string{
		{"netns", "add", gw},
		{"netns", "add", inet},
		{"-n", gw, "link", "set", "lo", "up"},
		{"-n", inet, "link", "set", "lo", "up"},
		{"-n", gw, "link", "add", LANIface, "type", "bridge"},
		{"-n", gw, "addr", "add", GatewayLAN.String() + "/24", "dev", LANIface},
		{"-n", gw, "addr", "add", GatewayLAN6.String() + "/64", "dev", LANIface, "nodad"},
		{"-n", gw, "link", "set", LANIface, "up"},
		{"link", "add", p.Prefix + "-w0", "type", "veth", "peer", "name", p.Prefix + "-w1"},
		{"link", "set", p.Prefix + "-w0", "netns", gw, "name", "wan0"},
		{"link", "set", p.Prefix + "-w1", "netns", inet, "name", "eth0"},
		{"-n", gw, "addr", "add", GatewayWAN.String() + "/24", "dev", "wan0"},
		{"-n", gw, "addr", "add", "2001:db8:2::1/64", "dev", "wan0", "nodad"},
		{"-n", gw, "link", "set", "wan0", "up"},
		{"-n", gw, "route", "add", "203.0.113.0/24", "via", InternetWAN.String()},
		{"-n", inet, "addr", "add", InternetWAN.String() + "/24", "dev", "eth0"},
		{"-n", inet, "addr", "add", InternetIP.String() + "/24", "dev", "eth0"},
		{"-n", inet, "addr", "add", Internet6.String() + "/64", "dev", "eth0", "nodad"},
		{"-n", inet, "link", "set", "eth0", "up"},
		{"-n", inet, "route", "add", LANPrefix.String(), "via", GatewayWAN.String()},
		{"-n", inet, "route", "add", LAN6Prefix.String(), "via", "2001:db8:2::1"},
	}
	for i, v := range p.Visitors {
		host, peer := fmt.Sprintf("%s-h%d", p.Prefix, i+1), fmt.Sprintf("%s-p%d", p.Prefix, i+1)
		steps = append(steps,
			[]string{"netns", "add", v.NS},
			[]string{"-n", v.NS, "link", "set", "lo", "up"},
			[]string{"link", "add", host, "type", "veth", "peer", "name", peer},
			[]string{"link", "set", host, "netns", v.NS, "name", "eth0"},
			[]string{"link", "set", peer, "netns", gw},
			[]string{"-n", gw, "link", "set", peer, "master", LANIface},
			[]string{"-n", gw, "link", "set", peer, "up"},
			[]string{"-n", v.NS, "link", "set", "eth0", "address", v.MAC},
			[]string{"-n", v.NS, "addr", "add", v.IP.String() + "/24", "dev", "eth0"},
			[]string{"-n", v.NS, "addr", "add", v.IP6.String() + "/64", "dev", "eth0", "nodad"},
			[]string{"-n", v.NS, "link", "set", "eth0", "up"},
			[]string{"-n", v.NS, "route", "add", "default", "via", GatewayLAN.String()},
			[]string{"-n", v.NS, "-6", "route", "add", "default", "via", GatewayLAN6.String()},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	for _, sysctl := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"} {
		if out, err := exec.Command("ip", "netns", "exec", gw, "sysctl", "-qw", sysctl).CombinedOutput(); err != nil {
			return fmt.Errorf("lab: sysctl %s: %v: %s", sysctl, err, out)
		}
	}
	// Like OpenWrt, the gateway does not pass bridged frames through
	// iptables (br_netfilter is loaded on many Linux hosts, and per
	// namespace it defaults to on). Absent module: nothing to turn off.
	for _, sysctl := range []string{"net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0"} {
		exec.Command("ip", "netns", "exec", gw, "sysctl", "-qw", sysctl).Run()
	}
	return nil
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Destroy removes every namespace of the park (their links go with
// them) and any root-namespace veth left by an interrupted build.
func (p *Park) Destroy() error {
	var errs []error
	names := []string{p.Gateway, p.Internet}
	for _, v := range p.Visitors {
		names = append(names, v.NS)
	}
	for _, ns := range names {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			// Processes left in the namespace would keep it alive.
			exec.Command("ip", "netns", "pids", ns).Run()
			killAll(ns)
			if err := ip("netns", "del", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, link := range []string{p.Prefix + "-w0", p.Prefix + "-w1"} {
		exec.Command("ip", "link", "del", link).Run()
	}
	for i := range p.Visitors {
		exec.Command("ip", "link", "del", fmt.Sprintf("%s-h%d", p.Prefix, i+1)).Run()
	}
	return errors.Join(errs...)
}

// killAll ends every process in namespace ns, waiting briefly.
func killAll(ns string) {
	for attempt := 0; attempt < 20; attempt++ {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		pids := strings.Fields(string(out))
		if err != nil || len(pids) == 0 {
			return
		}
		sig := "-TERM"
		if attempt > 5 {
			sig = "-KILL"
		}
		exec.Command("kill", append([]string{sig}, pids...)...).Run()
		time.Sleep(100 * time.Millisecond)
	}
}

// Cmd returns a command that runs inside namespace ns.
func Cmd(ns string, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}
