package radius

import (
	"crypto/md5"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	rad "layeh.com/radius"
)

// Match selects sessions for a Disconnect- or CoA-Request. Every non-zero
// field must match (they are ANDed); at least one is set.
type Match struct {
	SessionID, UserName string
	MAC                 net.HardwareAddr
	IP                  netip.Addr
}

// Change carries only what a CoA-Request asked to change; nil fields stay as
// they are. Rates are in bit/s; a zero timeout removes the limit.
type Change struct {
	RateDown, RateUp            *uint64
	SessionTimeout, IdleTimeout *time.Duration
}

// Controller is the session manager as the DAS sees it.
type Controller interface {
	// Disconnect ends the matching sessions and returns how many.
	Disconnect(m Match) (int, error)
	// Change applies c to the matching live sessions and returns how many.
	Change(m Match, c Change) (int, error)
}

// ErrorCause is an RFC 5176 §3.6 Error-Cause value. A Controller may return
// one (or wrap one) to choose the NAK's cause; other errors give
// Resources-Unavailable.
type ErrorCause uint32

// Error-Cause values (RFC 5176 §3.6).
const (
	ErrorCauseUnsupportedAttribute       ErrorCause = 401
	ErrorCauseMissingAttribute           ErrorCause = 402
	ErrorCauseNASIdentificationMismatch  ErrorCause = 403
	ErrorCauseInvalidRequest             ErrorCause = 404
	ErrorCauseUnsupportedService         ErrorCause = 405
	ErrorCauseInvalidAttributeValue      ErrorCause = 407
	ErrorCauseAdministrativelyProhibited ErrorCause = 501
	ErrorCauseSessionContextNotFound     ErrorCause = 503
	ErrorCauseSessionContextNotRemovable ErrorCause = 504
	ErrorCauseResourcesUnavailable       ErrorCause = 506
)

func (e ErrorCause) Error() string { return fmt.Sprintf("RADIUS Error-Cause %d", uint32(e)) }

// DASClient is a server allowed to send Disconnect/CoA requests.
type DASClient struct {
	IP     netip.Addr
	Secret []byte
	// AllowMissingMessageAuthenticator accepts requests without a
	// Message-Authenticator from this client (one that is present is
	// still verified). Off by default.
	AllowMissingMessageAuthenticator bool
}

// DASConfig configures the Dynamic Authorization Server.
type DASConfig struct {
	// Addr is the UDP address to listen on, e.g. "198.51.100.1:3799".
	Addr       string
	Clients    []DASClient
	Controller Controller
	// NAS is compared with NAS-IP-Address, NAS-IPv6-Address and
	// NAS-Identifier in requests; a mismatch is NAKed with 403.
	NAS NAS
	// ReplayWindow: a request whose Event-Timestamp is further than this
	// from now is dropped (RFC 5176 §4.2; default 300s).
	ReplayWindow time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
	// OnRequest, when set, hears about every request from a configured
	// client: ProblemNone when it authenticated, ProblemWrongSecret when
	// its Request Authenticator did not verify, and
	// ProblemNoMessageAuthenticator when it was genuine but lacked the
	// Message-Authenticator the DAS requires (it was dropped), so the
	// operator learns why their server's Disconnects do nothing. It is
	// called from the DAS's one goroutine and must not block for long.
	OnRequest func(client netip.Addr, p Problem)
}

// DAS answers RFC 5176 Disconnect- and CoA-Requests. Requests are handled
// one at a time, in arrival order, so the Controller sees no concurrent
// calls from it. Answers are cached for 30 s and resent for a retransmitted
// request, so a retransmitted Disconnect is not NAKed as unknown.
type DAS struct {
	cfg     DASConfig
	log     *slog.Logger
	conn    *net.UDPConn
	clients map[netip.Addr]DASClient
	done    chan struct{}

	mu    sync.Mutex
	cache map[dupKey]cachedReply
}

type dupKey struct {
	src  netip.AddrPort
	id   byte
	auth [16]byte
}

type cachedReply struct {
	wire []byte
	at   time.Time
}

const (
	dupTTL     = 30 * time.Second
	dupMaxSize = 1024
)

// ListenDAS binds the UDP socket and starts serving.
func ListenDAS(cfg DASConfig) (*DAS, error) {
	if cfg.Controller == nil {
		return nil, errors.New("radius DAS: no Controller")
	}
	clients := make(map[netip.Addr]DASClient, len(cfg.Clients))
	for _, c := range cfg.Clients {
		if !c.IP.IsValid() || len(c.Secret) == 0 {
			return nil, fmt.Errorf("radius DAS: client %v needs an IP and a secret", c.IP)
		}
		clients[c.IP.Unmap()] = c
	}
	if cfg.ReplayWindow <= 0 {
		cfg.ReplayWindow = 300 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("radius DAS: resolving %q: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("radius DAS: listening on %q: %w", cfg.Addr, err)
	}
	d := &DAS{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "radius-das"),
		conn:    conn,
		clients: clients,
		done:    make(chan struct{}),
		cache:   make(map[dupKey]cachedReply),
	}
	go d.serve()
	d.log.Info("dynamic authorization server listening", "addr", conn.LocalAddr().String(), "clients", len(clients))
	return d, nil
}

// Addr is the bound address (useful with port 0).
func (d *DAS) Addr() net.Addr { return d.conn.LocalAddr() }

// Close stops the server and waits for it.
func (d *DAS) Close() error {
	err := d.conn.Close()
	<-d.done
	if err != nil {
		return fmt.Errorf("radius DAS: closing: %w", err)
	}
	return nil
}

func (d *DAS) serve() {
	defer close(d.done)
	buf := make([]byte, rad.MaxPacketLength+1)
	for {
		n, src, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Warn("DAS read", "err", err)
			continue
		}
		reply := d.handle(buf[:n], src)
		if reply != nil {
			if _, err := d.conn.WriteToUDPAddrPort(reply, src); err != nil {
				d.log.Warn("DAS reply", "to", src.String(), "err", err)
			}
		}
	}
}

// handle processes one datagram from src and returns the reply, or nil to
// drop it silently.
func (d *DAS) handle(b []byte, src netip.AddrPort) []byte {
	client, ok := d.clients[src.Addr().Unmap()]
	if !ok {
		d.log.Debug("DAS request from unknown client dropped", "from", src.Addr().String())
		return nil
	}
	b, err := authenticateDASRequest(b, client)
	if d.cfg.OnRequest != nil {
		switch {
		case err == nil:
			d.cfg.OnRequest(client.IP, ProblemNone)
		case errors.Is(err, errDASUnsigned):
			d.cfg.OnRequest(client.IP, ProblemNoMessageAuthenticator)
		case errors.Is(err, errDASRequestAuthenticator):
			d.cfg.OnRequest(client.IP, ProblemWrongSecret)
		}
	}
	if errors.Is(err, errDASUnsigned) {
		d.log.Error("DAS request without Message-Authenticator dropped", "from", src.Addr().String(),
			"fix", "the server sending it must add Message-Authenticator: with radclient, a line `Message-Authenticator = 0x00`; in FreeRADIUS's `update coa` or `update disconnect` list, `&Message-Authenticator := 0x00`")
		return nil
	}
	if err != nil {
		d.log.Warn("DAS request dropped", "from", src.Addr().String(), "err", err)
		return nil
	}
	key := dupKey{src: src, id: b[1]}
	copy(key.auth[:], b[4:20])
	now := d.cfg.Now()
	if w := d.cached(key, now); w != nil {
		d.log.Debug("DAS duplicate request, resending answer", "from", src.String())
		return w
	}
	req, cause := decodeDASRequest(b)
	if cause == 0 {
		if !req.eventTime.IsZero() {
			if skew := now.Sub(req.eventTime); skew > d.cfg.ReplayWindow || skew < -d.cfg.ReplayWindow {
				d.log.Warn("DAS request outside the Event-Timestamp window dropped", "from", src.Addr().String(), "skew", skew)
				return nil
			}
		}
		cause = d.checkNAS(req)
	}
	if cause == 0 {
		cause = d.apply(req)
	}
	wire, err := d.reply(b, client.Secret, req, cause)
	if err != nil {
		d.log.Error("encoding DAS reply", "err", err)
		return nil
	}
	d.remember(key, wire, now)
	return wire
}

// Why authenticateDASRequest refused a request from a known client.
var (
	errDASRequestAuthenticator = fmt.Errorf("%w: Request Authenticator", errBadAuthenticator)
	errDASUnsigned             = errors.New("without Message-Authenticator")
)

// authenticateDASRequest checks the packet's structure, code, Request
// Authenticator and Message-Authenticator against the client's secret.
func authenticateDASRequest(b []byte, client DASClient) ([]byte, error) {
	b, err := checkPacket(b)
	if err != nil {
		return nil, err
	}
	code := rad.Code(b[0])
	if code != rad.CodeDisconnectRequest && code != rad.CodeCoARequest {
		return nil, fmt.Errorf("unexpected %v", code)
	}
	if !isAuthenticRequest(b, client.Secret) {
		return nil, fmt.Errorf("%w of %v", errDASRequestAuthenticator, code)
	}
	var zero [16]byte
	present, err := verifyMessageAuthenticator(b, &zero, client.Secret)
	if err != nil {
		return nil, err
	}
	if !present && !client.AllowMissingMessageAuthenticator {
		return nil, fmt.Errorf("%v %w", code, errDASUnsigned)
	}
	return b, nil
}

// isAuthenticRequest checks the Request Authenticator of a
// Disconnect/CoA-Request, MD5(Code+Identifier+Length+16 zero octets+
// Attributes+Secret) (RFC 5176 §2.3), in constant time.
func isAuthenticRequest(b, secret []byte) bool {
	h := md5.New()
	h.Write(b[:4])
	var zero [16]byte
	h.Write(zero[:])
	h.Write(b[20:])
	h.Write(secret)
	return subtle.ConstantTimeCompare(h.Sum(nil), b[4:20]) == 1
}

// dasRequest is a decoded Disconnect- or CoA-Request.
type dasRequest struct {
	code        rad.Code
	match       Match
	change      Change
	hasChange   bool
	eventTime   time.Time
	proxyStates [][]byte
	nasIP       netip.Addr
	nasIPv6     netip.Addr
	nasID       string
	hasNASID    bool
}

// decodeDASRequest decodes an authenticated request strictly. A non-zero
// cause is the Error-Cause to NAK with; req.proxyStates is filled even then
// so the NAK can echo them.
func decodeDASRequest(b []byte) (req dasRequest, cause ErrorCause) {
	req.code = rad.Code(b[0])
	var r rates
	seen := map[rad.Type]bool{}
	once := func(t rad.Type) bool {
		if seen[t] {
			return false
		}
		seen[t] = true
		return true
	}
	setCause := func(c ErrorCause) {
		// The first problem found is reported.
		if cause == 0 {
			cause = c
		}
	}
	err := walkAttrs(b[20:], func(t rad.Type, _ int, v []byte) error {
		var err error
		switch t {
		case attrProxyState:
			req.proxyStates = append(req.proxyStates, append([]byte(nil), v...))
			return nil
		case attrMessageAuthenticator, attrState, attrCalledStationID:
			// Verified already / opaque / identifies the NAS port,
			// which a gateway with one radio group has no use for.
			return nil
		}
		if t != attrVendorSpecific && !once(t) {
			setCause(ErrorCauseInvalidRequest)
			return nil
		}
		switch t {
		case attrUserName:
			req.match.UserName, err = textAttr(v, t)
		case attrAcctSessionID:
			req.match.SessionID, err = textAttr(v, t)
		case attrCallingStationID:
			var s string
			if s, err = textAttr(v, t); err == nil {
				if req.match.MAC, err = parseMAC(s); err != nil {
					setCause(ErrorCauseInvalidAttributeValue)
					return nil
				}
			}
		case attrFramedIPAddress:
			req.match.IP, err = addrAttr(v, t, 4)
		case attrFramedIPv6Address:
			req.match.IP, err = addrAttr(v, t, 16)
			if seen[attrFramedIPAddress] {
				setCause(ErrorCauseInvalidRequest)
			}
		case attrNASIPAddress:
			req.nasIP, err = addrAttr(v, t, 4)
		case attrNASIPv6Address:
			req.nasIPv6, err = addrAttr(v, t, 16)
		case attrNASIdentifier:
			req.nasID, err = textAttr(v, t)
			req.hasNASID = true
		case attrEventTimestamp:
			var s uint32
			s, err = uint32Attr(v, t)
			req.eventTime = time.Unix(int64(s), 0)
		case attrSessionTimeout, attrIdleTimeout:
			if req.code != rad.CodeCoARequest {
				setCause(ErrorCauseUnsupportedAttribute)
				return nil
			}
			var s uint32
			s, err = uint32Attr(v, t)
			dur := time.Duration(s) * time.Second
			if t == attrSessionTimeout {
				req.change.SessionTimeout = &dur
			} else {
				req.change.IdleTimeout = &dur
			}
			req.hasChange = true
		case attrVendorSpecific:
			if len(v) >= 4 && !knownVendor(v) {
				setCause(ErrorCauseUnsupportedAttribute)
				return nil
			}
			var subs []vsa
			if subs, err = parseVSA(v); err != nil {
				break
			}
			for _, s := range subs {
				known, err := r.add(s)
				switch {
				case !known || req.code != rad.CodeCoARequest:
					setCause(ErrorCauseUnsupportedAttribute)
				case err != nil:
					setCause(ErrorCauseInvalidRequest)
				default:
					req.hasChange = true
				}
			}
		case attrServiceType:
			// Authorize-Only would require the NAS to send an
			// Access-Request on the server's behalf; not supported.
			setCause(ErrorCauseUnsupportedService)
		default:
			setCause(ErrorCauseUnsupportedAttribute)
		}
		if err != nil {
			setCause(ErrorCauseInvalidRequest)
		}
		return nil
	})
	if err != nil {
		// checkPacket walked the same bytes, so this cannot happen.
		return req, ErrorCauseInvalidRequest
	}
	req.change.RateDown = r.down()
	req.change.RateUp = r.up()
	if cause != 0 {
		return req, cause
	}
	m := req.match
	if m.SessionID == "" && m.UserName == "" && m.MAC == nil && !m.IP.IsValid() {
		return req, ErrorCauseMissingAttribute
	}
	if req.code == rad.CodeCoARequest && !req.hasChange {
		return req, ErrorCauseMissingAttribute
	}
	return req, 0
}

// checkNAS compares the NAS identification attributes with ours.
func (d *DAS) checkNAS(req dasRequest) ErrorCause {
	nas := d.cfg.NAS
	if req.nasIP.IsValid() && req.nasIP != nas.IP.Unmap() {
		return ErrorCauseNASIdentificationMismatch
	}
	if req.nasIPv6.IsValid() && req.nasIPv6 != nas.IP {
		return ErrorCauseNASIdentificationMismatch
	}
	if req.hasNASID && req.nasID != nas.Identifier {
		return ErrorCauseNASIdentificationMismatch
	}
	return 0
}

// apply hands the request to the Controller.
func (d *DAS) apply(req dasRequest) ErrorCause {
	var n int
	var err error
	if req.code == rad.CodeDisconnectRequest {
		n, err = d.cfg.Controller.Disconnect(req.match)
	} else {
		n, err = d.cfg.Controller.Change(req.match, req.change)
	}
	d.log.Info("DAS request", "code", req.code.String(), "session_id", req.match.SessionID, "sessions", n, "err", err)
	var ec ErrorCause
	switch {
	case errors.As(err, &ec):
		return ec
	case err != nil:
		return ErrorCauseResourcesUnavailable
	case n == 0:
		return ErrorCauseSessionContextNotFound
	}
	return 0
}

// reply builds the signed ACK or NAK (with Error-Cause), echoing Proxy-State
// in order (RFC 5176 §3).
func (d *DAS) reply(b []byte, secret []byte, req dasRequest, cause ErrorCause) ([]byte, error) {
	code := rad.Code(b[0]) + 1 // Disconnect-ACK 41, CoA-ACK 44
	if cause != 0 {
		code++ // Disconnect-NAK 42, CoA-NAK 45
	}
	p := &rad.Packet{Code: code, Identifier: b[1], Secret: secret}
	copy(p.Authenticator[:], b[4:20])
	if cause != 0 {
		p.Add(attrErrorCause, rad.NewInteger(uint32(cause)))
	}
	for _, ps := range req.proxyStates {
		p.Add(attrProxyState, ps)
	}
	return encodeSigned(p)
}

func (d *DAS) cached(k dupKey, now time.Time) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.cache[k]
	if !ok || now.Sub(c.at) > dupTTL {
		return nil
	}
	return c.wire
}

// remember caches a reply, evicting expired entries, and the oldest when the
// cache is still full, so memory stays bounded under a flood.
func (d *DAS) remember(k dupKey, wire []byte, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.cache) >= dupMaxSize {
		var oldestKey dupKey
		var oldest time.Time
		for ck, c := range d.cache {
			if now.Sub(c.at) > dupTTL {
				delete(d.cache, ck)
				continue
			}
			if oldest.IsZero() || c.at.Before(oldest) {
				oldest, oldestKey = c.at, ck
			}
		}
		if len(d.cache) >= dupMaxSize {
			delete(d.cache, oldestKey)
		}
	}
	d.cache[k] = cachedReply{wire: wire, at: now}
}
