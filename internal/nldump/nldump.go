// Package nldump reads netlink dumps of thousands of entries without
// allocating per entry: each reply message's payload is handed to the
// caller as a slice of one receive buffer, and attributes are walked in
// place.
//
// A resync at 5,000 visitors dumps some 15,000 set elements and 10,000
// traffic classes. The general-purpose decoders (google/nftables,
// vishvananda/netlink) build a struct, a slice of attributes and often a
// map for each, about 60 MB per resync on amd64: enough to keep the
// garbage collector running, and its pauses and assists fell on the
// logins that ran meanwhile. With this package the same dumps allocate
// one receive buffer each, and what the callers keep.
//
// Conn also sends the small requests of a login's hot path (Exec): the
// allowlist's three element changes. google/nftables's socket library
// starts and waits for a goroutine per send and per receive, which
// under load waits for a processor of its own; Exec is two system
// calls on the calling goroutine.
package nldump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrInterrupted reports a dump the kernel marked inconsistent
// (NLM_F_DUMP_INTR): the table changed while it was read, so entries may
// be missing or doubled. Dump it again.
var ErrInterrupted = errors.New("netlink dump interrupted by a concurrent change")

// Retries bounds the reads Retry makes.
const Retries = 5

// Retry calls read until it does not fail with ErrInterrupted, at most
// Retries times: a dump that changes interrupted is read again whole, as
// its result may be partial.
func Retry[T any](read func() (T, error)) (T, error) {
	for i := 1; ; i++ {
		v, err := read()
		if errors.Is(err, ErrInterrupted) && i < Retries {
			continue
		}
		return v, err
	}
}

// Batch sizes for Dial. The kernel fills each batch of a dump while the
// reader waits in recvfrom, up to the reader's buffer size (at most 32
// KiB), holding whatever lock the dump needs: RTNL for traffic control,
// which every change to a qdisc, class or filter also takes.
const (
	// LargeBatch suits dumps under no lock (nftables sets are read
	// under RCU): fewest system calls.
	LargeBatch = 32 << 10
	// SmallBatch bounds a change's wait behind one batch of a dump
	// under RTNL to about 0.1 ms at 5,000 classes (0.25-0.65 ms with
	// LargeBatch), for some 40% more time in the whole dump.
	SmallBatch = 8 << 10
)

// recvTimeout bounds one wait for the kernel: a dump is answered at once,
// so a wait this long means the socket is stuck, not busy.
const recvTimeout = 10

// Conn is a netlink socket for dumps and small requests, one at a time.
type Conn struct {
	mu    sync.Mutex
	fd    int
	pid   uint32
	seq   uint32
	batch int
	// buf receives dumps and ack Exec's answers, both kept under mu: a
	// resync makes half a dozen dumps and each login an Exec, and a
	// buffer of up to 32 KiB each time was garbage.
	buf, ack []byte
}

// Dial opens a netlink socket of protocol proto (unix.NETLINK_ROUTE,
// unix.NETLINK_NETFILTER) in the calling thread's network namespace,
// reading dumps in batches of up to batch bytes (LargeBatch,
// SmallBatch). The kernel keeps using the largest buffer a socket ever
// read with, so a socket's batch size is fixed here.
func Dial(proto, batch int) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("opening netlink socket: %w", err)
	}
	c := &Conn{fd: fd, batch: batch}
	if err := c.setup(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

// DialAt is Dial in the network namespace ns. The socket stays in ns for
// its life, whichever thread later uses it.
func DialAt(proto, batch int, ns netns.NsHandle) (*Conn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("reading current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return nil, fmt.Errorf("entering network namespace: %w", err)
	}
	c, err := Dial(proto, batch)
	if serr := netns.Set(orig); serr != nil {
		// This thread is in the wrong namespace: keep it from the
		// runtime (it ends with this goroutine).
		runtime.LockOSThread()
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("returning to network namespace: %w", serr)
	}
	return c, err
}

func (c *Conn) setup() error {
	if err := unix.Bind(c.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("binding netlink socket: %w", err)
	}
	sa, err := unix.Getsockname(c.fd)
	if err != nil {
		return fmt.Errorf("reading netlink socket address: %w", err)
	}
	nl, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		return fmt.Errorf("netlink socket has address %T", sa)
	}
	c.pid = nl.Pid
	tv := unix.Timeval{Sec: recvTimeout}
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("setting netlink receive timeout: %w", err)
	}
	return nil
}

// Close closes the socket.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

// Dump sends a dump request of message type typ carrying payload (the
// family's header and any attributes) and calls each with the type and
// payload of every reply. The payload is valid only during the call.
//
// An error from each stops the calls but not the reading: the rest of
// the dump is drained, so the socket is ready for the next one. A dump
// the kernel marked inconsistent is read to its end and reported as
// ErrInterrupted.
func (c *Conn) Dump(typ uint16, payload []byte, each func(typ uint16, msg []byte) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return errors.New("netlink dump on a closed socket")
	}
	c.seq++
	seq := c.seq
	req := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(payload))
	req = append(req, payload...)
	putHeader(req, header{len: uint32(len(req)), typ: typ, flags: unix.NLM_F_REQUEST | unix.NLM_F_DUMP, seq: seq, pid: c.pid})
	if err := unix.Sendto(c.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending netlink dump request: %w", err)
	}
	if c.buf == nil {
		c.buf = make([]byte, c.batch)
	}
	buf := c.buf
	var cbErr error
	interrupted := false
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading netlink dump: %w", err)
		}
		if n > len(buf) {
			// The kernel sends at least a page: a batch size below
			// that is the caller's mistake.
			return fmt.Errorf("reading netlink dump: a %d-byte batch exceeds the %d-byte buffer", n, len(buf))
		}
		done, err := walkMessages(buf[:n], seq, c.pid, func(h header, msg []byte) error {
			if h.flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			if cbErr == nil {
				cbErr = each(h.typ, msg)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if done {
			break
		}
		// Let a goroutine waiting for a processor have this one. Dumps
		// run on a niced thread (lowprio), which the Go scheduler does
		// not know: a login back from a system call would otherwise
		// wait for the dump's time slice (up to 10 ms) to end.
		runtime.Gosched()
	}
	if cbErr != nil {
		return cbErr
	}
	if interrupted {
		return ErrInterrupted
	}
	return nil
}

// Request is one message of an Exec.
type Request struct {
	Type uint16
	// Flags besides NLM_F_REQUEST, which every request carries. Ask for
	// an answer with NLM_F_ACK.
	Flags   uint16
	Payload []byte
}

// Exec sends reqs in one datagram, as a netfilter batch needs, and waits
// for the kernel's answer to each request that asked for one
// (NLM_F_ACK). It returns the kernel's refusals, each wrapping its
// errno, joined; a refusal of a request that asked for no answer (a
// batch's header, say) ends the wait, since the kernel then answers no
// other.
func (c *Conn) Exec(reqs []Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return errors.New("netlink request on a closed socket")
	}
	first := c.seq + 1
	var out []byte
	wait := 0
	for _, r := range reqs {
		c.seq++
		start := len(out)
		out = append(out, make([]byte, unix.NLMSG_HDRLEN)...)
		out = append(out, r.Payload...)
		putHeader(out[start:], header{len: uint32(len(out) - start), typ: r.Type, flags: unix.NLM_F_REQUEST | r.Flags, seq: c.seq, pid: c.pid})
		for len(out)%unix.NLMSG_ALIGNTO != 0 {
			out = append(out, 0)
		}
		if r.Flags&unix.NLM_F_ACK != 0 {
			wait++
		}
	}
	if err := unix.Sendto(c.fd, out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending netlink request: %w", err)
	}
	var refusals []error
	if c.ack == nil {
		c.ack = make([]byte, 4096)
	}
	buf := c.ack
	for wait > 0 {
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return errors.Join(append(refusals, fmt.Errorf("reading netlink answer: %w", err))...)
		}
		// An answer carries the refused request, and the batch's answers
		// may share a datagram: one longer than the buffer was cut.
		n = min(n, len(buf))
		ended, err := walkAnswers(buf[:n], first, c.seq, c.pid, reqs, func(i int, errno unix.Errno) {
			if reqs[i].Flags&unix.NLM_F_ACK != 0 {
				wait--
			}
			if errno != 0 {
				refusals = append(refusals, fmt.Errorf("netlink request %d of %d: %w", i+1, len(reqs), errno))
			}
		})
		if err != nil {
			return errors.Join(append(refusals, err)...)
		}
		if ended {
			break
		}
	}
	return errors.Join(refusals...)
}

// walkAnswers calls fn with the index and errno of each answer
// (NLMSG_ERROR) in b to the requests numbered first..last of port pid,
// and reports whether one refused a request that asked for no answer.
// Messages for other requests (leftovers of an abandoned exchange) are
// skipped; an answer cut short by the buffer is read up to its errno.
func walkAnswers(b []byte, first, last, pid uint32, reqs []Request, fn func(i int, errno unix.Errno)) (ended bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		h := header{
			len: ne.Uint32(b[0:4]), typ: ne.Uint16(b[4:6]), flags: ne.Uint16(b[6:8]),
			seq: ne.Uint32(b[8:12]), pid: ne.Uint32(b[12:16]),
		}
		if h.len < unix.NLMSG_HDRLEN {
			return false, fmt.Errorf("reading netlink answer: message length %d", h.len)
		}
		msg := b[unix.NLMSG_HDRLEN:min(int(h.len), len(b))]
		b = b[min(align(int(h.len)), len(b)):]
		if h.typ != unix.NLMSG_ERROR || h.pid != pid || h.seq < first || h.seq > last || len(msg) < 4 {
			continue
		}
		i := int(h.seq - first)
		errno := unix.Errno(-int32(ne.Uint32(msg[0:4])))
		fn(i, errno)
		if errno != 0 && reqs[i].Flags&unix.NLM_F_ACK == 0 {
			ended = true
		}
	}
	return ended, nil
}

// header is a netlink message header (struct nlmsghdr).
type header struct {
	len        uint32
	typ, flags uint16
	seq, pid   uint32
}

func putHeader(b []byte, h header) {
	ne := binary.NativeEndian
	ne.PutUint32(b[0:4], h.len)
	ne.PutUint16(b[4:6], h.typ)
	ne.PutUint16(b[6:8], h.flags)
	ne.PutUint32(b[8:12], h.seq)
	ne.PutUint32(b[12:16], h.pid)
}

// walkMessages calls fn for each message of one received batch that
// answers request seq of port pid (others are leftovers of an earlier,
// abandoned dump), and reports whether the batch ended the dump. A
// kernel error ends it with that error.
func walkMessages(b []byte, seq, pid uint32, fn func(h header, msg []byte) error) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return false, fmt.Errorf("reading netlink dump: %d trailing bytes, shorter than a header", len(b))
		}
		h := header{
			len: ne.Uint32(b[0:4]), typ: ne.Uint16(b[4:6]), flags: ne.Uint16(b[6:8]),
			seq: ne.Uint32(b[8:12]), pid: ne.Uint32(b[12:16]),
		}
		if h.len < unix.NLMSG_HDRLEN || int(h.len) > len(b) {
			return false, fmt.Errorf("reading netlink dump: message length %d in a %d-byte batch", h.len, len(b))
		}
		msg := b[unix.NLMSG_HDRLEN:h.len]
		b = b[min(align(int(h.len)), len(b)):]
		if h.seq != seq || h.pid != pid {
			continue
		}
		switch h.typ {
		case unix.NLMSG_NOOP:
			continue
		case unix.NLMSG_DONE, unix.NLMSG_ERROR:
			// Both may carry an errno (negative) in their first four bytes.
			if len(msg) >= 4 {
				if errno := int32(ne.Uint32(msg[0:4])); errno < 0 {
					return true, fmt.Errorf("netlink dump: %w", unix.Errno(-errno))
				}
			}
			return true, nil
		case unix.NLMSG_OVERRUN:
			return true, errors.New("netlink dump: the kernel overran the socket's buffer")
		}
		if err := fn(h, msg); err != nil {
			return true, err
		}
	}
	return false, nil
}

// align rounds n up to netlink's 4-byte alignment.
func align(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// Attrs walks the netlink attributes in a payload, in place:
//
//	a := nldump.NewAttrs(b)
//	for a.Next() {
//		switch a.Type() { ... a.Data() ... }
//	}
//	if err := a.Err(); err != nil { ... }
type Attrs struct {
	b    []byte
	typ  uint16
	data []byte
	err  error
}

// NewAttrs walks the attributes in b.
func NewAttrs(b []byte) Attrs { return Attrs{b: b} }

// Next moves to the next attribute and reports whether there is one. A
// malformed attribute ends the walk with Err set.
func (a *Attrs) Next() bool {
	if a.err != nil || len(a.b) == 0 {
		return false
	}
	if len(a.b) < unix.SizeofNlAttr {
		a.err = fmt.Errorf("netlink attributes: %d trailing bytes, shorter than a header", len(a.b))
		return false
	}
	ne := binary.NativeEndian
	l := int(ne.Uint16(a.b[0:2]))
	if l < unix.SizeofNlAttr || l > len(a.b) {
		a.err = fmt.Errorf("netlink attributes: length %d with %d bytes left", l, len(a.b))
		return false
	}
	// The nested and byte-order flags say how to read the payload, which
	// the caller knows from the type.
	a.typ = ne.Uint16(a.b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
	a.data = a.b[unix.SizeofNlAttr:l]
	a.b = a.b[min(align(l), len(a.b)):]
	return true
}

// Type is the current attribute's type, without the nested and
// byte-order flags.
func (a *Attrs) Type() uint16 { return a.typ }

// Data is the current attribute's payload.
func (a *Attrs) Data() []byte { return a.data }

// Err is what ended the walk early, or nil.
func (a *Attrs) Err() error { return a.err }

// AppendAttr appends an attribute of type typ with payload data (under
// 64 KiB: requests carry names) to b, for building requests.
func AppendAttr(b []byte, typ uint16, data []byte) []byte {
	var h [unix.SizeofNlAttr]byte
	binary.NativeEndian.PutUint16(h[0:2], uint16(unix.SizeofNlAttr+len(data)))
	binary.NativeEndian.PutUint16(h[2:4], typ)
	b = append(b, h[:]...)
	b = append(b, data...)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}
