package netlimit

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Loopback only: 127.0.0.0/8 is all on lo, so 127.0.0.2 is a second
// source address without any setup.
var (
	srcA = netip.MustParseAddr("127.0.0.1")
	srcB = netip.MustParseAddr("127.0.0.2")
)

func listen(t *testing.T, per int, log *slog.Logger) *Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(inner, per, log)
	t.Cleanup(func() { l.Close() })
	return l
}

// dialerFrom dials from src (any port), giving up after 5 s.
func dialerFrom(src netip.Addr) *net.Dialer {
	return &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: 5 * time.Second}
}

func dialFrom(t *testing.T, l net.Listener, src netip.Addr) net.Conn {
	t.Helper()
	c, err := dialerFrom(src).Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// acceptAsync runs Accept in the background, handing connections over.
func acceptAsync(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1024)
	go func() {
		defer close(ch)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	return ch
}

// refusedFrom dials from src and reports whether the listener refused the
// connection. The listener resets it (linger 0) right after accepting, so
// the reset can reach the client before its non-blocking connect reports
// success: the dial itself then fails with ECONNRESET, which is a refusal
// too. Any other dial error fails the test.
func refusedFrom(t *testing.T, l net.Listener, src netip.Addr) bool {
	t.Helper()
	c, err := dialerFrom(src).Dial("tcp", l.Addr().String())
	if errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return closedByPeer(c)
}

// closedByPeer reports whether the server side closed c: a read gets EOF
// or a reset rather than timing out.
func closedByPeer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// stillOpen reports whether c is still open: an echo comes back.
func stillOpen(t *testing.T, client, server net.Conn) bool {
	t.Helper()
	if _, err := client.Write([]byte("x")); err != nil {
		return false
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	_, err := server.Read(b)
	return err == nil && b[0] == 'x'
}

func TestCapPerSource(t *testing.T) {
	var logs bytes.Buffer
	l := listen(t, 3, slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)))
	accepted := acceptAsync(l)

	var clients, servers []net.Conn
	for i := 0; i < 3; i++ {
		clients = append(clients, dialFrom(t, l, srcA))
		servers = append(servers, <-accepted)
	}
	if got := l.Open(srcA); got != 3 {
		t.Fatalf("Open(%s) = %d, want 3", srcA, got)
	}
	// Two more from the same source: closed at once, never handed out.
	for i := 0; i < 2; i++ {
		if !refusedFrom(t, l, srcA) {
			t.Fatalf("connection %d over the cap was not closed", i+4)
		}
	}
	// Another source is not affected.
	cb := dialFrom(t, l, srcB)
	sb := <-accepted
	if !stillOpen(t, cb, sb) {
		t.Fatal("a connection from another source was refused")
	}
	for i := range clients {
		if !stillOpen(t, clients[i], servers[i]) {
			t.Fatalf("connection %d under the cap was closed", i+1)
		}
	}
	if got := l.Refused(); got != 2 {
		t.Errorf("Refused() = %d, want 2", got)
	}
	if !strings.Contains(logs.String(), "refused connections over the per-source cap") {
		t.Errorf("refusal not logged: %q", logs.String())
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Errorf("%d log lines for 2 refusals within %s, want 1", n, logEvery)
	}

	// Closing one frees a slot; closing twice frees only one.
	servers[0].Close()
	servers[0].Close()
	if got := l.Open(srcA); got != 2 {
		t.Fatalf("after closing one: Open = %d, want 2", got)
	}
	c := dialFrom(t, l, srcA)
	s := <-accepted
	if !stillOpen(t, c, s) {
		t.Fatal("a freed slot was not reusable")
	}
	servers[0] = s
	if !refusedFrom(t, l, srcA) {
		t.Fatal("cap no longer enforced after a slot was reused")
	}

	// All closed: no map entry left behind.
	for _, s := range append(servers, sb) {
		s.Close()
	}
	if n := l.Sources(); n != 0 {
		t.Errorf("Sources() = %d after every connection closed, want 0 (map leak)", n)
	}
}

func TestNoCap(t *testing.T) {
	l := listen(t, 0, nil)
	accepted := acceptAsync(l)
	var servers []net.Conn
	for i := 0; i < 50; i++ {
		c := dialFrom(t, l, srcA)
		s := <-accepted
		if !stillOpen(t, c, s) {
			t.Fatalf("connection %d refused with no cap", i+1)
		}
		servers = append(servers, s)
	}
	if l.Refused() != 0 || l.Open(srcA) != 50 {
		t.Fatalf("Refused %d, Open %d; want 0, 50", l.Refused(), l.Open(srcA))
	}
	for _, s := range servers {
		s.Close()
	}
	if l.Sources() != 0 {
		t.Fatalf("Sources() = %d, want 0", l.Sources())
	}
}

// TestUnixSocketNotCapped: a listener without IP sources passes through.
func TestUnixSocketNotCapped(t *testing.T) {
	inner, err := net.Listen("unix", t.TempDir()+"/s")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(inner, 1, nil)
	defer l.Close()
	accepted := acceptAsync(l)
	for i := 0; i < 3; i++ {
		c, err := net.Dial("unix", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := <-accepted
		defer s.Close()
		if !stillOpen(t, c, s) {
			t.Fatalf("unix connection %d refused", i+1)
		}
	}
	if l.Refused() != 0 || l.Sources() != 0 {
		t.Fatalf("Refused %d, Sources %d; want 0, 0", l.Refused(), l.Sources())
	}
}

// TestConcurrentChurn: many clients from two sources open and close
// connections at once, under -race. At no time does a source hold more
// than the cap; every connection is either served or refused; and at the
// end the map is empty.
func TestConcurrentChurn(t *testing.T) {
	const per, workers, rounds = 4, 16, 40
	l := listen(t, per, nil)
	var (
		held    sync.Map // netip.Addr -> *atomic.Int32
		maxSeen atomic.Int32
		served  atomic.Int64
	)
	for _, a := range []netip.Addr{srcA, srcB} {
		held.Store(a, new(atomic.Int32))
	}
	srvDone := make(chan struct{})
	var handlers sync.WaitGroup
	go func() {
		defer close(srvDone)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			src := c.(*conn).src
			v, _ := held.Load(src)
			n := v.(*atomic.Int32).Add(1)
			for {
				m := maxSeen.Load()
				if n <= m || maxSeen.CompareAndSwap(m, n) {
					break
				}
			}
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				b := make([]byte, 1)
				if _, err := c.Read(b); err == nil {
					c.Write(b)
					served.Add(1)
				}
				// Decrement before Close gives the slot back.
				v.(*atomic.Int32).Add(-1)
				c.Close()
			}()
		}
	}()

	var clients sync.WaitGroup
	var refused atomic.Int64
	for w := 0; w < workers; w++ {
		clients.Add(1)
		go func() {
			defer clients.Done()
			src := srcA
			if w%2 == 1 {
				src = srcB
			}
			d := dialerFrom(src)
			for r := 0; r < rounds; r++ {
				c, err := d.Dial("tcp", l.Addr().String())
				if errors.Is(err, syscall.ECONNRESET) {
					// On loopback the reset can beat connect's return.
					refused.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				b := []byte{'p'}
				_, err = c.Write(b)
				if err == nil {
					_, err = io.ReadFull(c, b)
				}
				if err != nil {
					refused.Add(1)
				}
				c.Close()
			}
		}()
	}
	clients.Wait()
	handlers.Wait()
	l.Close()
	<-srvDone

	if m := maxSeen.Load(); m > per {
		t.Errorf("a source held %d connections at once, cap %d", m, per)
	}
	total := int64(workers * rounds)
	if served.Load()+refused.Load() != total {
		t.Errorf("served %d + refused %d != %d dialled", served.Load(), refused.Load(), total)
	}
	if int64(l.Refused()) > refused.Load() {
		t.Errorf("listener refused %d, clients saw only %d failures", l.Refused(), refused.Load())
	}
	if served.Load() == 0 {
		t.Error("nothing was served")
	}
	if n := l.Sources(); n != 0 {
		t.Errorf("Sources() = %d after all closed, want 0 (map leak)", n)
	}
	t.Logf("served %d, refused %d (listener counted %d), max held per source %d", served.Load(), refused.Load(), l.Refused(), maxSeen.Load())
}

// TestHTTPServer: behind net/http, a source over the cap gets its extra
// connections reset while the ones it holds, and other sources, are
// served; keep-alive connections give their slot back when closed.
func TestHTTPServer(t *testing.T) {
	l := listen(t, 2, nil)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(l)
	defer srv.Close()

	// Two slow clients from srcA hold their slots (header not finished).
	for i := 0; i < 2; i++ {
		c := dialFrom(t, l, srcA)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	}
	waitFor(t, func() bool { return l.Open(srcA) == 2 })
	get := func(src netip.Addr) error {
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}).DialContext}
		defer tr.CloseIdleConnections()
		cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := cl.Get("http://" + l.Addr().String() + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "ok" {
			return errors.New("body " + string(b))
		}
		return nil
	}
	if err := get(srcA); err == nil {
		t.Error("a third connection from a source at the cap was served")
	}
	for i := 0; i < 5; i++ {
		if err := get(srcB); err != nil {
			t.Fatalf("another source: %v", err)
		}
		// The server notices the client's close and gives the slot back.
		waitFor(t, func() bool { return l.Open(srcB) == 0 })
	}
	if l.Refused() == 0 {
		t.Error("refusal not counted")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached within 5 s")
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// BenchmarkAcquireRelease: the per-connection cost of the cap, from many
// goroutines and sources at once.
func BenchmarkAcquireRelease(b *testing.B) {
	l := Listen(nil, DefaultPerSource, nil)
	var seq atomic.Uint32
	b.RunParallel(func(pb *testing.PB) {
		n := seq.Add(1)
		src := netip.AddrFrom4([4]byte{198, 51, 100, byte(n)})
		for pb.Next() {
			if l.acquire(src) {
				l.release(src)
			}
		}
	})
}
