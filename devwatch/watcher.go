package devwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// capture is the narrow interface Run needs from a packet socket, so that
// the loop, its policy and its shutdown can be tested without root on a fake.
type capture interface {
	// read returns the next frame, valid until the next read, and whether
	// the kernel cut it short. It returns errTimeout when no frame came
	// within the read timeout, so that Run can look at its context.
	read() (frame []byte, at time.Time, truncated bool, err error)
	// stale reports whether the interface the socket is bound to was
	// removed or replaced (OpenWrt's netifd recreates br-lan on a network
	// restart), so that Run reopens it.
	stale() bool
	// gateway returns the interface's own MAC address.
	gateway() net.HardwareAddr
	close()
}

// errTimeout is returned by capture.read when no frame arrived in time.
var errTimeout = errors.New("devwatch: read timed out")

const (
	// readTimeout bounds how long Run stays blocked in the kernel, and so
	// how long it takes to notice that its context ended: the socket read
	// cannot be woken any other way (EthernetHandle.Close does not).
	readTimeout = 200 * time.Millisecond
	// checkEvery is how often Run checks that the interface still exists.
	checkEvery = 5 * time.Second
	// maxBackoff bounds the wait between attempts to reopen the socket.
	maxBackoff = 30 * time.Second
	// maxDevices bounds the memory of hostnames and vendors (from DHCP
	// REQUESTs, to complete the ACK that follows) and of rogue DHCP servers
	// already warned about: a visitor can invent MACs at line rate.
	maxDevices = 4096
	maxRogues  = 256
)

// Watcher captures DHCP and ARP on one LAN interface and reports devices
// taking or announcing an address. Create it with New, then call Run once.
type Watcher struct {
	iface string
	log   *slog.Logger
	open  func() (capture, error)

	// checkEvery and minBackoff are fields so that tests can shorten them.
	checkEvery, minBackoff time.Duration

	mu      sync.Mutex // guards cap (until Run owns it) and trusted
	cap     capture
	trusted []net.HardwareAddr
	started bool

	st counters

	// Owned by Run.
	dec    decoder
	gw     net.HardwareAddr
	known  map[[6]byte]dhcpInfo
	rogues map[[6]byte]struct{}
}

// dhcpInfo is what a device said about itself in its last DHCP REQUEST.
type dhcpInfo struct{ hostname, vendor string }

// counters are updated by Run and read by Stats.
type counters struct {
	frames, events, ignored, malformed, truncated, own, spoofed, rogue, readErrors, reopens atomic.Uint64
}

// Stats are cumulative counts since New, for metrics: a rising Malformed,
// Spoofed or RogueDHCP count means someone on the LAN is misbehaving.
type Stats struct {
	Frames     uint64 // frames read from the socket
	Events     uint64 // events delivered on the channel
	Ignored    uint64 // well-formed frames that tell nothing we report (DISCOVER, NAK, ...)
	Malformed  uint64 // frames that failed to decode, truncated ones included
	Truncated  uint64 // frames longer than the capture buffer
	Own        uint64 // frames sent by the gateway itself (other than its DHCP ACKs)
	Spoofed    uint64 // ARP or DHCP client messages whose MAC differs from the Ethernet source
	RogueDHCP  uint64 // DHCP ACKs from a server other than the gateway or a trusted one
	ReadErrors uint64 // socket errors other than the read timeout
	Reopens    uint64 // times the socket was reopened after an error or interface change
}

// Stats returns the counters; safe to call while Run runs.
func (w *Watcher) Stats() Stats {
	c := &w.st
	return Stats{
		Frames: c.frames.Load(), Events: c.events.Load(), Ignored: c.ignored.Load(),
		Malformed: c.malformed.Load(), Truncated: c.truncated.Load(), Own: c.own.Load(),
		Spoofed: c.spoofed.Load(), RogueDHCP: c.rogue.Load(), ReadErrors: c.readErrors.Load(),
		Reopens: c.reopens.Load(),
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
		iface:      iface,
		log:        logger.With("component", "devwatch", "iface", iface),
		open:       open,
		checkEvery: checkEvery,
		minBackoff: time.Second,
		cap:        c,
		known:      make(map[[6]byte]dhcpInfo),
		rogues:     make(map[[6]byte]struct{}),
	}, nil
}

// TrustDHCPServer makes Run report DHCP ACKs sent from mac, for a LAN whose
// DHCP server is not the gateway itself. By default only ACKs sent by the
// gateway (OpenWrt's dnsmasq) are reported, because any visitor can forge an
// ACK that moves another visitor's MAC to an address of their choosing.
// Call it before Run.
func (w *Watcher) TrustDHCPServer(mac net.HardwareAddr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.trusted = append(w.trusted, clone(mac))
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
	lastCheck := time.Now()
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
			backoff = w.minBackoff
		}
		if w.gw == nil {
			w.gw = c.gateway()
			w.log.Info("devwatch: capturing DHCP and ARP", "gateway_mac", w.gw.String())
		}
		if time.Since(lastCheck) >= w.checkEvery {
			lastCheck = time.Now()
			if c.stale() {
				w.log.Warn("devwatch: LAN interface was removed or replaced; reopening")
				c.close()
				c, w.gw = nil, nil
				continue
			}
		}

		frame, at, truncated, err := c.read()
		switch {
		case errors.Is(err, errTimeout):
			continue
		case err != nil:
			w.st.readErrors.Add(1)
			w.log.Warn("devwatch: reading the LAN interface failed; reopening", "err", err, "in", backoff)
			c.close()
			c, w.gw = nil, nil
			sleep(ctx, backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		w.st.frames.Add(1)
		if truncated {
			w.st.truncated.Add(1)
			w.st.malformed.Add(1)
			continue
		}
		ev, ok := w.handle(frame, at)
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

// handle decodes one frame and applies the policy on who may say what.
func (w *Watcher) handle(frame []byte, at time.Time) (ev Event, ok bool) {
	defer func() {
		// Decode is fuzzed and validates lengths before gopacket sees
		// them; this only keeps an unknown decoder bug from taking the
		// whole portal down with it.
		if r := recover(); r != nil {
			w.st.malformed.Add(1)
			w.log.Error("devwatch: decoder panicked on a frame; dropped", "panic", fmt.Sprint(r))
			ev, ok = Event{}, false
		}
	}()
	ev, src, res := w.dec.decode(frame, at)
	switch res {
	case ignored:
		w.st.ignored.Add(1)
		return Event{}, false
	case malformed:
		w.st.malformed.Add(1)
		return Event{}, false
	}
	if !w.allowed(ev, src) {
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
// another: ACKs count only from the gateway or a trusted server, and a
// device's ARP and DHCP client messages only when the MAC inside them is
// the frame's Ethernet source (which is what the allowlist matches on).
func (w *Watcher) allowed(ev Event, src net.HardwareAddr) bool {
	fromGateway := bytes.Equal(src, w.gw)
	if ev.Kind == DHCPAck {
		if fromGateway || w.isTrusted(src) {
			return true
		}
		w.st.rogue.Add(1)
		key := [6]byte(src)
		if _, warned := w.rogues[key]; !warned && len(w.rogues) < maxRogues {
			w.rogues[key] = struct{}{}
			w.log.Warn("devwatch: ignoring DHCP ACKs from a server that is not the gateway (rogue DHCP server on the LAN?)",
				"server_mac", src.String())
		}
		return false
	}
	if fromGateway {
		w.st.own.Add(1)
		return false
	}
	if !bytes.Equal(src, ev.MAC) {
		w.st.spoofed.Add(1)
		w.log.Debug("devwatch: MAC inside the frame differs from its Ethernet source; dropped",
			"kind", ev.Kind.String(), "src", src.String(), "claimed", ev.MAC.String())
		return false
	}
	return true
}

func (w *Watcher) isTrusted(mac net.HardwareAddr) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.trusted {
		if bytes.Equal(t, mac) {
			return true
		}
	}
	return false
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
