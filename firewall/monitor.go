package firewall

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Repair on events: the kernel announces every committed nf_tables change
// (nft, iptables-nft, fw4) to the NFNLGRP_NFTABLES multicast group. Watch
// listens there and asks for a repair as soon as a change by another
// process touches what our gate is made of, so a flush is undone within a
// second instead of at the next periodic resync. Each transaction ends in
// a generation message naming the thread that committed it (its TID and
// command name); ours (every login adds to our sets) are ignored. Changes
// the iptables backend makes run in a forked iptables and come back once,
// to an Ensure that finds nothing to do.

// Watch calls onDrift (from a goroutine of its own, at most once per
// settle period) after another process changed the nf_tables tables our
// gate lives in, until ctx ends. It opens its socket in the calling
// thread's network namespace and returns at once; the error says the
// kernel has no nf_tables notifications (a legacy-iptables host: there
// the periodic resync is the only repair).
func (f *Firewall) Watch(ctx context.Context, onDrift func()) error {
	relevant := f.relevantTables()
	sock, err := openNFTMonitor()
	if err != nil {
		return err
	}
	drift := make(chan struct{}, 1)
	go func() {
		defer unix.Close(sock)
		readNFTEvents(ctx, sock, isOurs, relevant, func() {
			select {
			case drift <- struct{}{}:
			default:
			}
		})
	}()
	go debounce(ctx, drift, onDrift)
	return nil
}

// debounce calls f once per burst of signals on c: a flush is often
// several commands (iptables -F, then -X, then fw4 reloading), and one
// repair after the last does what one after each would.
func debounce(ctx context.Context, c <-chan struct{}, f func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c:
		}
		t := time.NewTimer(settle)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		select {
		case <-c:
		default:
		}
		f()
	}
}

// settle is how long Watch waits after a change before repairing.
const settle = 100 * time.Millisecond

// tableKey names an nf_tables table: its family (NFPROTO_*) and name.
type tableKey struct {
	family uint8
	name   string
}

// relevantTables are the tables whose changes may have touched our gate.
func (f *Firewall) relevantTables() map[tableKey]bool {
	switch f.be.(type) {
	case *backendNFTables:
		return map[tableKey]bool{{unix.NFPROTO_INET, f.cfg.Table}: true}
	default:
		// iptables-nft keeps iptables' tables as nf_tables tables of the
		// same names; the guards live in security (or mangle), and a
		// flush of that table alone must bring a repair too.
		m := make(map[tableKey]bool)
		for _, fam := range []uint8{unix.NFPROTO_IPV4, unix.NFPROTO_IPV6} {
			for _, t := range []string{"filter", "nat", "mangle", "security"} {
				m[tableKey{fam, t}] = true
			}
		}
		return m
	}
}

func openNFTMonitor() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return -1, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("binding the netfilter netlink socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, unix.NFNLGRP_NFTABLES); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("joining the nf_tables notification group: %w", err)
	}
	// A large buffer: a ruleset reload announces every rule.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	tv := unix.NsecToTimeval((500 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("setting a receive timeout: %w", err)
	}
	return fd, nil
}

// readNFTEvents reads notifications until ctx ends, calling drift after
// each transaction by another process that touched a relevant table, and
// after a lost notification (ENOBUFS: the socket overflowed, so anything
// may have changed).
func readNFTEvents(ctx context.Context, fd int, ours func(pid uint32, comm string) bool, relevant map[tableKey]bool, drift func()) {
	buf := make([]byte, 1<<16)
	touched := false // the transaction being announced touched a relevant table
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			touched = false
			drift()
			continue
		case err != nil:
			// Unexpected: say so by repairing, then keep listening.
			drift()
			time.Sleep(time.Second)
			continue
		}
		for _, ev := range parseNFTEvents(buf[:n]) {
			switch {
			case ev.gen:
				if touched && !ours(ev.pid, ev.comm) {
					drift()
				}
				touched = false
			case relevant[ev.table]:
				touched = true
			}
		}
	}
}

// nftEvent is what readNFTEvents needs of one notification: the table an
// object message is about, or, for the generation message that ends a
// transaction, the PID that committed it.
type nftEvent struct {
	gen   bool
	pid   uint32 // the committing thread's TID
	comm  string // and its command name
	table tableKey
}

// ourComm is this process's command name, as the kernel reports it.
var ourComm = func() string {
	b, _ := os.ReadFile("/proc/self/comm")
	return strings.TrimSpace(string(b))
}()

// isOurs reports whether a transaction was committed by one of our own
// threads: the kernel names the thread by its TID, which is one of ours
// when /proc/self/task has it. In a PID namespace the TID is the host's,
// so the command name decides there.
func isOurs(pid uint32, comm string) bool {
	if _, err := os.Stat("/proc/self/task/" + strconv.FormatUint(uint64(pid), 10)); err == nil {
		return true
	}
	return comm != "" && comm == ourComm
}

// Attribute numbers shared by the nf_tables messages we read: the table
// name is attribute 1 of table, chain, rule, set and element messages
// (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, ...); the generation message's PID
// is NFTA_GEN_PROC_PID.
const (
	nftaTableName = 1
	nftaGenPID    = unix.NFTA_GEN_PROC_PID
	nftaGenComm   = unix.NFTA_GEN_PROC_NAME
)

// parseNFTEvents decodes the netlink messages in b. It never fails:
// malformed parts are skipped, since the messages come from the kernel.
func parseNFTEvents(b []byte) []nftEvent {
	var out []nftEvent
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		msg := b[unix.NLMSG_HDRLEN:l]
		if adv := nlmAlign(l); adv < len(b) {
			b = b[adv:]
		} else {
			b = nil
		}
		if typ>>8 != unix.NFNL_SUBSYS_NFTABLES || len(msg) < 4 {
			continue
		}
		family := msg[0] // struct nfgenmsg: family, version, res_id
		attrs := msg[4:]
		switch sub := typ & 0xff; sub {
		case unix.NFT_MSG_NEWGEN:
			ev := nftEvent{gen: true}
			if v := nlAttr(attrs, nftaGenPID); len(v) == 4 {
				ev.pid = binary.BigEndian.Uint32(v)
			}
			ev.comm = cString(nlAttr(attrs, nftaGenComm))
			out = append(out, ev)
		case unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN,
			unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELRULE, unix.NFT_MSG_NEWSET, unix.NFT_MSG_DELSET,
			unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM:
			out = append(out, nftEvent{table: tableKey{family, cString(nlAttr(attrs, nftaTableName))}})
		}
	}
	return out
}

// nlAttr returns the payload of the first attribute of type t.
func nlAttr(b []byte, t uint16) []byte {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			return nil
		}
		if typ == t {
			return b[4:l]
		}
		if adv := nlaAlign(l); adv < len(b) {
			b = b[adv:]
		} else {
			return nil
		}
	}
	return nil
}

func nlmAlign(l int) int { return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
func nlaAlign(l int) int { return (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1) }

// cString is a NUL-terminated string attribute's text.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
