package devwatch

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// filterProgram is the classic BPF program for
//
//	arp or (ip and udp and (port 67 or port 68))
//
// on Ethernet: the IPv4 half of tcpdump's
// `tcpdump -dd 'arp or (udp and (port 67 or port 68))'` (DHCPv4 never runs
// over IPv6, so the ip6 branch is left out). It runs in the kernel, so the
// daemon is not woken for the rest of the LAN's traffic. Non-first IPv4
// fragments are dropped because they carry no UDP header. Accepted frames are
// cut at snapLen bytes. filter_test.go checks the assembled form against
// tcpdump's and runs it in a BPF VM over sample frames.
var filterProgram = []bpf.Instruction{
	/* 0 */ bpf.LoadAbsolute{Off: 12, Size: 2}, // EtherType
	/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0806, SkipTrue: 12}, // ARP -> accept
	/* 2 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 12}, // not IPv4 -> drop
	/* 3 */ bpf.LoadAbsolute{Off: 23, Size: 1}, // IPv4 protocol
	/* 4 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipFalse: 10}, // not UDP -> drop
	/* 5 */ bpf.LoadAbsolute{Off: 20, Size: 2}, // flags + fragment offset
	/* 6 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 8}, // non-first fragment -> drop
	/* 7 */ bpf.LoadMemShift{Off: 14}, // X = IPv4 header length
	/* 8 */ bpf.LoadIndirect{Off: 14, Size: 2}, // UDP source port
	/* 9 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: serverPort, SkipTrue: 4},
	/* 10 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: clientPort, SkipTrue: 3},
	/* 11 */ bpf.LoadIndirect{Off: 16, Size: 2}, // UDP destination port
	/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: serverPort, SkipTrue: 1},
	/* 13 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: clientPort, SkipFalse: 1},
	/* 14 */ bpf.RetConstant{Val: snapLen}, // accept
	/* 15 */ bpf.RetConstant{Val: 0}, // drop
}

// snapLen is how much of an accepted frame the kernel hands over and the
// size of the capture buffer: a DHCP message is at most a few hundred bytes
// larger than its 576-byte minimum, so a frame that does not fit is hostile
// and is dropped as malformed.
const snapLen = 4096

// filter returns the assembled filter, for SO_ATTACH_FILTER.
func filter() ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble(filterProgram)
	if err != nil {
		return nil, fmt.Errorf("assembling the arp/dhcp filter: %w", err)
	}
	return raw, nil
}
