package firewall

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/parkwifi/parkportal/internal/nldump"
	"golang.org/x/sys/unix"
)

// nftaSetElemExpressions is NFTA_SET_ELEM_EXPRESSIONS, the list form the
// kernel uses for an element with more than one expression (x/sys/unix
// does not define it).
const nftaSetElemExpressions = 11

// nftCounter is an element's counter, when its set counts.
type nftCounter struct {
	packets, bytes uint64
	ok             bool
}

// list returns the allowlist, with each pair's counters if counted.
// Upload and download are both counted in our forward chains, on IP
// packets.
//
// The sets are read with nldump rather than google/nftables, whose
// decoder allocated some 25 MB per read at 5,000 visitors (see nldump);
// the resync and the sweep read them every few seconds.
// A change between the reads interrupts one: all are read again.
func (b *backendNFTables) list(counted bool) ([]entry, error) {
	if !counted {
		b.pairsMu.Lock()
		defer b.pairsMu.Unlock()
	}
	return nldump.Retry(func() ([]entry, error) { return b.readAllowlist(counted) })
}

// readAllowlist reads the allowlist's pairs, and their counters if
// counted. Without counters it fills the slices the last such read left
// (b.pairs, b.pairMACs; call with pairsMu held): at 5,000 visitors they
// were half a megabyte of garbage every resync.
func (b *backendNFTables) readAllowlist(counted bool) ([]entry, error) {
	// Sized from the last read, and the MACs in one array: a read at
	// 5,000 visitors made 5,000 small allocations and grew its slice a
	// dozen times, every resync.
	hint := int(b.listed.Load())
	var out []entry
	var macs []byte
	if !counted && cap(b.pairs) >= hint {
		out, macs = b.pairs[:0], b.pairMACs[:0]
	} else {
		out, macs = make([]entry, 0, hint), make([]byte, 0, 6*hint)
	}
	if !counted {
		defer func() { b.pairs, b.pairMACs = out[:0], macs[:0] }()
	}
	err := b.setElements(nftAllowSet, func(key []byte, _ nftCounter) {
		if len(key) < 10 {
			return
		}
		// ipv4_addr . ether_addr: 4 bytes, then 6 padded to 8.
		macs = append(macs, key[4:10]...)
		out = append(out, entry{Client: Client{
			IP:  netip.AddrFrom4([4]byte(key[:4])),
			MAC: net.HardwareAddr(macs[len(macs)-6 : len(macs) : len(macs)]),
		}})
	})
	if err != nil {
		return nil, err
	}
	b.listed.Store(int64(len(out)))
	if !counted {
		return out, nil
	}
	counters := func(set string) (map[netip.Addr]nftCounter, error) {
		m := make(map[netip.Addr]nftCounter, len(out))
		err := b.setElements(set, func(key []byte, c nftCounter) {
			if len(key) == 4 && c.ok {
				m[netip.AddrFrom4([4]byte(key))] = c
			}
		})
		return m, err
	}
	up, err := counters(nftUpSet)
	if err != nil {
		return nil, err
	}
	down, err := counters(nftDownSet)
	if err != nil {
		return nil, err
	}
	for i := range out {
		e := &out[i]
		c, d := up[e.IP], down[e.IP]
		e.Packets, e.Bytes = c.packets, c.bytes
		e.PacketsDown, e.BytesDown = d.packets, d.bytes
	}
	return out, nil
}

// setElements calls each with the key and counter of every element of
// our table's set name. The key is valid only during the call.
func (b *backendNFTables) setElements(name string, each func(key []byte, c nftCounter)) error {
	req := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0} // struct nfgenmsg
	req = nldump.AppendAttr(req, unix.NFTA_SET_ELEM_LIST_TABLE, append([]byte(b.table.Name), 0))
	req = nldump.AppendAttr(req, unix.NFTA_SET_ELEM_LIST_SET, append([]byte(name), 0))
	typ := uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM)
	err := b.dump.Dump(typ, req, func(_ uint16, msg []byte) error {
		return parseSetElems(msg, each)
	})
	if err != nil {
		return fmt.Errorf("listing nftables set %s: %w", name, err)
	}
	return nil
}

// parseSetElems reads one NFT_MSG_NEWSETELEM message of a dump: a
// struct nfgenmsg, then the table, the set and the list of elements.
func parseSetElems(msg []byte, each func(key []byte, c nftCounter)) error {
	if len(msg) < 4 {
		return fmt.Errorf("set elements message of %d bytes", len(msg))
	}
	a := nldump.NewAttrs(msg[4:])
	for a.Next() {
		if a.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		list := nldump.NewAttrs(a.Data())
		for list.Next() {
			if list.Type() != unix.NFTA_LIST_ELEM {
				continue
			}
			key, c, err := parseSetElem(list.Data())
			if err != nil {
				return err
			}
			if key != nil {
				each(key, c)
			}
		}
		if err := list.Err(); err != nil {
			return err
		}
	}
	return a.Err()
}

// parseSetElem reads one element: its key (NFTA_SET_ELEM_KEY holding an
// NFTA_DATA_VALUE) and its counter, which the kernel sends as the
// element's one expression (NFTA_SET_ELEM_EXPR) or, beside others, in
// NFTA_SET_ELEM_EXPRESSIONS.
func parseSetElem(b []byte) (key []byte, c nftCounter, err error) {
	a := nldump.NewAttrs(b)
	for a.Next() {
		switch a.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			v := nldump.NewAttrs(a.Data())
			for v.Next() {
				if v.Type() == unix.NFTA_DATA_VALUE {
					key = v.Data()
				}
			}
			if err := v.Err(); err != nil {
				return nil, c, err
			}
		case unix.NFTA_SET_ELEM_EXPR:
			if err := parseCounterExpr(a.Data(), &c); err != nil {
				return nil, c, err
			}
		case nftaSetElemExpressions:
			exprs := nldump.NewAttrs(a.Data())
			for exprs.Next() {
				if exprs.Type() != unix.NFTA_LIST_ELEM {
					continue
				}
				if err := parseCounterExpr(exprs.Data(), &c); err != nil {
					return nil, c, err
				}
			}
			if err := exprs.Err(); err != nil {
				return nil, c, err
			}
		}
	}
	return key, c, a.Err()
}

// parseCounterExpr fills c from an expression (NFTA_EXPR_NAME and
// NFTA_EXPR_DATA) when it is a counter; other expressions are skipped.
func parseCounterExpr(b []byte, c *nftCounter) error {
	var name, data []byte
	a := nldump.NewAttrs(b)
	for a.Next() {
		switch a.Type() {
		case unix.NFTA_EXPR_NAME:
			name = bytes.TrimRight(a.Data(), "\x00")
		case unix.NFTA_EXPR_DATA:
			data = a.Data()
		}
	}
	if err := a.Err(); err != nil || string(name) != "counter" {
		return err
	}
	d := nldump.NewAttrs(data)
	for d.Next() {
		if len(d.Data()) != 8 {
			continue
		}
		switch d.Type() {
		case unix.NFTA_COUNTER_BYTES:
			c.bytes, c.ok = binary.BigEndian.Uint64(d.Data()), true
		case unix.NFTA_COUNTER_PACKETS:
			c.packets, c.ok = binary.BigEndian.Uint64(d.Data()), true
		}
	}
	return d.Err()
}
