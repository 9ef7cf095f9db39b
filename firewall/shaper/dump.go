package shaper

import (
	"encoding/binary"
	"fmt"

	"github.com/parkwifi/parkportal/internal/nldump"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// class is what a dump tells of an HTB class: enough to see whether a
// visitor's class is as we made it.
type class struct {
	parent     uint32
	rate, ceil uint64 // bytes/s, as netlink.HtbClass has them
}

// dumpOurQdisc dumps what request type reqType lists under our HTB
// qdisc on link (a struct tcmsg naming it as parent, with tcm_info
// info), calling each with every reply of type replyType.
func dumpOurQdisc(c *nldump.Conn, reqType, replyType uint16, link int, info uint32, each func(msg []byte) error) error {
	var req [nl.SizeofTcMsg]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[4:8], uint32(link))
	ne.PutUint32(req[12:16], netlink.MakeHandle(qdiscMajor, 0))
	ne.PutUint32(req[16:20], info)
	return c.Dump(reqType, req[:], func(typ uint16, msg []byte) error {
		if typ != replyType {
			return nil
		}
		return each(msg)
	})
}

// dumpHTB calls each with the handle and parameters of every class of
// our HTB qdisc on link, read with nldump: netlink's ClassList decodes every class's
// statistics into structs of their own, some 30 MB per resync at 5,000
// visitors (two classes each), and a resync runs every 30 seconds.
func dumpHTB(c *nldump.Conn, link int, each func(handle uint32, c class)) error {
	// Naming our qdisc as parent spares the kernel the visitors' leaf
	// queues (each a TBF with a class of its own): half the dump.
	return dumpOurQdisc(c, unix.RTM_GETTCLASS, unix.RTM_NEWTCLASS, link, 0, func(msg []byte) error {
		handle, cl, isHTB, err := parseClass(msg)
		if err != nil {
			return fmt.Errorf("reading class dump: %w", err)
		}
		if isHTB {
			each(handle, cl)
		}
		return nil
	})
}

// parseClass reads one RTM_NEWTCLASS message: a struct tcmsg, then the
// kind and, for HTB, TCA_OPTIONS holding struct tc_htb_opt and the
// 64-bit rates the kernel adds for rates of 2^32 bytes/s and more.
func parseClass(msg []byte) (handle uint32, c class, isHTB bool, err error) {
	if len(msg) < nl.SizeofTcMsg {
		return 0, c, false, fmt.Errorf("class message of %d bytes", len(msg))
	}
	ne := binary.NativeEndian
	handle, c.parent = ne.Uint32(msg[8:12]), ne.Uint32(msg[12:16])
	var opts []byte
	a := nldump.NewAttrs(msg[nl.SizeofTcMsg:])
	for a.Next() {
		switch a.Type() {
		case unix.TCA_KIND:
			isHTB = string(a.Data()) == "htb\x00"
		case unix.TCA_OPTIONS:
			opts = a.Data()
		}
	}
	if err := a.Err(); err != nil || !isHTB {
		return handle, c, false, err
	}
	var rate64, ceil64 uint64
	o := nldump.NewAttrs(opts)
	for o.Next() {
		d := o.Data()
		switch o.Type() {
		case nl.TCA_HTB_PARMS:
			// struct tc_htb_opt begins with two struct tc_ratespec of
			// 12 bytes, each ending in a 32-bit rate.
			if len(d) < 24 {
				return handle, c, false, fmt.Errorf("HTB parameters of %d bytes", len(d))
			}
			c.rate, c.ceil = uint64(ne.Uint32(d[8:12])), uint64(ne.Uint32(d[20:24]))
		case nl.TCA_HTB_RATE64:
			if len(d) == 8 {
				rate64 = ne.Uint64(d)
			}
		case nl.TCA_HTB_CEIL64:
			if len(d) == 8 {
				ceil64 = ne.Uint64(d)
			}
		}
	}
	if rate64 != 0 {
		c.rate = rate64
	}
	if ceil64 != 0 {
		c.ceil = ceil64
	}
	return handle, c, true, o.Err()
}

// dumpU32 calls each with the handle of every u32 filter and hash table
// of our priority and protocol on link's HTB qdisc, read with nldump:
// what RefreshFilters looks for. The kernel lists a hash table under its
// own handle (htid:0:0) and each filter in it under the filter's.
func dumpU32(c *nldump.Conn, link int, each func(handle uint32)) error {
	// tcm_info asks only for our priority and protocol, as
	// netlink.FilterAdd sets them (the protocol in network order).
	info := netlink.MakeHandle(filterPrio, nl.Swap16(unix.ETH_P_IP))
	return dumpOurQdisc(c, unix.RTM_GETTFILTER, unix.RTM_NEWTFILTER, link, info, func(msg []byte) error {
		handle, msgInfo, isU32, err := parseFilter(msg)
		if err != nil {
			return fmt.Errorf("reading filter dump: %w", err)
		}
		// The kernel also lists each filter instance itself, with
		// handle 0; and an older kernel might not filter by tcm_info.
		if isU32 && handle != 0 && msgInfo == info {
			each(handle)
		}
		return nil
	})
}

// parseFilter reads one RTM_NEWTFILTER message: a struct tcmsg, then the
// classifier's kind.
func parseFilter(msg []byte) (handle, info uint32, isU32 bool, err error) {
	if len(msg) < nl.SizeofTcMsg {
		return 0, 0, false, fmt.Errorf("filter message of %d bytes", len(msg))
	}
	ne := binary.NativeEndian
	handle, info = ne.Uint32(msg[8:12]), ne.Uint32(msg[16:20])
	a := nldump.NewAttrs(msg[nl.SizeofTcMsg:])
	for a.Next() {
		if a.Type() == unix.TCA_KIND {
			isU32 = string(a.Data()) == "u32\x00"
		}
	}
	return handle, info, isU32, a.Err()
}
