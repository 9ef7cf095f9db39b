// Package fake holds the in-memory stand-ins the unit tests share: a
// clock that moves only when told to and a firewall gate that keeps its
// allowlist in a map. One copy each, so every package's tests fake the
// kernel and time the same way.
package fake

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/parkwifi/parkportal/firewall"
)

// Clock is a time source that stands still until Advance or Set. Safe
// for concurrent use: handlers and sweepers read it while the test moves
// it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Gate is an in-memory session.Gate: the set of allowed clients and the
// traffic counters the kernel would report, failing on demand.
type Gate struct {
	mu        sync.Mutex
	clients   map[string]firewall.Client // by "ip/mac"
	packets   map[netip.Addr]uint64
	failAllow error
	failDeny  error
	failUsage error
	ensured   int
	prepared  []string          // "ip down/up", in order
	want      []firewall.Client // from Want, for Reconcile
	// gen counts Allow and Deny calls; changedAt holds each address's
	// last, for Want to keep what is newer than its list (as
	// firewall.Firewall does).
	gen       uint64
	changedAt map[netip.Addr]uint64
}

// NewGate returns a gate that allows nobody.
func NewGate() *Gate {
	return &Gate{clients: map[string]firewall.Client{}, packets: map[netip.Addr]uint64{}}
}

func key(ip netip.Addr, mac net.HardwareAddr) string { return ip.String() + "/" + mac.String() }

// Ensure counts calls; the fake has no chains to repair.
func (g *Gate) Ensure() (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ensured++
	return 0, nil
}

// Allow adds c, or fails with the error set by FailAllow.
func (g *Gate) Allow(c firewall.Client) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failAllow != nil {
		return g.failAllow
	}
	g.clients[key(c.IP, c.MAC)] = c
	g.changed(c.IP)
	return nil
}

// changed notes a change to ip's entry. Call with mu held.
func (g *Gate) changed(ip netip.Addr) {
	if g.changedAt == nil {
		g.changedAt = map[netip.Addr]uint64{}
	}
	g.gen++
	g.changedAt[ip] = g.gen
}

// Deny removes c, or fails with the error set by FailDeny.
func (g *Gate) Deny(c firewall.Client) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failDeny != nil {
		return g.failDeny
	}
	delete(g.clients, key(c.IP, c.MAC))
	g.changed(c.IP)
	return nil
}

// Prepare records that the device at ip was made ready for its login;
// like the kernel gate, it lets nothing through.
func (g *Gate) Prepare(ip netip.Addr, down, up uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.prepared = append(g.prepared, ip.String()+" "+strconv.FormatUint(down, 10)+"/"+strconv.FormatUint(up, 10))
	return nil
}

// Prepared returns what Prepare was called with, e.g.
// "198.51.100.10 8000000/8000000", and forgets it.
func (g *Gate) Prepared() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.prepared
	g.prepared = nil
	return p
}

// WantMark returns the count of Allow and Deny calls so far.
func (g *Gate) WantMark() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen
}

// Want records what Reconcile makes the allowlist: want, read at mark,
// with the entries of addresses that Allow or Deny changed after mark
// as they are now.
func (g *Gate) Want(mark uint64, want []firewall.Client) {
	g.mu.Lock()
	defer g.mu.Unlock()
	newer := func(ip netip.Addr) bool { return g.changedAt[ip] > mark }
	g.want = g.want[:0:0]
	for _, c := range want {
		if !newer(c.IP) {
			g.want = append(g.want, c)
		}
	}
	for _, c := range g.clients {
		if newer(c.IP) {
			g.want = append(g.want, c)
		}
	}
	for ip, gen := range g.changedAt {
		if gen <= mark {
			delete(g.changedAt, ip)
		}
	}
}

// Reconcile makes the allowlist exactly what Want was given and reports
// how many entries it added or removed, as the kernel gate's repairs.
func (g *Gate) Reconcile() (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	want := g.want
	repairs := 0
	next := make(map[string]firewall.Client, len(want))
	for _, c := range want {
		k := key(c.IP, c.MAC)
		next[k] = c
		if _, ok := g.clients[k]; !ok {
			repairs++
		}
	}
	for k := range g.clients {
		if _, ok := next[k]; !ok {
			repairs++
		}
	}
	g.clients = next
	return repairs, nil
}

// Sync is Want followed by Reconcile.
func (g *Gate) Sync(want []firewall.Client) (int, error) {
	g.Want(g.WantMark(), want)
	return g.Reconcile()
}

// Usage reports, for every allowed client, the packets given to Traffic
// and 100 bytes per packet.
func (g *Gate) Usage() (map[netip.Addr]firewall.Usage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failUsage != nil {
		return nil, g.failUsage
	}
	u := make(map[netip.Addr]firewall.Usage, len(g.clients))
	for _, c := range g.clients {
		u[c.IP] = firewall.Usage{Packets: g.packets[c.IP], Bytes: 100 * g.packets[c.IP]}
	}
	return u, nil
}

// Traffic counts packets for ip, as if the visitor had used the network.
func (g *Gate) Traffic(ip netip.Addr, packets uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.packets[ip] += packets
}

// FailAllow makes Allow fail with err (nil: succeed again).
func (g *Gate) FailAllow(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failAllow = err
}

// FailDeny makes Deny fail with err (nil: succeed again).
func (g *Gate) FailDeny(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failDeny = err
}

// FailUsage makes Usage fail with err (nil: succeed again).
func (g *Gate) FailUsage(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failUsage = err
}

// Has reports whether the device ip/mac is allowed.
func (g *Gate) Has(ip netip.Addr, mac net.HardwareAddr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.clients[key(ip, mac)]
	return ok
}

// Len is the number of allowed clients.
func (g *Gate) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.clients)
}

// Ensured is how many times Ensure was called.
func (g *Gate) Ensured() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ensured
}

// State renders the allowed clients with their rates, sorted, e.g.
// "198.51.100.10/02:00:00:00:00:01 8000000/4000000".
func (g *Gate) State() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.clients))
	for k, c := range g.clients {
		out = append(out, k+" "+strconv.FormatUint(c.RateDown, 10)+"/"+strconv.FormatUint(c.RateUp, 10))
	}
	slices.Sort(out)
	return out
}
