// Package netlimit caps how many connections one source address may hold
// open on a listener at once.
//
// http.Server bounds how long a client may take (ReadHeaderTimeout and
// friends) but not how many connections it may open: one device holding
// thousands of slow connections costs the gateway a goroutine, a buffer
// and a file descriptor each, until the timeouts fire. Wrapping the
// portal's listener with Listen bounds that per device. A phone opens
// about six connections to a site; visitors on a park LAN are not behind
// NAT, so DefaultPerSource leaves a wide margin.
package netlimit

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPerSource is the suggested cap for the visitor-facing listener.
const DefaultPerSource = 32

// logEvery bounds how often refusals are logged: under a flood the log
// gets one line per interval with the running total, not one per
// connection.
const logEvery = 10 * time.Second

// Listener is a net.Listener whose Accept closes, at once, each
// connection from a source address that already holds the maximum.
type Listener struct {
	net.Listener
	per int
	log *slog.Logger

	mu   sync.Mutex
	open map[netip.Addr]int // sources with at least one open connection

	refused    atomic.Uint64
	lastLogged atomic.Int64 // unix nanoseconds of the last refusal log line
}

// Listen wraps inner so that at most perSource connections from one
// source IP address are open at a time; perSource <= 0 means no cap (the
// counts are still kept). Connections whose remote address is not an IP
// address (a unix socket) are never capped. logger may be nil.
func Listen(inner net.Listener, perSource int, logger *slog.Logger) *Listener {
	return &Listener{Listener: inner, per: perSource, log: logger, open: map[netip.Addr]int{}}
}

// Accept returns the next connection whose source is under the cap.
// Connections over it are reset and counted; Accept then waits for the
// next one, so a flooding source never makes Accept fail.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src, ok := sourceOf(c)
		if !ok {
			return c, nil
		}
		if l.acquire(src) {
			return &conn{Conn: c, l: l, src: src}, nil
		}
		l.reject(c, src)
	}
}

// acquire counts one more connection from src, if src is under the cap.
func (l *Listener) acquire(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.open[src]
	if l.per > 0 && n >= l.per {
		return false
	}
	l.open[src] = n + 1
	return true
}

// release forgets one connection from src; a source with none left is
// removed, so the map holds only sources with open connections.
func (l *Listener) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.open[src]; n > 1 {
		l.open[src] = n - 1
	} else {
		delete(l.open, src)
	}
}

func (l *Listener) reject(c net.Conn, src netip.Addr) {
	// A reset rather than a FIN: the refused client learns at once, and
	// the gateway keeps no TIME_WAIT entry for it.
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
	total := l.refused.Add(1)
	if l.log == nil {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastLogged.Load()
	if now-last < int64(logEvery) || !l.lastLogged.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("refused connections over the per-source cap", "source", src, "per_source", l.per, "refused_total", total)
}

// Refused is how many connections were closed for being over the cap.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Open is how many connections src holds now.
func (l *Listener) Open(src netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[src]
}

// Sources is how many source addresses hold at least one connection.
func (l *Listener) Sources() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}

func sourceOf(c net.Conn) (netip.Addr, bool) {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return ap.Addr().Unmap(), ap.Addr().IsValid()
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}, false
		}
		return ap.Addr().Unmap(), true
	}
}

// conn gives its source's slot back on the first Close.
type conn struct {
	net.Conn
	l    *Listener
	src  netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}

// CloseWrite half-closes a TCP connection, as net/http does before
// closing after an error response; the wrapper must not hide it.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Unwrap returns the underlying connection.
func (c *conn) Unwrap() net.Conn { return c.Conn }
