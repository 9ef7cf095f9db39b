package radius

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	rad "layeh.com/radius"
)

// Attribute types used by the package (RFC 2865, 2866, 2869, 3162, 5176,
// 6911). They are spelled out here rather than taken from layeh's generated
// packages so that every attribute the gateway touches is visible in one
// place.
const (
	attrUserName             rad.Type = 1
	attrUserPassword         rad.Type = 2
	attrNASIPAddress         rad.Type = 4
	attrServiceType          rad.Type = 6
	attrFramedIPAddress      rad.Type = 8
	attrReplyMessage         rad.Type = 18
	attrState                rad.Type = 24
	attrClass                rad.Type = 25
	attrVendorSpecific       rad.Type = 26
	attrSessionTimeout       rad.Type = 27
	attrIdleTimeout          rad.Type = 28
	attrCalledStationID      rad.Type = 30
	attrCallingStationID     rad.Type = 31
	attrNASIdentifier        rad.Type = 32
	attrProxyState           rad.Type = 33
	attrAcctStatusType       rad.Type = 40
	attrAcctDelayTime        rad.Type = 41
	attrAcctInputOctets      rad.Type = 42
	attrAcctOutputOctets     rad.Type = 43
	attrAcctSessionID        rad.Type = 44
	attrAcctSessionTime      rad.Type = 46
	attrAcctInputPackets     rad.Type = 47
	attrAcctOutputPackets    rad.Type = 48
	attrAcctTerminateCause   rad.Type = 49
	attrAcctInputGigawords   rad.Type = 52
	attrAcctOutputGigawords  rad.Type = 53
	attrEventTimestamp       rad.Type = 55
	attrNASPortType          rad.Type = 61
	attrMessageAuthenticator rad.Type = 80
	attrAcctInterimInterval  rad.Type = 85
	attrNASIPv6Address       rad.Type = 95
	attrErrorCause           rad.Type = 101
	attrFramedIPv6Address    rad.Type = 168
)

// Vendor-specific attributes the gateway understands.
const (
	vendorWISPr        = 14122
	wisprBandwidthUp   = 7 // bit/s
	wisprBandwidthDown = 8 // bit/s

	vendorChilliSpot        = 14559
	chilliBandwidthUp       = 4 // kbit/s
	chilliBandwidthDown     = 5 // kbit/s
	nasPortTypeWireless     = 19
	serviceTypeLoginUser    = 1
	messageAuthenticatorLen = 16
)

// ErrMalformed reports a packet or attribute that breaks the wire format.
var ErrMalformed = errors.New("malformed RADIUS packet")

// errBadAuthenticator reports a packet whose authenticator or
// Message-Authenticator does not verify.
var errBadAuthenticator = errors.New("RADIUS authenticator mismatch")

// checkPacket validates the header and walks every attribute strictly (each
// at least 2 octets long, none crossing the end). It returns the packet cut
// to its Length field: octets past it are padding (RFC 2865 §3).
func checkPacket(b []byte) ([]byte, error) {
	if len(b) < 20 {
		return nil, fmt.Errorf("%w: %d octets, need at least 20", ErrMalformed, len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < 20 || n > rad.MaxPacketLength || n > len(b) {
		return nil, fmt.Errorf("%w: length field %d with %d octets received", ErrMalformed, n, len(b))
	}
	b = b[:n]
	if err := walkAttrs(b[20:], func(rad.Type, int, []byte) error { return nil }); err != nil {
		return nil, err
	}
	return b, nil
}

// walkAttrs calls fn for each attribute in attrs with its type, offset within
// attrs and value, and fails on the first malformed length.
func walkAttrs(attrs []byte, fn func(t rad.Type, off int, v []byte) error) error {
	for off := 0; off < len(attrs); {
		if len(attrs)-off < 2 {
			return fmt.Errorf("%w: truncated attribute header at offset %d", ErrMalformed, off)
		}
		l := int(attrs[off+1])
		if l < 2 || off+l > len(attrs) {
			return fmt.Errorf("%w: attribute %d at offset %d has length %d", ErrMalformed, attrs[off], off, l)
		}
		if err := fn(rad.Type(attrs[off]), off, attrs[off+2:off+l]); err != nil {
			return err
		}
		off += l
	}
	return nil
}

// findMessageAuthenticator returns the offset in b of the single
// Message-Authenticator value, or -1 when there is none. Two of them, or one
// of the wrong length, make the packet malformed.
func findMessageAuthenticator(b []byte) (int, error) {
	pos := -1
	err := walkAttrs(b[20:], func(t rad.Type, off int, v []byte) error {
		if t != attrMessageAuthenticator {
			return nil
		}
		if len(v) != messageAuthenticatorLen {
			return fmt.Errorf("%w: Message-Authenticator of %d octets", ErrMalformed, len(v))
		}
		if pos >= 0 {
			return fmt.Errorf("%w: more than one Message-Authenticator", ErrMalformed)
		}
		pos = 20 + off + 2
		return nil
	})
	if err != nil {
		return -1, err
	}
	return pos, nil
}

// messageAuthenticator computes HMAC-MD5 over b with the Authenticator field
// replaced by auth and the Message-Authenticator value (at pos) zeroed, as
// RFC 3579 §3.2 and RFC 5176 §3.3 define it.
func messageAuthenticator(b []byte, pos int, auth *[16]byte, secret []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	copy(c[4:20], auth[:])
	clear(c[pos : pos+messageAuthenticatorLen])
	m := hmac.New(md5.New, secret)
	m.Write(c)
	return m.Sum(nil)
}

// verifyMessageAuthenticator checks the Message-Authenticator of b if there
// is one. auth is what the Authenticator field counts as: the request's own
// for Access-Request, zeros for Accounting/CoA/Disconnect-Request, the
// request's for any response. present reports whether one was found.
func verifyMessageAuthenticator(b []byte, auth *[16]byte, secret []byte) (present bool, err error) {
	pos, err := findMessageAuthenticator(b)
	if err != nil {
		return false, err
	}
	if pos < 0 {
		return false, nil
	}
	want := messageAuthenticator(b, pos, auth, secret)
	if !hmac.Equal(want, b[pos:pos+messageAuthenticatorLen]) {
		return true, fmt.Errorf("%w: Message-Authenticator", errBadAuthenticator)
	}
	return true, nil
}

// encodeSigned puts a Message-Authenticator first in p, computes it and then
// the packet's Authenticator field (layeh's Encode), returning the wire form.
// Responses must have been made with p.Response so that p.Authenticator holds
// the request's authenticator.
func encodeSigned(p *rad.Packet) ([]byte, error) {
	p.Attributes.Del(attrMessageAuthenticator)
	p.Attributes = append(rad.Attributes{{Type: attrMessageAuthenticator, Attribute: make([]byte, messageAuthenticatorLen)}}, p.Attributes...)
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding %v: %w", p.Code, err)
	}
	var auth [16]byte
	switch p.Code {
	case rad.CodeAccountingRequest, rad.CodeDisconnectRequest, rad.CodeCoARequest:
		// Computed over a zero Request Authenticator (RFC 5176 §3.3).
	default:
		auth = p.Authenticator
	}
	copy(p.Attributes[0].Attribute, messageAuthenticator(b, 22, &auth, p.Secret))
	out, err := p.Encode()
	if err != nil {
		return nil, fmt.Errorf("encoding %v: %w", p.Code, err)
	}
	return out, nil
}

// formatMAC renders a MAC the way RFC 3580 §3.21 recommends for
// Calling-Station-Id: upper-case hex pairs separated by dashes.
// CalledStationID is the Called-Station-Id a gateway sends, as
// CoovaChilli does: its LAN MAC as AA-BB-CC-DD-EE-FF, followed by
// configured when that starts with ':' (":ParkWiFi" names the SSID). Any
// other non-empty configured value is sent as it is. Without a MAC the
// attribute is left out ("").
func CalledStationID(gateway net.HardwareAddr, configured string) string {
	if configured != "" && !strings.HasPrefix(configured, ":") {
		return configured
	}
	if len(gateway) == 0 {
		return ""
	}
	return formatMAC(gateway) + configured
}

func formatMAC(mac net.HardwareAddr) string {
	var sb strings.Builder
	for i, c := range mac {
		if i > 0 {
			sb.WriteByte('-')
		}
		fmt.Fprintf(&sb, "%02X", c)
	}
	return sb.String()
}

// parseMAC accepts the Calling-Station-Id spellings seen in the field:
// AA-BB-CC-DD-EE-FF, aa:bb:cc:dd:ee:ff, aabb.ccdd.eeff and aabbccddeeff.
func parseMAC(s string) (net.HardwareAddr, error) {
	if len(s) == 12 {
		var b strings.Builder
		for i := 0; i < 12; i += 2 {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(s[i : i+2])
		}
		s = b.String()
	}
	mac, err := net.ParseMAC(strings.ReplaceAll(s, "-", ":"))
	if err != nil {
		return nil, fmt.Errorf("parsing MAC %q: %w", s, err)
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("parsing MAC %q: not an EUI-48", s)
	}
	return mac, nil
}

// uint32Attr decodes an RFC 2865 integer strictly: exactly four octets.
func uint32Attr(v []byte, t rad.Type) (uint32, error) {
	if len(v) != 4 {
		return 0, fmt.Errorf("%w: attribute %d is %d octets, want 4", ErrMalformed, t, len(v))
	}
	return binary.BigEndian.Uint32(v), nil
}

// textAttr checks an RFC 2865 text/string attribute: 1 to 253 octets.
func textAttr(v []byte, t rad.Type) (string, error) {
	if len(v) == 0 {
		return "", fmt.Errorf("%w: attribute %d is empty", ErrMalformed, t)
	}
	return string(v), nil
}

// vsa is one vendor sub-attribute in the RFC 2865 §5.26 recommended format.
type vsa struct {
	vendor uint32
	typ    byte
	value  []byte
}

// parseVSA splits a Vendor-Specific value into its sub-attributes, strictly.
func parseVSA(v []byte) ([]vsa, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("%w: Vendor-Specific of %d octets", ErrMalformed, len(v))
	}
	vendor := binary.BigEndian.Uint32(v[:4])
	var out []vsa
	err := walkAttrs(v[4:], func(t rad.Type, _ int, val []byte) error {
		out = append(out, vsa{vendor: vendor, typ: byte(t), value: val})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vendor %d: %w", vendor, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: Vendor-Specific %d without sub-attributes", ErrMalformed, vendor)
	}
	return out, nil
}

// knownVendor reports whether a Vendor-Specific value belongs to a vendor
// whose attributes the gateway parses (WISPr, ChilliSpot).
func knownVendor(v []byte) bool {
	if len(v) < 4 {
		return false
	}
	id := binary.BigEndian.Uint32(v[:4])
	return id == vendorWISPr || id == vendorChilliSpot
}

// newVSA encodes one vendor sub-attribute.
func newVSA(vendor uint32, typ byte, value []byte) rad.Attribute {
	b := make([]byte, 6+len(value))
	binary.BigEndian.PutUint32(b, vendor)
	b[4] = typ
	b[5] = byte(2 + len(value))
	copy(b[6:], value)
	return b
}

// rates collects bandwidth limits from WISPr (bit/s) and ChilliSpot
// (kbit/s) vendor attributes. When both vendors give the same direction,
// WISPr wins: it is the more precise unit.
type rates struct {
	wisprDown, wisprUp, chilliDown, chilliUp *uint64
}

// add records one sub-attribute. known is false for a vendor attribute the
// gateway does not implement.
func (r *rates) add(a vsa) (known bool, err error) {
	var dst **uint64
	mult := uint64(1)
	switch {
	case a.vendor == vendorWISPr && a.typ == wisprBandwidthDown:
		dst = &r.wisprDown
	case a.vendor == vendorWISPr && a.typ == wisprBandwidthUp:
		dst = &r.wisprUp
	case a.vendor == vendorChilliSpot && a.typ == chilliBandwidthDown:
		dst, mult = &r.chilliDown, 1000
	case a.vendor == vendorChilliSpot && a.typ == chilliBandwidthUp:
		dst, mult = &r.chilliUp, 1000
	default:
		return false, nil
	}
	n, err := uint32Attr(a.value, rad.Type(a.typ))
	if err != nil {
		return true, fmt.Errorf("vendor %d: %w", a.vendor, err)
	}
	if *dst != nil {
		return true, fmt.Errorf("%w: vendor %d attribute %d repeated", ErrMalformed, a.vendor, a.typ)
	}
	v := uint64(n) * mult
	*dst = &v
	return true, nil
}

func (r *rates) down() *uint64 { return firstNonNil(r.wisprDown, r.chilliDown) }
func (r *rates) up() *uint64   { return firstNonNil(r.wisprUp, r.chilliUp) }

func firstNonNil(a, b *uint64) *uint64 {
	if a != nil {
		return a
	}
	return b
}

// addrAttr decodes an IPv4 (4 octets) or IPv6 (16 octets) address attribute.
func addrAttr(v []byte, t rad.Type, size int) (netip.Addr, error) {
	if len(v) != size {
		return netip.Addr{}, fmt.Errorf("%w: attribute %d is %d octets, want %d", ErrMalformed, t, len(v), size)
	}
	a, _ := netip.AddrFromSlice(v)
	return a, nil
}

// unixSeconds converts t to an RFC 2869 Event-Timestamp.
func unixSeconds(t time.Time) rad.Attribute {
	s := t.Unix()
	if s < 0 {
		s = 0
	}
	return rad.NewInteger(uint32(s))
}
