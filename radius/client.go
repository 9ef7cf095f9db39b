package radius

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	rad "layeh.com/radius"
)

// ErrUnreachable means no configured server gave a valid answer in time. The
// caller decides what that means (fail open or fail closed); the package does
// not.
var ErrUnreachable = errors.New("RADIUS server unreachable")

// ErrUnverifiable means a server did answer, with the right shared secret
// (its Response Authenticator checks out), but without the
// Message-Authenticator that an Access-Accept or Access-Reject must carry
// since BlastRADIUS (CVE-2024-3596). Such an answer could be a reject
// turned into an accept by anyone on the path, so it is not used; and it
// is not ErrUnreachable either, because the server is there and may well
// have said no: a fail-open policy, which is about servers that do not
// answer, must not turn it into an accept.
var ErrUnverifiable = errors.New("RADIUS server answers without Message-Authenticator")

// Server is one RADIUS server: host:port and its shared secret.
type Server struct {
	Addr   string
	Secret []byte
}

// String names the server without its secret, for logs.
func (s Server) String() string { return s.Addr }

// LogValue keeps the secret out of structured logs even if a Server is
// logged whole.
func (s Server) LogValue() slog.Value { return slog.StringValue(s.Addr) }

// ClientConfig configures a Client. Zero durations and counts take the RFC
// 5080 §2.2.1 defaults noted on each field.
type ClientConfig struct {
	// Servers in order of preference: the first is the primary, the
	// others are tried in turn when it does not answer.
	Servers []Server
	// InitialTimeout is the first retransmission timeout (IRT, 2s).
	InitialTimeout time.Duration
	// MaxTimeout caps the doubling retransmission timeout (MRT, 16s).
	MaxTimeout time.Duration
	// MaxRetransmits is how often a request is resent to one server
	// before failing over (MRC, 3 here: RFC 5080's 5 with 30 s MRD is too
	// slow for a visitor waiting at a login page).
	MaxRetransmits int
	// MaxDuration bounds the time spent on one server (MRD, 30s).
	MaxDuration time.Duration
	// FailbackAfter is how long the client keeps using a secondary after a
	// failover before it tries the primary first again (5m).
	FailbackAfter time.Duration
	Logger        *slog.Logger
	// ProbeTimeout bounds one Status-Server probe of one server (4s):
	// a server silent that long is reported as not answering.
	ProbeTimeout time.Duration
	// OnHealth, when set, hears every change of a server's Health, from
	// real exchanges and from Probe. It is called without the client's
	// locks held and must not block for long.
	OnHealth func(Health)
}

// Client sends requests to RADIUS servers with RFC 5080 style
// retransmission (doubling timeout with ±10% jitter, bounded in count and
// duration) and fails over from one server to the next. It is safe for
// concurrent use; each exchange uses its own UDP socket, so identifiers never
// collide.
type Client struct {
	cfg ClientConfig
	log *slog.Logger

	mu       sync.Mutex
	active   int       // index of the server tried first
	failedAt time.Time // when active moved off the primary

	hmu    sync.Mutex
	health map[string]*serverHealth // by Server.Addr
}

// NewClient checks cfg and fills in defaults.
func NewClient(cfg ClientConfig) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("radius client: no servers configured")
	}
	for i, s := range cfg.Servers {
		if len(s.Secret) == 0 {
			return nil, fmt.Errorf("radius client: server %d (%s) has an empty secret", i, s.Addr)
		}
		if _, _, err := net.SplitHostPort(s.Addr); err != nil {
			return nil, fmt.Errorf("radius client: server %d address %q: %w", i, s.Addr, err)
		}
	}
	if cfg.InitialTimeout <= 0 {
		cfg.InitialTimeout = 2 * time.Second
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 16 * time.Second
	}
	if cfg.MaxRetransmits <= 0 {
		cfg.MaxRetransmits = 3
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 30 * time.Second
	}
	if cfg.FailbackAfter <= 0 {
		cfg.FailbackAfter = 5 * time.Minute
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 4 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Client{cfg: cfg, log: cfg.Logger.With("component", "radius-client"), health: map[string]*serverHealth{}}, nil
}

// timing is one retransmission schedule (RFC 5080 §2.2.1).
type timing struct {
	initial, max time.Duration
	retransmits  int
	duration     time.Duration
}

func (c *Client) timing() timing {
	return timing{c.cfg.InitialTimeout, c.cfg.MaxTimeout, c.cfg.MaxRetransmits, c.cfg.MaxDuration}
}

// probeTiming is a Status-Server probe's schedule: three tries within
// ProbeTimeout.
func (c *Client) probeTiming() timing {
	t := c.cfg.ProbeTimeout
	return timing{initial: t / 4, max: t / 2, retransmits: 2, duration: t}
}

// buildFunc makes the request for one server: User-Password depends on the
// secret, so a packet cannot be built once for all servers.
type buildFunc func(secret []byte) (*rad.Packet, error)

// exchange sends the request built by build to the servers in preference
// order and returns the first valid response. Every failure to get one ends
// in an error wrapping ErrUnreachable, also when ctx's deadline passes
// first (no server answered in the time the caller had: for a visitor
// waiting at the PIN page that is exactly "unreachable"), except when a
// server answered without the Message-Authenticator its answer needs:
// then the error wraps ErrUnverifiable. Only a cancelled ctx (the caller
// gave up) is neither.
func (c *Client) exchange(ctx context.Context, build buildFunc) (*rad.Packet, error) {
	order := c.order()
	var errs []error
	unverifiable := false
	for _, i := range order {
		srv := c.cfg.Servers[i]
		resp, signed, err := c.exchangeOne(ctx, srv, build, c.timing())
		if err == nil {
			c.observe(srv.Addr, answered(resp.Code, signed, false))
			c.succeeded(i)
			return resp, nil
		}
		if errors.Is(err, errUnsigned) {
			// The server is there and answered: a reject it may have
			// sent must not become the fail policy's accept.
			c.observe(srv.Addr, observation{problem: ProblemNoMessageAuthenticator, detail: err.Error(), access: true})
			c.log.Error("RADIUS server answers without Message-Authenticator; its answer is not used", "server", srv.Addr, "fix", ProblemNoMessageAuthenticator.Fix())
			errs = append(errs, fmt.Errorf("%s: %w", srv.Addr, err))
			unverifiable = true
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			if unverifiable {
				break
			}
			return nil, fmt.Errorf("%w: no answer from %s before the deadline: %w", ErrUnreachable, srv.Addr, ctx.Err())
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("radius exchange with %s: %w", srv.Addr, ctx.Err())
		}
		c.observe(srv.Addr, failed(err))
		c.log.Warn("RADIUS server did not answer", "server", srv.Addr, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", srv.Addr, err))
	}
	if unverifiable {
		return nil, fmt.Errorf("%w: %w", ErrUnverifiable, errors.Join(errs...))
	}
	return nil, fmt.Errorf("%w: %w", ErrUnreachable, errors.Join(errs...))
}

// order returns server indexes starting with the active one, going back to
// the primary once FailbackAfter has passed since the failover.
func (c *Client) order() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active != 0 && time.Since(c.failedAt) >= c.cfg.FailbackAfter {
		c.log.Info("trying primary RADIUS server again", "server", c.cfg.Servers[0].Addr)
		c.active = 0
	}
	n := len(c.cfg.Servers)
	out := make([]int, n)
	for k := range n {
		out[k] = (c.active + k) % n
	}
	return out
}

func (c *Client) succeeded(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i != c.active {
		c.log.Warn("RADIUS failover", "from", c.cfg.Servers[c.active].Addr, "to", c.cfg.Servers[i].Addr)
		c.active = i
		c.failedAt = time.Now()
	}
}

// jitter returns d scaled by a random factor in [0.9, 1.1] (RFC 5080 RAND).
func jitter(d time.Duration) time.Duration {
	n, err := rand.Int(rand.Reader, big.NewInt(2001))
	if err != nil {
		return d
	}
	return d + d*time.Duration(n.Int64()-1000)/10000
}

// Why exchangeOne got no usable answer from a server.
var (
	// errUnsigned: the server answered an Access-Request with a genuine
	// (Response Authenticator verified) Access-Accept or -Reject that
	// lacks Message-Authenticator.
	errUnsigned = errors.New("answered without Message-Authenticator")
	// errWrongSecret: the server answered, but no answer verified with
	// our shared secret.
	errWrongSecret = errors.New("answers do not verify with the shared secret")
	// errNoAnswer: nothing came back in time.
	errNoAnswer = errors.New("no valid response")
)

// seen is what exchangeOne saw besides a valid answer.
type seen struct {
	unsigned bool // a genuine Access-Accept/Reject without Message-Authenticator
	badAuth  bool // an answer whose Response Authenticator does not verify
}

// exchangeOne runs the retransmission loop against one server. Retransmits
// are byte-identical (same Identifier and Authenticator) so the server's
// duplicate detection works. signed reports whether the answer carried a
// valid Message-Authenticator (always so for an Access-Accept or -Reject
// answering an Access-Request; a Status-Server answer may lack it, which
// the caller judges).
//
// A genuine answer without the Message-Authenticator it needs ends the
// exchange with this server after the current retransmission timeout
// (a valid answer arriving meanwhile still wins): the server will answer
// a retransmission the same way, and the visitor should not wait out the
// whole schedule for it.
func (c *Client) exchangeOne(ctx context.Context, srv Server, build buildFunc, tm timing) (resp *rad.Packet, signed bool, err error) {
	req, err := build(srv.Secret)
	if err != nil {
		return nil, false, err
	}
	wire, err := encodeSigned(req)
	if err != nil {
		return nil, false, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", srv.Addr)
	if err != nil {
		return nil, false, fmt.Errorf("dialing: %w", err)
	}
	defer conn.Close()
	// Unblock a pending read when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()

	deadline := time.Now().Add(tm.duration)
	rt := jitter(tm.initial)
	buf := make([]byte, rad.MaxPacketLength+1)
	var sw seen
	for attempt := 0; attempt <= tm.retransmits; attempt++ {
		if _, err := conn.Write(wire); err != nil {
			// ECONNREFUSED from an earlier ICMP lands here too; keep
			// trying until the budget is spent.
			c.log.Debug("RADIUS send failed", "server", srv.Addr, "err", err)
		}
		until := time.Now().Add(rt)
		if until.After(deadline) {
			until = deadline
		}
		if resp, signed, ok := c.await(ctx, conn, until, buf, wire, req, srv, &sw); ok {
			return resp, signed, nil
		}
		if sw.unsigned {
			return nil, false, errUnsigned
		}
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		if !time.Now().Before(deadline) {
			break
		}
		// RT = 2*RTprev + RAND*RTprev, capped at MRT + RAND*MRT.
		rt = jitter(2 * rt)
		if rt > tm.max {
			rt = jitter(tm.max)
		}
	}
	if sw.badAuth {
		return nil, false, errWrongSecret
	}
	return nil, false, errNoAnswer
}

// await reads until a valid response arrives or until passes. Invalid
// packets are logged and ignored so that a forged answer cannot cut an
// exchange short; what they were is noted in sw. The loop is bounded by
// the deadline and a packet count.
func (c *Client) await(ctx context.Context, conn net.Conn, until time.Time, buf, wire []byte, req *rad.Packet, srv Server, sw *seen) (*rad.Packet, bool, bool) {
	if err := conn.SetReadDeadline(until); err != nil {
		return nil, false, false
	}
	for range 64 {
		if ctx.Err() != nil {
			return nil, false, false
		}
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, false, false
			}
			// ECONNREFUSED and the like: the server is not there
			// (yet); wait out the timer rather than spin.
			c.log.Debug("RADIUS receive failed", "server", srv.Addr, "err", err)
			if d := time.Until(until); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
			return nil, false, false
		}
		resp, signed, err := validateResponse(buf[:n], wire, req, srv.Secret)
		switch {
		case errors.Is(err, errMissingMA) && req.Code == rad.CodeStatusServer:
			// RFC 5997 lets the answer go unsigned; the caller judges.
			return resp, false, true
		case errors.Is(err, errMissingMA):
			sw.unsigned = true
			c.log.Warn("ignoring RADIUS response without Message-Authenticator", "server", srv.Addr, "code", rad.Code(buf[0]).String())
			continue
		case errors.Is(err, errResponseAuthenticator):
			sw.badAuth = true
		}
		if err != nil {
			c.log.Warn("ignoring invalid RADIUS response", "server", srv.Addr, "err", err)
			continue
		}
		return resp, signed, true
	}
	return nil, false, false
}

// answers lists which response codes may answer which request code.
var answers = map[rad.Code][]rad.Code{
	rad.CodeAccessRequest:     {rad.CodeAccessAccept, rad.CodeAccessReject, rad.CodeAccessChallenge},
	rad.CodeAccountingRequest: {rad.CodeAccountingResponse},
	// RFC 5997 §3: the authentication port answers Access-Accept, the
	// accounting port Accounting-Response.
	rad.CodeStatusServer: {rad.CodeAccessAccept, rad.CodeAccountingResponse},
}

var (
	// errMissingMA: a genuine Access-Accept, -Reject or -Challenge (its
	// Response Authenticator verified) without Message-Authenticator.
	errMissingMA = errors.New("without Message-Authenticator (BlastRADIUS protection requires one)")
	// errResponseAuthenticator: the Response Authenticator does not
	// verify: a forged answer, or a server with another shared secret.
	errResponseAuthenticator = fmt.Errorf("%w: Response Authenticator", errBadAuthenticator)
)

// validateResponse applies the package's response policy (see the package
// documentation) to b, the answer to the request whose wire form is wire.
// signed reports a valid Message-Authenticator. An answer that is genuine
// but lacks a Message-Authenticator it needs is returned parsed, with an
// error wrapping errMissingMA, so a Status-Server probe can tell a server
// that answers unsigned from one that does not answer.
func validateResponse(b, wire []byte, req *rad.Packet, secret []byte) (p *rad.Packet, signed bool, err error) {
	b, err = checkPacket(b)
	if err != nil {
		return nil, false, err
	}
	code := rad.Code(b[0])
	ok := false
	for _, want := range answers[req.Code] {
		ok = ok || code == want
	}
	if !ok {
		return nil, false, fmt.Errorf("%v does not answer %v", code, req.Code)
	}
	if b[1] != wire[1] {
		return nil, false, fmt.Errorf("identifier %d, want %d", b[1], wire[1])
	}
	if !rad.IsAuthenticResponse(b, wire, secret) {
		return nil, false, fmt.Errorf("%w of %v", errResponseAuthenticator, code)
	}
	var reqAuth [16]byte
	copy(reqAuth[:], wire[4:20])
	present, err := verifyMessageAuthenticator(b, &reqAuth, secret)
	if err != nil {
		return nil, false, fmt.Errorf("%v: %w", code, err)
	}
	p, err = rad.Parse(b, secret)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !present && code != rad.CodeAccountingResponse {
		return p, false, fmt.Errorf("%v %w", code, errMissingMA)
	}
	return p, present, nil
}
