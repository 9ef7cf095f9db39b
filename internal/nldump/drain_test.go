package nldump

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/parkwifi/parkportal/internal/netnstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestDrainAnnouncements: a socket that joined RTNLGRP_LINK reads the
// kernel's announcements of links made and deleted after it joined, in
// order, without waiting for more; with nothing queued Drain returns at
// once. A buffer too small for what was announced reports ErrLost, after
// which the socket, given room, reads new announcements again.
func TestDrainAnnouncements(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes links in a network namespace of its own")
	}
	netnstest.Enter(t, "ppnd")
	c, err := Dial(unix.NETLINK_ROUTE, LargeBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Join(unix.RTNLGRP_LINK, 1<<20); err != nil {
		t.Fatal(err)
	}
	var got []string
	drain := func(c *Conn) error {
		got = got[:0]
		return c.Drain(func(typ uint16, msg []byte) {
			switch typ {
			case unix.RTM_NEWLINK:
				got = append(got, "new "+linkName(msg))
			case unix.RTM_DELLINK:
				got = append(got, "del "+linkName(msg))
			}
		})
	}
	if err := drain(c); err != nil || len(got) != 0 {
		t.Fatalf("before any change: %v, %v; want nothing", got, err)
	}
	d := veth("ppd0")
	if err := netlink.LinkAdd(d); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(d); err != nil {
		t.Fatal(err)
	}
	if err := drain(c); err != nil {
		t.Fatal(err)
	}
	if i, j := slices.Index(got, "new ppd0"), slices.Index(got, "del ppd0"); i < 0 || j < i {
		t.Errorf("announcements %v: want new ppd0, then del ppd0", got)
	}
	if err := drain(c); err != nil || len(got) != 0 {
		t.Errorf("drained twice: %v, %v; want nothing the second time", got, err)
	}

	small, err := Dial(unix.NETLINK_ROUTE, LargeBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if err := small.Join(unix.RTNLGRP_LINK, 1); err != nil { // the kernel's minimum, a few KiB
		t.Fatal(err)
	}
	for i := range 50 {
		d := veth(fmt.Sprintf("ppd%d", i))
		if err := netlink.LinkAdd(d); err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkDel(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := drain(small); !errors.Is(err, ErrLost) {
		t.Fatalf("200 announcements into a minimal buffer: Drain = %v, want ErrLost", err)
	}
	if err := drain(small); err != nil || len(got) != 0 {
		t.Errorf("drained again after the loss: %v, %v; want nothing, no error", got, err)
	}
	if err := small.Join(unix.RTNLGRP_LINK, 1<<20); err != nil { // room now
		t.Fatal(err)
	}
	if err := netlink.LinkAdd(veth("ppd0")); err != nil {
		t.Fatal(err)
	}
	if err := drain(small); err != nil || !slices.Contains(got, "new ppd0") {
		t.Errorf("after the loss: %v, %v; want new ppd0", got, err)
	}
}

// veth is a veth pair to make (the test kernel has no dummy links).
func veth(name string) *netlink.Veth {
	return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
}

// linkName is the IFLA_IFNAME of a link message.
func linkName(msg []byte) string {
	if len(msg) < unix.SizeofIfInfomsg {
		return ""
	}
	a := NewAttrs(msg[unix.SizeofIfInfomsg:])
	for a.Next() {
		if a.Type() == unix.IFLA_IFNAME {
			return string(bytes.TrimRight(a.Data(), "\x00"))
		}
	}
	return ""
}
