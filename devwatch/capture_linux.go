//go:build linux

package devwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// New opens a capture of DHCP and ARP on iface (the LAN bridge, br-lan on
// OpenWrt). It needs CAP_NET_RAW. The socket belongs to the network
// namespace of the calling thread. A nil logger means slog.Default().
func New(iface string, logger *slog.Logger) (*Watcher, error) {
	return newWatcher(iface, logger, func() (capture, error) { return openAFPacket(iface) })
}

// afPacket is a capture on a raw AF_PACKET socket bound to one interface.
type afPacket struct {
	iface   string
	fd      int
	ifindex int
	buf     []byte // snapLen bytes: the BPF filter never hands over more
	oob     []byte // room for one PACKET_AUXDATA control message
}

// ethPAll is ETH_P_ALL in network byte order, as socket(2) and bind(2)
// want the protocol of a packet socket, on little- and big-endian routers
// alike.
var ethPAll = htons(unix.ETH_P_ALL)

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// openAFPacket opens the socket, attaches the BPF filter, binds the socket
// to iface and sets a receive timeout. The socket is opened with protocol 0,
// which receives nothing, and only starts receiving at bind(2), with the
// filter already in place: no unfiltered frame from any interface is ever
// queued on it. The timeout is how Run stays stoppable: a blocked
// recvmsg(2) cannot be woken any other way, and closing the fd from another
// goroutine would race with the reader and could hand it a reused fd
// number.
func openAFPacket(iface string) (_ *afPacket, err error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("opening AF_PACKET capture on %q: %w", iface, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening AF_PACKET capture on %q: %w", iface, err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	prog, err := filter()
	if err != nil {
		return nil, err
	}
	ins := make([]unix.SockFilter, len(prog))
	for i, r := range prog {
		ins[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return nil, fmt.Errorf("attaching the arp/dhcp BPF filter on %q: %w", iface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifi.Index}); err != nil {
		return nil, fmt.Errorf("binding the capture socket to %q: %w", iface, err)
	}
	// The original length of each frame and the VLAN tag the kernel took
	// off it (see read).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return nil, fmt.Errorf("asking for packet metadata on %q: %w", iface, err)
	}
	tv := unix.NsecToTimeval(readTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("setting a receive timeout on the capture socket for %q: %w", iface, err)
	}
	return &afPacket{
		iface: iface, fd: fd, ifindex: ifi.Index,
		buf: make([]byte, snapLen),
		oob: make([]byte, unix.CmsgSpace(sizeofAuxdata)),
	}, nil
}

func (a *afPacket) read() ([]byte, frameMeta, error) {
	n, oobn, flags, from, err := unix.Recvmsg(a.fd, a.buf, a.oob, 0)
	if err != nil {
		// EAGAIN is SO_RCVTIMEO expiring; EINTR happens when a signal
		// (Go's preemption signal included) arrives during a read that
		// has a timeout, which SA_RESTART does not restart.
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return nil, frameMeta{}, errTimeout
		}
		return nil, frameMeta{}, fmt.Errorf("reading from %q: %w", a.iface, err)
	}
	m := frameMeta{at: time.Now(), truncated: flags&unix.MSG_TRUNC != 0}
	ll, ok := from.(*unix.SockaddrLinklayer)
	if !ok {
		return nil, frameMeta{}, fmt.Errorf("reading from %q: no link-layer address with the frame (%T)", a.iface, from)
	}
	// Only the kernel sets the packet type: PACKET_OUTGOING for frames
	// this host transmitted on the interface, HOST/BROADCAST/MULTICAST/
	// OTHERHOST for frames that arrived on it. Nothing inside a frame can
	// change it, which is why Run's trust in DHCP ACKs rests on it.
	m.outgoing = ll.Pkttype == unix.PACKET_OUTGOING
	if aux, ok := auxdata(a.oob[:oobn]); ok {
		m.truncated = m.truncated || aux.length > aux.snaplen
		if aux.status&unix.TP_STATUS_VLAN_VALID != 0 {
			m.vlan = aux.vlanTCI & 0x0fff
		}
	}
	return a.buf[:n], m, nil
}

// sizeofAuxdata is the size of struct tpacket_auxdata (linux/if_packet.h):
// u32 status, len, snaplen; u16 mac, net, vlan_tci, vlan_tpid.
const sizeofAuxdata = 20

// auxData is the part of struct tpacket_auxdata that read uses.
type auxData struct {
	status, length, snaplen uint32
	vlanTCI                 uint16
}

// auxdata finds the PACKET_AUXDATA control message in oob. The kernel
// writes it in the host's byte order.
func auxdata(oob []byte) (auxData, bool) {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return auxData{}, false
		}
		if h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && len(data) >= sizeofAuxdata {
			ne := binary.NativeEndian
			return auxData{
				status: ne.Uint32(data[0:4]), length: ne.Uint32(data[4:8]), snaplen: ne.Uint32(data[8:12]),
				vlanTCI: ne.Uint16(data[16:18]),
			}, true
		}
		oob = rest
	}
	return auxData{}, false
}

// link reads the interface's current index, MAC and IPv4 addresses. A
// bridge's MAC changes when a port with a lower MAC joins it, and netifd
// can readdress it, so Run calls this periodically and when a frame
// suggests a change.
func (a *afPacket) link() (linkState, error) {
	ifi, err := net.InterfaceByName(a.iface)
	if err != nil {
		return linkState{}, fmt.Errorf("reading interface %q: %w", a.iface, err)
	}
	if ifi.Index != a.ifindex {
		return linkState{}, fmt.Errorf("interface %q was replaced (index %d, capture bound to %d): %w",
			a.iface, ifi.Index, a.ifindex, errReplaced)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return linkState{}, fmt.Errorf("reading the addresses of %q: %w", a.iface, err)
	}
	st := linkState{mac: clone(ifi.HardwareAddr)}
	for _, ad := range addrs {
		if p, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok && ip.Unmap().Is4() {
				st.addrs = append(st.addrs, ip.Unmap())
			}
		}
	}
	return st, nil
}

func (a *afPacket) close() { unix.Close(a.fd) }
