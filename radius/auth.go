package radius

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	rad "layeh.com/radius"
)

// NAS describes this gateway as the RADIUS server sees it.
type NAS struct {
	// Identifier is sent as NAS-Identifier.
	Identifier string
	// IP is sent as NAS-IP-Address (IPv4) or NAS-IPv6-Address.
	IP netip.Addr
	// CalledStationID is the gateway MAC as AA-BB-CC-DD-EE-FF, optionally
	// followed by ":SSID" (RFC 3580 §3.20).
	CalledStationID string
}

// attrs returns the NAS identification attributes.
func (n NAS) attrs() (rad.Attributes, error) {
	var a rad.Attributes
	if n.Identifier != "" {
		if err := addText(&a, attrNASIdentifier, n.Identifier); err != nil {
			return nil, err
		}
	}
	switch {
	case n.IP.Is4():
		b := n.IP.As4()
		a.Add(attrNASIPAddress, b[:])
	case n.IP.Is6():
		b := n.IP.As16()
		a.Add(attrNASIPv6Address, b[:])
	}
	if n.CalledStationID != "" {
		if err := addText(&a, attrCalledStationID, n.CalledStationID); err != nil {
			return nil, err
		}
	}
	if len(a) == 0 {
		return nil, errors.New("NAS has neither Identifier nor IP (RFC 2865 needs one)")
	}
	return a, nil
}

// addText adds a string attribute, refusing empty or over-long values
// instead of letting them be silently dropped by the encoder.
func addText(a *rad.Attributes, t rad.Type, s string) error {
	if len(s) == 0 || len(s) > 253 {
		return fmt.Errorf("attribute %d: %d octets, want 1 to 253", t, len(s))
	}
	a.Add(t, rad.Attribute(s))
	return nil
}

// addFramedIP adds Framed-IP-Address for IPv4 or Framed-IPv6-Address
// (RFC 6911) for IPv6; an invalid address adds nothing.
func addFramedIP(a *rad.Attributes, ip netip.Addr) {
	switch {
	case ip.Is4() || ip.Is4In6():
		b := ip.Unmap().As4()
		a.Add(attrFramedIPAddress, b[:])
	case ip.Is6():
		b := ip.As16()
		a.Add(attrFramedIPv6Address, b[:])
	}
}

// Decision is the central server's answer about one visitor. Zero durations
// and rates mean the server set no limit.
type Decision struct {
	Reject          bool
	ReplyMessage    string
	SessionTimeout  time.Duration
	IdleTimeout     time.Duration
	InterimInterval time.Duration
	// RateDown and RateUp are in bit/s, from WISPr-Bandwidth-Max-* or,
	// when WISPr is absent, ChilliSpot-Bandwidth-Max-* × 1000.
	RateDown, RateUp uint64
	// Class is the first Class attribute, to echo in accounting.
	Class []byte
}

// AuthConfig configures an Authorizer.
type AuthConfig struct {
	// Client talks to the authentication servers (port 1812).
	Client *Client
	NAS    NAS
	// Password is the User-Password sent for every visitor. The visitor
	// has already proven the phone number with the SMS PIN, which never
	// leaves the gateway; the central server authorises the number, not a
	// secret. Empty means the phone number itself is sent as the password,
	// which suits users files keyed on Cleartext-Password := number.
	Password string
	Logger   *slog.Logger
}

// Authorizer asks the central server whether a visitor may go online.
type Authorizer struct {
	cfg AuthConfig
	log *slog.Logger
}

// NewAuthorizer checks cfg.
func NewAuthorizer(cfg AuthConfig) (*Authorizer, error) {
	if cfg.Client == nil {
		return nil, errors.New("radius authorizer: no client")
	}
	if _, err := cfg.NAS.attrs(); err != nil {
		return nil, fmt.Errorf("radius authorizer: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Authorizer{cfg: cfg, log: cfg.Logger.With("component", "radius-auth")}, nil
}

// Authorize sends an Access-Request for the visitor. A reject is a Decision
// with Reject set and a nil error. An error wrapping ErrUnreachable means no
// server answered validly, and the caller applies its fail-open/closed
// policy; any other error means a server answered with something unusable
// (one without Message-Authenticator: ErrUnverifiable; Access-Challenge,
// malformed attributes) and should be treated as a reject. If ctx ends
// first, the error wraps ctx.Err() instead.
func (a *Authorizer) Authorize(ctx context.Context, phone string, mac net.HardwareAddr, ip netip.Addr) (Decision, error) {
	nasAttrs, err := a.cfg.NAS.attrs()
	if err != nil {
		return Decision{}, err
	}
	password := a.cfg.Password
	if password == "" {
		password = phone
	}
	build := func(secret []byte) (*rad.Packet, error) {
		p := rad.New(rad.CodeAccessRequest, secret)
		if err := addText(&p.Attributes, attrUserName, phone); err != nil {
			return nil, fmt.Errorf("phone as User-Name: %w", err)
		}
		pw, err := rad.NewUserPassword([]byte(password), secret, p.Authenticator[:])
		if err != nil {
			return nil, fmt.Errorf("encrypting User-Password: %w", err)
		}
		p.Add(attrUserPassword, pw)
		p.Add(attrServiceType, rad.NewInteger(serviceTypeLoginUser))
		p.Add(attrNASPortType, rad.NewInteger(nasPortTypeWireless))
		if len(mac) > 0 {
			p.Add(attrCallingStationID, rad.Attribute(formatMAC(mac)))
		}
		addFramedIP(&p.Attributes, ip)
		p.Attributes = append(p.Attributes, nasAttrs...)
		return p, nil
	}
	resp, err := a.cfg.Client.exchange(ctx, build)
	if err != nil {
		return Decision{}, fmt.Errorf("authorizing visitor: %w", err)
	}
	switch resp.Code {
	case rad.CodeAccessAccept, rad.CodeAccessReject:
	default:
		return Decision{}, fmt.Errorf("authorizing visitor: unsupported %v", resp.Code)
	}
	d, err := parseDecision(resp.Attributes)
	if err != nil {
		return Decision{}, fmt.Errorf("authorizing visitor: parsing %v: %w", resp.Code, err)
	}
	d.Reject = resp.Code == rad.CodeAccessReject
	a.log.Info("RADIUS decision", "reject", d.Reject, "session_timeout", d.SessionTimeout, "rate_down", d.RateDown, "rate_up", d.RateUp)
	return d, nil
}

// parseDecision reads the reply attributes strictly: a known attribute with
// the wrong length is an error, not a silently missing limit.
func parseDecision(attrs rad.Attributes) (Decision, error) {
	var d Decision
	var r rates
	seconds := func(v []byte, t rad.Type) (time.Duration, error) {
		n, err := uint32Attr(v, t)
		return time.Duration(n) * time.Second, err
	}
	for _, avp := range attrs {
		v := []byte(avp.Attribute)
		var err error
		switch avp.Type {
		case attrReplyMessage:
			// Several Reply-Message attributes are concatenated (RFC 2865 §5.18).
			d.ReplyMessage += string(v)
		case attrSessionTimeout:
			d.SessionTimeout, err = seconds(v, avp.Type)
		case attrIdleTimeout:
			d.IdleTimeout, err = seconds(v, avp.Type)
		case attrAcctInterimInterval:
			d.InterimInterval, err = seconds(v, avp.Type)
		case attrClass:
			if d.Class == nil {
				if len(v) == 0 {
					err = fmt.Errorf("%w: empty Class", ErrMalformed)
				}
				d.Class = append([]byte(nil), v...)
			}
		case attrVendorSpecific:
			if len(v) >= 4 && !knownVendor(v) {
				// Other vendors' attributes are not ours to judge; some
				// do not even use the sub-attribute format.
				continue
			}
			var subs []vsa
			subs, err = parseVSA(v)
			for _, s := range subs {
				if err == nil {
					_, err = r.add(s)
				}
			}
		}
		if err != nil {
			return Decision{}, err
		}
	}
	if p := r.down(); p != nil {
		d.RateDown = *p
	}
	if p := r.up(); p != nil {
		d.RateUp = *p
	}
	return d, nil
}

// MaxVisitorText bounds, in characters, a server's Reply-Message as a
// visitor sees it: a sentence or two, never a page.
const MaxVisitorText = 200

// VisitorText makes a server's Reply-Message fit to show a visitor next
// to the portal's own bilingual text: invalid UTF-8 is dropped, control
// characters (line breaks included) become spaces, bidirectional
// embedding, override and isolate characters are removed (they could
// reorder the portal's text around the message), runs of white space
// become one space, and what is left is cut to MaxVisitorText
// characters, with an ellipsis when cut. HTML escaping is the page
// template's job; this keeps the text itself sane.
func VisitorText(s string) string {
	out := make([]rune, 0, min(len(s), 4*MaxVisitorText))
	space := false
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				continue // an invalid byte
			}
		}
		switch {
		case unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029':
			space = len(out) > 0
			continue
		case r == '\u200c' || r == '\u200d' || r == '\u200e' || r == '\u200f':
			// The zero-width (non-)joiners, which Arabic and emoji
			// need, and LRM/RLM, which only mark a direction.
		case unicode.Is(unicode.Bidi_Control, r) || unicode.In(r, unicode.Cf):
			// Embeddings, overrides and isolates would reach past the
			// message into the portal's text; other invisible format
			// characters have no business in it either.
			continue
		}
		if space {
			out = append(out, ' ')
			space = false
		}
		out = append(out, r)
	}
	if len(out) > MaxVisitorText {
		out = append([]rune(strings.TrimRight(string(out[:MaxVisitorText-1]), " ")), '…')
	}
	return string(out)
}
