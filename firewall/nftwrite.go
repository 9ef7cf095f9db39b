package firewall

import (
	"errors"
	"fmt"

	"github.com/parkwifi/parkportal/internal/nldump"
	"golang.org/x/sys/unix"
)

// setChange is one element of one of our sets, to add or remove.
type setChange struct {
	set string
	key []byte
}

// changeElements adds the elements (or, with del, removes them) in one
// nftables transaction: a netfilter batch, which the kernel applies
// whole or not at all, sent and answered on the calling goroutine (see
// nldump.Conn.Exec). Logins and logouts come here; rebuilds, which are
// rare and large, go through google/nftables.
func (b *backendNFTables) changeElements(del bool, changes ...setChange) error {
	typ, flags := uint16(unix.NFT_MSG_NEWSETELEM), uint16(unix.NLM_F_CREATE|unix.NLM_F_ACK)
	if del {
		typ, flags = unix.NFT_MSG_DELSETELEM, unix.NLM_F_ACK
	}
	// struct nfgenmsg of the batch's ends: AF_UNSPEC, version 0, and the
	// subsystem the batch is for, big-endian.
	batch := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	reqs := make([]nldump.Request, 0, len(changes)+2)
	reqs = append(reqs, nldump.Request{Type: unix.NFNL_MSG_BATCH_BEGIN, Payload: batch})
	for _, c := range changes {
		reqs = append(reqs, nldump.Request{
			Type:    unix.NFNL_SUBSYS_NFTABLES<<8 | typ,
			Flags:   flags,
			Payload: elementMsg(b.table.Name, c.set, c.key),
		})
	}
	reqs = append(reqs, nldump.Request{Type: unix.NFNL_MSG_BATCH_END, Payload: batch})
	return b.elems.Exec(reqs)
}

// elementMsg is the payload of an NFT_MSG_NEWSETELEM or
// NFT_MSG_DELSETELEM for one element of set in our table (inet).
func elementMsg(table, set string, key []byte) []byte {
	nested := func(typ uint16, data []byte) []byte {
		return nldump.AppendAttr(nil, typ|unix.NLA_F_NESTED, data)
	}
	m := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0} // struct nfgenmsg
	m = nldump.AppendAttr(m, unix.NFTA_SET_ELEM_LIST_TABLE, append([]byte(table), 0))
	m = nldump.AppendAttr(m, unix.NFTA_SET_ELEM_LIST_SET, append([]byte(set), 0))
	elem := nested(unix.NFTA_SET_ELEM_KEY, nldump.AppendAttr(nil, unix.NFTA_DATA_VALUE, key))
	return append(m, nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, nested(unix.NFTA_LIST_ELEM, elem))...)
}

// clientChanges are c's elements: its pair in the allowlist and its
// address in the two counter sets.
func clientChanges(c Client) []setChange {
	return []setChange{{nftAllowSet, pairKey(c)}, {nftUpSet, addrKey(c.IP)}, {nftDownSet, addrKey(c.IP)}}
}

// add lets c out: its pair and its counters, in one transaction.
func (b *backendNFTables) add(c Client) error {
	b.wrMu.Lock()
	defer b.wrMu.Unlock()
	if err := b.changeElements(false, clientChanges(c)...); err != nil {
		return fmt.Errorf("adding %s %s to allowlist: %w", c.MAC, c.IP, err)
	}
	return nil
}

// del takes c out, in one transaction; one that fails because a part was
// already gone is redone part by part.
func (b *backendNFTables) del(c Client) error {
	b.wrMu.Lock()
	defer b.wrMu.Unlock()
	parts := clientChanges(c)
	err := b.changeElements(true, parts...)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		if err != nil {
			return fmt.Errorf("removing %s %s from allowlist: %w", c.MAC, c.IP, err)
		}
		return nil
	}
	var errs []error
	for _, p := range parts {
		if err := b.changeElements(true, p); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing %s %s from set %s: %w", c.MAC, c.IP, p.set, err))
		}
	}
	return errors.Join(errs...)
}
