package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// neighGetter asks the kernel for one neighbour entry (RTM_GETNEIGH for
// one address, Linux 4.20+) over a socket it keeps, into a buffer it
// reuses. The portal asks on every page load, so this is the hot path
// under a crowd: the netlink library opens a socket and allocates a
// 64 KiB receive buffer per request, which at thousands of page loads a
// second becomes most of the daemon's garbage.
type neighGetter struct {
	mu  sync.Mutex
	fd  int // -1 until opened
	seq uint32
	buf []byte
}

// neighEntry is what a lookup returns.
type neighEntry struct {
	state uint16
	mac   net.HardwareAddr
}

var errNeighGetUnsupported = errors.New("RTM_GETNEIGH for one address not supported")

// get returns ip's entry on interface ifindex; found is false when the
// kernel has none.
func (g *neighGetter) get(ifindex int, ip netip.Addr) (e neighEntry, found bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fd <= 0 {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return e, false, fmt.Errorf("opening netlink socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			unix.Close(fd)
			return e, false, fmt.Errorf("binding netlink socket: %w", err)
		}
		// A stuck kernel answer must not hang a page load.
		tv := unix.Timeval{Sec: 1}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		g.fd, g.buf = fd, make([]byte, 8192)
	}
	g.seq++
	a := ip.As4()
	// nlmsghdr (16) + ndmsg (12) + NDA_DST attribute (4 + 4).
	req := make([]byte, 36)
	binary.NativeEndian.PutUint32(req[0:], 36)
	binary.NativeEndian.PutUint16(req[4:], unix.RTM_GETNEIGH)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], g.seq)
	req[16] = unix.AF_INET
	binary.NativeEndian.PutUint32(req[20:], uint32(ifindex))
	binary.NativeEndian.PutUint16(req[28:], 8)
	binary.NativeEndian.PutUint16(req[30:], unix.NDA_DST)
	copy(req[32:], a[:])
	if err := unix.Sendto(g.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		g.reset()
		return e, false, fmt.Errorf("asking for neighbour %s: %w", ip, err)
	}
	for attempt := 0; attempt < 4; attempt++ {
		n, _, err := unix.Recvfrom(g.fd, g.buf, 0)
		if err != nil {
			g.reset()
			return e, false, fmt.Errorf("reading neighbour %s: %w", ip, err)
		}
		msgs, err := syscall.ParseNetlinkMessage(g.buf[:n])
		if err != nil {
			g.reset()
			return e, false, fmt.Errorf("parsing neighbour %s: %w", ip, err)
		}
		for _, m := range msgs {
			if m.Header.Seq != g.seq {
				continue // a late answer to an earlier, timed-out question
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return e, false, fmt.Errorf("short netlink error for %s", ip)
				}
				switch errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data))); errno {
				case 0, unix.ENOENT:
					return e, false, nil
				case unix.EINVAL, unix.EOPNOTSUPP:
					return e, false, errNeighGetUnsupported
				default:
					return e, false, fmt.Errorf("neighbour %s: %w", ip, errno)
				}
			case unix.RTM_NEWNEIGH:
				return parseNeigh(m.Data)
			}
		}
	}
	return e, false, fmt.Errorf("neighbour %s: no answer", ip)
}

func (g *neighGetter) reset() {
	if g.fd > 0 {
		unix.Close(g.fd)
	}
	g.fd = -1
}

// parseNeigh reads an ndmsg and its attributes.
func parseNeigh(b []byte) (neighEntry, bool, error) {
	var e neighEntry
	if len(b) < 12 {
		return e, false, errors.New("short neighbour message")
	}
	e.state = binary.NativeEndian.Uint16(b[8:])
	for rest := b[12:]; len(rest) >= 4; {
		l := int(binary.NativeEndian.Uint16(rest[0:]))
		typ := binary.NativeEndian.Uint16(rest[2:])
		if l < 4 || l > len(rest) {
			return e, false, errors.New("malformed neighbour attribute")
		}
		if typ == unix.NDA_LLADDR && l-4 == 6 {
			e.mac = append(net.HardwareAddr(nil), rest[4:l]...)
		}
		al := (l + 3) &^ 3
		if al > len(rest) {
			break
		}
		rest = rest[al:]
	}
	return e, true, nil
}
