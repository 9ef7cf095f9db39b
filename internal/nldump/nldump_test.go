package nldump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDumpLinks reads the kernel's list of links (any network namespace
// has lo) in small batches, and checks that an error from the callback
// is returned after the dump was drained: the next dump on the socket
// reads its own replies.
func TestDumpLinks(t *testing.T) {
	c, err := Dial(unix.NETLINK_ROUTE, SmallBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := make([]byte, unix.SizeofIfInfomsg) // struct ifinfomsg, AF_UNSPEC: all links
	names := func() ([]string, error) {
		var out []string
		err := c.Dump(unix.RTM_GETLINK, req, func(typ uint16, msg []byte) error {
			if typ != unix.RTM_NEWLINK || len(msg) < unix.SizeofIfInfomsg {
				return errors.New("not a link")
			}
			a := NewAttrs(msg[unix.SizeofIfInfomsg:])
			for a.Next() {
				if a.Type() == unix.IFLA_IFNAME {
					out = append(out, string(bytes.TrimRight(a.Data(), "\x00")))
				}
			}
			return a.Err()
		})
		return out, err
	}
	got, err := names()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range got {
		found = found || n == "lo"
	}
	if !found {
		t.Fatalf("links %v: no lo", got)
	}

	stop := errors.New("stop")
	calls := 0
	err = c.Dump(unix.RTM_GETLINK, req, func(uint16, []byte) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("a callback error: Dump = %v after %d calls, want it after 1", err, calls)
	}
	again, err := names()
	if err != nil || len(again) != len(got) {
		t.Errorf("the dump after an abandoned one read %v, %v; want %v", again, err, got)
	}
}

// msg builds one netlink message.
func msg(typ, flags uint16, seq, pid uint32, payload []byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, align(unix.NLMSG_HDRLEN+len(payload)))
	b = append(b, payload...)
	putHeader(b, header{len: uint32(len(b)), typ: typ, flags: flags, seq: seq, pid: pid})
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func errno(e unix.Errno) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(-int32(e)))
	return b
}

// TestWalkMessages: replies to other requests are skipped, the dump's
// end and the kernel's errors are recognised, and a truncated batch is
// an error, not a panic.
func TestWalkMessages(t *testing.T) {
	const seq, pid = 7, 42
	var batch []byte
	batch = append(batch, msg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, seq-1, pid, []byte("old!"))...)
	batch = append(batch, msg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, seq, pid, []byte("mine"))...)
	batch = append(batch, msg(unix.RTM_NEWLINK, unix.NLM_F_MULTI|unix.NLM_F_DUMP_INTR, seq, pid, []byte("intr"))...)
	var seen []string
	var intr bool
	done, err := walkMessages(batch, seq, pid, func(h header, m []byte) error {
		seen = append(seen, string(m))
		intr = intr || h.flags&unix.NLM_F_DUMP_INTR != 0
		return nil
	})
	if done || err != nil || len(seen) != 2 || seen[0] != "mine" || !intr {
		t.Errorf("walkMessages = %v, %v, saw %q (interrupted %v); want not done, ours only, flag seen", done, err, seen, intr)
	}

	done, err = walkMessages(msg(unix.NLMSG_DONE, unix.NLM_F_MULTI, seq, pid, errno(0)), seq, pid, nil)
	if !done || err != nil {
		t.Errorf("NLMSG_DONE: %v, %v; want done", done, err)
	}
	done, err = walkMessages(msg(unix.NLMSG_ERROR, 0, seq, pid, errno(unix.EPERM)), seq, pid, nil)
	if !done || !errors.Is(err, unix.EPERM) {
		t.Errorf("NLMSG_ERROR EPERM: %v, %v; want done with EPERM", done, err)
	}
	full := msg(unix.RTM_NEWLINK, 0, seq, pid, []byte("12345678"))
	for n := 1; n < len(full); n++ {
		if _, err := walkMessages(full[:n], seq, pid, func(header, []byte) error { return nil }); err == nil {
			t.Errorf("a batch cut to %d of %d bytes was read without error", n, len(full))
		}
	}
}

// TestExec asks the kernel for links by index: lo (index 1) exists, a
// huge index does not. Exec waits for every answer it asked for and
// reports the refusals with their errno; a refused request that asked
// for no answer ends the wait (the kernel answers errors regardless);
// answers left over from such an exchange do not confuse the next.
func TestExec(t *testing.T) {
	c, err := Dial(unix.NETLINK_ROUTE, SmallBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	link := func(index int32, flags uint16) Request {
		p := make([]byte, unix.SizeofIfInfomsg)
		binary.NativeEndian.PutUint32(p[4:8], uint32(index))
		return Request{Type: unix.RTM_GETLINK, Flags: flags, Payload: p}
	}
	const none = 1 << 30
	if err := c.Exec([]Request{link(1, unix.NLM_F_ACK), link(1, unix.NLM_F_ACK)}); err != nil {
		t.Errorf("two requests for lo: %v", err)
	}
	err = c.Exec([]Request{link(1, unix.NLM_F_ACK), link(none, unix.NLM_F_ACK), link(1, unix.NLM_F_ACK)})
	if !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), "request 2 of 3") {
		t.Errorf("a request for a missing link among two for lo: %v; want request 2 refused with ENODEV", err)
	}
	// Refused without having asked for an answer: the wait ends there,
	// and the third request's answer is left unread.
	err = c.Exec([]Request{link(none, 0), link(1, unix.NLM_F_ACK)})
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("a refused request that asked for no answer: %v; want ENODEV", err)
	}
	if err := c.Exec([]Request{link(1, unix.NLM_F_ACK)}); err != nil {
		t.Errorf("the request after an abandoned exchange: %v", err)
	}
}

// TestWalkAnswers: answers to other requests and other messages are
// skipped, each answer is matched to its request, and one cut short by
// the receive buffer is still read up to its errno.
func TestWalkAnswers(t *testing.T) {
	const pid = 42
	reqs := []Request{{Flags: unix.NLM_F_ACK}, {}, {Flags: unix.NLM_F_ACK}}
	var b []byte
	b = append(b, msg(unix.NLMSG_ERROR, 0, 9, pid, errno(unix.EPERM))...)    // an older exchange
	b = append(b, msg(unix.NLMSG_ERROR, 0, 10, pid+1, errno(unix.EPERM))...) // another socket
	b = append(b, msg(unix.RTM_NEWLINK, 0, 10, pid, []byte("link"))...)
	b = append(b, msg(unix.NLMSG_ERROR, 0, 10, pid, errno(0))...)
	b = append(b, msg(unix.NLMSG_ERROR, 0, 12, pid, append(errno(unix.ENOENT), make([]byte, 40)...))...)
	b = b[:len(b)-20] // the refused request it carries, cut short
	got := map[int]unix.Errno{}
	ended, err := walkAnswers(b, 10, 12, pid, reqs, func(i int, e unix.Errno) { got[i] = e })
	if ended || err != nil || len(got) != 2 || got[0] != 0 || got[2] != unix.ENOENT {
		t.Errorf("walkAnswers = %v, %v, answers %v; want requests 0 (ok) and 2 (ENOENT)", ended, err, got)
	}
	ended, _ = walkAnswers(msg(unix.NLMSG_ERROR, 0, 11, pid, errno(unix.EINVAL)), 10, 12, pid, reqs, func(int, unix.Errno) {})
	if !ended {
		t.Error("a refusal of a request that asked for no answer did not end the exchange")
	}
}

// FuzzAttrs: attributes written with AppendAttr read back as written
// (type, payload, order), whatever follows them; and no input makes
// the walk panic or loop.
func FuzzAttrs(f *testing.F) {
	f.Add([]byte{1, 3, 'a', 'b', 'c', 2, 0}, []byte{})
	f.Add([]byte{0xff, 0}, []byte{4, 0, 1, 0})
	f.Add([]byte{}, []byte{8, 0, 0x80, 0x01, 1, 2, 3, 4, 3, 0})
	f.Fuzz(func(t *testing.T, spec, tail []byte) {
		// spec: (type, length, payload...) triples.
		type attr struct {
			typ  uint16
			data []byte
		}
		var want []attr
		var b []byte
		for len(spec) >= 2 {
			typ, n := uint16(spec[0]), min(int(spec[1]), len(spec)-2)
			want = append(want, attr{typ, spec[2 : 2+n]})
			b = AppendAttr(b, typ, spec[2:2+n])
			spec = spec[2+n:]
		}
		a := NewAttrs(b)
		var got []attr
		for a.Next() {
			got = append(got, attr{a.Type(), a.Data()})
		}
		if a.Err() != nil || len(got) != len(want) {
			t.Fatalf("read back %d attributes, %v; wrote %d", len(got), a.Err(), len(want))
		}
		for i := range want {
			if got[i].typ != want[i].typ || !bytes.Equal(got[i].data, want[i].data) {
				t.Fatalf("attribute %d read back as %d %x, written %d %x", i, got[i].typ, got[i].data, want[i].typ, want[i].data)
			}
		}
		// Garbage after well-formed attributes: the walk ends, in bounds.
		a = NewAttrs(append(b, tail...))
		for i := 0; a.Next(); i++ {
			if i > len(b)+len(tail) {
				t.Fatal("the walk does not end")
			}
		}
		walkMessages(tail, 1, 1, func(header, []byte) error { return nil })
		walkAnswers(tail, 1, 3, 1, make([]Request, 3), func(int, unix.Errno) {})
	})
}
