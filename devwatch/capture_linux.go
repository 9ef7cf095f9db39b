//go:build linux

package devwatch

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"time"

	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// New opens a capture of DHCP and ARP on iface (the LAN bridge, br-lan on
// OpenWrt). It needs CAP_NET_RAW. The socket belongs to the network
// namespace of the calling thread. A nil logger means slog.Default().
func New(iface string, logger *slog.Logger) (*Watcher, error) {
	return newWatcher(iface, logger, func() (capture, error) { return openAFPacket(iface) })
}

// afPacket is a capture on a pcapgo.EthernetHandle: a pure-Go AF_PACKET
// socket (the afpacket and pcap packages would need cgo).
type afPacket struct {
	iface   string
	h       *pcapgo.EthernetHandle
	ifindex int
}

// openAFPacket opens the socket, attaches the BPF filter and sets a receive
// timeout. The timeout is how Run stays stoppable: EthernetHandle blocks in
// recvmsg(2) and its Close does not wake it (closing the fd from another
// goroutine would also race with the reader and could hand it a reused fd
// number). pcapgo does not expose the fd, so it is read from the handle's
// unexported field; openAFPacket fails loudly if a gopacket upgrade renames
// it, rather than giving a Run that cannot stop.
func openAFPacket(iface string) (_ *afPacket, err error) {
	h, err := pcapgo.NewEthernetHandle(iface)
	if err != nil {
		return nil, fmt.Errorf("opening AF_PACKET capture on %q: %w", iface, err)
	}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	prog, err := filter()
	if err != nil {
		return nil, err
	}
	if err := h.SetBPF(prog); err != nil {
		return nil, fmt.Errorf("attaching the arp/dhcp BPF filter on %q: %w", iface, err)
	}
	if err := h.SetCaptureLength(snapLen); err != nil {
		return nil, fmt.Errorf("setting the capture length on %q: %w", iface, err)
	}
	fd, err := handleFD(h)
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval(readTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("setting a receive timeout on the capture socket for %q: %w", iface, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("reading the capture socket's interface for %q: %w", iface, err)
	}
	ll, ok := sa.(*unix.SockaddrLinklayer)
	if !ok {
		return nil, fmt.Errorf("capture socket for %q is not bound to a link-layer address (%T)", iface, sa)
	}
	return &afPacket{iface: iface, h: h, ifindex: ll.Ifindex}, nil
}

// handleFD reads the socket fd out of pcapgo.EthernetHandle (v1.1.19 keeps
// it in an unexported int field "fd" and offers no accessor).
func handleFD(h *pcapgo.EthernetHandle) (int, error) {
	f := reflect.ValueOf(h).Elem().FieldByName("fd")
	if !f.IsValid() || f.Kind() != reflect.Int {
		return -1, errors.New("pcapgo.EthernetHandle has no int field fd: update devwatch.handleFD for this gopacket version")
	}
	fd := int(f.Int())
	if fd < 0 {
		return -1, errors.New("pcapgo.EthernetHandle is closed")
	}
	return fd, nil
}

func (a *afPacket) read() ([]byte, time.Time, bool, error) {
	data, ci, err := a.h.ZeroCopyReadPacketData()
	if err != nil {
		// pcapgo formats the errno with %s, so it can only be matched by
		// its text. EAGAIN is SO_RCVTIMEO expiring; EINTR happens when a
		// signal (Go's preemption signal included) arrives during a read
		// that has a timeout, which SA_RESTART does not restart.
		msg := err.Error()
		if strings.HasSuffix(msg, unix.EAGAIN.Error()) || strings.HasSuffix(msg, unix.EINTR.Error()) {
			return nil, time.Time{}, false, errTimeout
		}
		return nil, time.Time{}, false, fmt.Errorf("reading from %q: %w", a.iface, err)
	}
	return data, ci.Timestamp, ci.Length > ci.CaptureLength, nil
}

func (a *afPacket) stale() bool {
	ifi, err := net.InterfaceByName(a.iface)
	return err != nil || ifi.Index != a.ifindex
}

func (a *afPacket) gateway() net.HardwareAddr { return clone(a.h.LocalAddr()) }

func (a *afPacket) close() { a.h.Close() }
