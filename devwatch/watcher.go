package devwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// capture is the narrow interface Run needs from a packet socket, so that
// the loop, its policy and its shutdown can be tested without root on a fake.
type capture interface {
	// read returns the next frame, valid until the next read, and what
	// the kernel says about it. It returns errTimeout when no frame came
	// within the read timeout, so that Run can look at its context.
	read() (frame []byte, meta frameMeta, err error)
	// link returns the interface's current MAC and IPv4 addresses. It
	// fails (wrapping errReplaced) when the interface the socket is bound
	// to was removed or replaced (OpenWrt's netifd recreates br-lan on a
	// network restart), so that Run reopens the socket.
	link() (linkState, error)
	close()
}

// frameMeta is what the kernel says about a frame besides its bytes.
type frameMeta struct {
	at time.Time
	// outgoing: the kernel's packet type is PACKET_OUTGOING, i.e. this
	// host transmitted the frame on the interface (dnsmasq's ACKs, the
	// gateway's ARP, and packets it routes onto the LAN). Frames that
	// arrived from the LAN never are, whatever MAC or IP they claim.
	outgoing bool
	// truncated: the frame was longer than the capture buffer.
	truncated bool
	// vlan is the 802.1Q VLAN ID of a tag the kernel took off the frame;
	// 0 for an untagged or priority-tagged frame.
	vlan uint16
}

// linkState is what Run knows of the interface it captures on.
type linkState struct {
	mac   net.HardwareAddr
	addrs []netip.Addr // IPv4
}

var (
	// errTimeout is returned by capture.read when no frame arrived in time.
	errTimeout = errors.New("devwatch: read timed out")
	// errReplaced is wrapped by capture.link when the interface has a new
	// index: it was deleted and created again under the same name.
	errReplaced = errors.New("devwatch: interface removed or replaced")
)

const (
	// readTimeout bounds how long Run stays blocked in the kernel, and so
	// how long it takes to notice that its context ended: the socket read
	// cannot be woken any other way.
	readTimeout = 200 * time.Millisecond
	// checkEvery is how often Run re-reads the interface: that it still
	// exists, and its MAC and addresses.
	checkEvery = 5 * time.Second
	// relinkEvery bounds how often a frame can make Run re-read the
	// interface between those checks (see relinkSoon).
	relinkEvery = time.Second
	// maxBackoff bounds the wait between attempts to reopen the socket.
	maxBackoff = 30 * time.Second
	// maxDevices bounds the memory of hostnames and vendors (from DHCP
	// REQUESTs, to complete the ACK that follows) and of rogue DHCP servers
	// already warned about: a visitor can invent MACs at line rate.
	maxDevices = 4096
	maxRogues  = 256
	// maxForgedLogs bounds the warnings about forged ACKs per minute; the
	// Forged counter has them all.
	maxForgedLogs = 10
)

// Watcher captures DHCP and ARP on one LAN interface and reports devices
// taking or announcing an address. Create it with New, then call Run once.
type Watcher struct {
	iface string
	log   *slog.Logger
	open  func() (capture, error)

	// checkEvery, relinkEvery and minBackoff are fields so that tests can
	// change them.
	checkEvery, relinkEvery, minBackoff time.Duration

	mu      sync.Mutex // guards cap until Run owns it
	cap     capture
	started bool

	st counters

	// Owned by Run.
	live     capture          // the open capture, for relinkSoon
	gw       net.HardwareAddr // the interface's MAC, nil until read
	addrs    []netip.Addr     // the interface's IPv4 addresses
	linkedAt time.Time        // when gw and addrs were read
	known    map[[6]byte]dhcpInfo
	rogues   map[[6]byte]struct{}
	// forgedSince and forgedLogged rate-limit the forged-ACK warning.
	forgedSince  time.Time
	forgedLogged int
}

// dhcpInfo is what a device said about itself in its last DHCP REQUEST.
type dhcpInfo struct{ hostname, vendor string }

// counters are updated by Run and read by Stats.
type counters struct {
	frames, events, ignored, malformed, truncated, own, spoofed, rogue, forged, readErrors, reopens atomic.Uint64
}

// Stats are cumulative counts since New, for metrics: a rising Malformed,
// Spoofed, RogueDHCP or Forged count means someone on the LAN is
// misbehaving.
type Stats struct {
	Frames     uint64 // frames read from the socket
	Events     uint64 // events delivered on the channel
	Ignored    uint64 // well-formed frames that tell nothing we report (DISCOVER, NAK, other VLANs, ...)
	Malformed  uint64 // frames that failed to decode, truncated ones included
	Truncated  uint64 // frames longer than the capture buffer
	Own        uint64 // frames the gateway transmitted, other than DHCP ACKs
	Spoofed    uint64 // ARP or DHCP client messages from a MAC other than the one inside, or posing as the gateway's
	RogueDHCP  uint64 // DHCP ACKs from another server on the LAN
	Forged     uint64 // DHCP ACKs posing as the gateway's that it did not send (see Watcher.allowAck)
	ReadErrors uint64 // socket errors other than the read timeout
	Reopens    uint64 // times the socket was reopened after an error or interface change
}

// Stats returns the counters; safe to call while Run runs.
func (w *Watcher) Stats() Stats {
	c := &w.st
	return Stats{
		Frames: c.frames.Load(), Events: c.events.Load(), Ignored: c.ignored.Load(),
		Malformed: c.malformed.Load(), Truncated: c.truncated.Load(), Own: c.own.Load(),
		Spoofed: c.spoofed.Load(), RogueDHCP: c.rogue.Load(), Forged: c.forged.Load(),
		ReadErrors: c.readErrors.Load(), Reopens: c.reopens.Load(),
	}
}

// newWatcher opens the capture once, so that New reports a missing
// interface or permission at start-up rather than in Run's retry loop.
func newWatcher(iface string, logger *slog.Logger, open func() (capture, error)) (*Watcher, error) {
	if logger == nil {
		logger = slog.Default()
	}
	c, err := open()
	if err != nil {
		return nil, err
	}
	return &Watcher{
		iface:       iface,
		log:         logger.With("component", "devwatch", "iface", iface),
		open:        open,
		checkEvery:  checkEvery,
		relinkEvery: relinkEvery,
		minBackoff:  time.Second,
		cap:         c,
		known:       make(map[[6]byte]dhcpInfo),
		rogues:      make(map[[6]byte]struct{}),
	}, nil
}

// Close releases the socket of a Watcher whose Run was never called. Once
// Run has started, Run owns the socket and closes it when it returns, and
// Close does nothing.
func (w *Watcher) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	if w.cap != nil {
		w.cap.close()
		w.cap = nil
	}
}

// Run captures until ctx ends, sending each event to out, and returns nil
// then; it returns an error only when called more than once or after Close.
// It returns within about readTimeout of ctx ending, even on a silent LAN.
//
// A send on out blocks (the kernel socket buffer queues frames meanwhile),
// so a slow consumer delays events rather than losing IP moves; keep the
// consumer quick. Socket errors and a replaced interface are logged and the
// socket is reopened with backoff: a LAN that flaps does not end Run.
//
// Run does all its socket work on the calling goroutine and starts none,
// so a caller that locked its OS thread into a network namespace keeps
// capturing, and reopening, in that namespace.
func (w *Watcher) Run(ctx context.Context, out chan<- Event) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("devwatch: Run called twice or after Close")
	}
	w.started = true
	c := w.cap
	w.cap = nil
	w.mu.Unlock()
	defer func() {
		if c != nil {
			c.close()
		}
	}()

	backoff := w.minBackoff
	var lastCheck time.Time
	for ctx.Err() == nil {
		if c == nil {
			var err error
			if c, err = w.open(); err != nil {
				w.log.Warn("devwatch: reopening the capture failed; retrying", "err", err, "in", backoff)
				sleep(ctx, backoff)
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			w.st.reopens.Add(1)
			w.log.Info("devwatch: capture reopened")
		}
		if w.live != c || time.Since(lastCheck) >= w.checkEvery {
			lastCheck = time.Now()
			first := w.live != c
			if err := w.relink(c); err != nil {
				// Backing off also when the socket opens but the
				// interface cannot be read keeps that from spinning.
				w.log.Warn("devwatch: LAN interface was removed, replaced or unreadable; reopening", "err", err, "in", backoff)
				c.close()
				c, w.live = nil, nil
				sleep(ctx, backoff)
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			w.live = c
			if first {
				backoff = w.minBackoff
				w.log.Info("devwatch: capturing DHCP and ARP", "gateway_mac", w.gw.String(), "gateway_ips", fmt.Sprint(w.addrs))
			}
		}

		frame, meta, err := c.read()
		switch {
		case errors.Is(err, errTimeout):
			continue
		case err != nil:
			w.st.readErrors.Add(1)
			w.log.Warn("devwatch: reading the LAN interface failed; reopening", "err", err, "in", backoff)
			c.close()
			c, w.live = nil, nil
			sleep(ctx, backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		w.st.frames.Add(1)
		if meta.truncated {
			w.st.truncated.Add(1)
			w.st.malformed.Add(1)
			continue
		}
		ev, ok := w.handle(frame, meta)
		if !ok {
			continue
		}
		select {
		case out <- ev:
			w.st.events.Add(1)
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// relink reads the interface's MAC and addresses from c.
func (w *Watcher) relink(c capture) error {
	st, err := c.link()
	if err != nil {
		return err
	}
	if w.gw != nil && !bytes.Equal(w.gw, st.mac) {
		// A bridge takes the lowest MAC of its ports: adding one can
		// change it under a running daemon.
		w.log.Info("devwatch: the LAN interface's MAC changed", "old", w.gw.String(), "new", st.mac.String())
	}
	w.gw, w.addrs, w.linkedAt = st.mac, st.addrs, time.Now()
	return nil
}

// relinkSoon re-reads the interface now, unless it was read less than
// relinkEvery ago, and reports whether it did. Frames call it when they
// suggest the MAC or addresses changed since the last read, so that Run
// need not wait for its next periodic check; the bound keeps a flood of
// such frames from turning into a flood of netlink dumps.
func (w *Watcher) relinkSoon() bool {
	if w.live == nil || time.Since(w.linkedAt) < w.relinkEvery {
		return false
	}
	if err := w.relink(w.live); err != nil {
		// Run's periodic check reopens the socket if the interface went.
		w.log.Debug("devwatch: re-reading the LAN interface failed", "err", err)
		return false
	}
	return true
}

// handle decodes one frame and applies the policy on who may say what.
func (w *Watcher) handle(frame []byte, m frameMeta) (ev Event, ok bool) {
	defer func() {
		// Decode is fuzzed and checks every length; this only keeps an
		// unknown decoder bug from taking the whole portal down with it.
		if r := recover(); r != nil {
			w.st.malformed.Add(1)
			w.log.Error("devwatch: decoder panicked on a frame; dropped", "panic", fmt.Sprint(r))
			ev, ok = Event{}, false
		}
	}()
	if m.vlan != 0 {
		// Another VLAN's frame seen on the bridge: not the LAN that the
		// interface's addresses and the allowlist are about.
		w.st.ignored.Add(1)
		return Event{}, false
	}
	ev, o, res := decode(frame, m.at)
	switch res {
	case ignored:
		w.st.ignored.Add(1)
		return Event{}, false
	case malformed:
		w.st.malformed.Add(1)
		return Event{}, false
	}
	if !w.allowed(ev, o, m.outgoing) {
		return Event{}, false
	}
	key := [6]byte(ev.MAC)
	switch ev.Kind {
	case DHCPRequest:
		if ev.Hostname != "" || ev.Vendor != "" {
			if _, ok := w.known[key]; !ok && len(w.known) >= maxDevices {
				for k := range w.known { // evict one at random
					delete(w.known, k)
					break
				}
			}
			w.known[key] = dhcpInfo{ev.Hostname, ev.Vendor}
		}
	case DHCPAck:
		// Servers seldom echo options 12 and 60: take them from the
		// device's REQUEST that this ACK answers.
		if info, ok := w.known[key]; ok {
			if ev.Hostname == "" {
				ev.Hostname = info.hostname
			}
			if ev.Vendor == "" {
				ev.Vendor = info.vendor
			}
		}
	}
	// Hostnames are personal (they often carry the owner's name): debug only.
	w.log.Debug("devwatch: event", "kind", ev.Kind.String(), "mac", ev.MAC.String(),
		"ip", ev.IP.String(), "hostname", ev.Hostname, "vendor", ev.Vendor)
	return ev, true
}

// allowed applies the policy that keeps one visitor from speaking for
// another. DHCP ACKs count only when the gateway sent them (allowAck). A
// device's ARP and DHCP client messages count only when they arrived from
// the LAN and the MAC inside them is the frame's Ethernet source (which is
// what the allowlist matches on), and that source is not the gateway's.
func (w *Watcher) allowed(ev Event, o origin, outgoing bool) bool {
	if outgoing && !bytes.Equal(o.src, w.gw) {
		// The gateway transmits with the interface's MAC: another one
		// means the bridge's MAC changed since it was read.
		w.relinkSoon()
	}
	if ev.Kind == DHCPAck {
		return w.allowAck(ev, o, outgoing)
	}
	switch {
	case outgoing:
		w.st.own.Add(1)
		return false
	case bytes.Equal(o.src, w.gw):
		w.st.spoofed.Add(1)
		w.log.Debug("devwatch: a frame from the LAN poses as the gateway; dropped",
			"kind", ev.Kind.String(), "src", o.src.String(), "claimed", ev.MAC.String())
		return false
	case !bytes.Equal(o.src, ev.MAC):
		w.st.spoofed.Add(1)
		w.log.Debug("devwatch: MAC inside the frame differs from its Ethernet source; dropped",
			"kind", ev.Kind.String(), "src", o.src.String(), "claimed", ev.MAC.String())
		return false
	}
	return true
}

// allowAck decides whether a DHCP ACK may move a device to its address:
// only when the gateway's own DHCP server sent it. That is decided by what
// no one on the LAN can forge, not by the frame's Ethernet source, which
// anyone can set to the gateway's MAC:
//
//   - the kernel's packet type says the gateway transmitted the frame
//     (an ACK that arrived from the LAN, from a visitor or from another
//     DHCP server, is refused), and
//   - its IPv4 source is one of the interface's own addresses. The gateway
//     also transmits packets it routes onto the LAN, and a logged-in
//     visitor can have it route a UDP 67→68 datagram to another visitor
//     (sent to the gateway's MAC, or as the reply to a flow it opened to a
//     host outside); such a packet keeps its sender's IP source, because
//     the kernel drops arriving packets whose source is one of its own
//     addresses (unless accept_local is set).
//
// ACKs from another DHCP server on the LAN are therefore never trusted:
// they arrive like a visitor's forgery, and nothing in the frame tells the
// two apart.
func (w *Watcher) allowAck(ev Event, o origin, outgoing bool) bool {
	if outgoing {
		if w.ownAddr(o.ipSrc) || (w.relinkSoon() && w.ownAddr(o.ipSrc)) {
			return true
		}
		w.forged(ev, o, "routed through the gateway")
		return false
	}
	if !bytes.Equal(o.src, w.gw) {
		w.relinkSoon() // a changed bridge MAC would make this look like another server
	}
	if bytes.Equal(o.src, w.gw) {
		w.forged(ev, o, "sent from the LAN with the gateway's MAC")
		return false
	}
	w.st.rogue.Add(1)
	key := [6]byte(o.src)
	if _, warned := w.rogues[key]; !warned && len(w.rogues) < maxRogues {
		w.rogues[key] = struct{}{}
		w.log.Warn("devwatch: ignoring DHCP ACKs from a server that is not the gateway (rogue DHCP server on the LAN?)",
			"server_mac", o.src.String())
	}
	return false
}

// ownAddr reports whether ip is one of the interface's addresses.
func (w *Watcher) ownAddr(ip netip.Addr) bool {
	return ip.IsValid() && slices.Contains(w.addrs, ip)
}

// forged counts a forged ACK and warns about it, at most maxForgedLogs
// times a minute: one is an attack on a visitor, and staff should know.
func (w *Watcher) forged(ev Event, o origin, how string) {
	w.st.forged.Add(1)
	now := time.Now()
	if now.Sub(w.forgedSince) >= time.Minute {
		w.forgedSince, w.forgedLogged = now, 0
	}
	if w.forgedLogged >= maxForgedLogs {
		return
	}
	w.forgedLogged++
	w.log.Warn("devwatch: dropped a forged DHCP ACK posing as the gateway's: someone on the LAN tried to move a device to another address",
		"how", how, "device_mac", ev.MAC.String(), "ip", ev.IP.String(), "ip_src", o.ipSrc.String(), "eth_src", o.src.String())
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
