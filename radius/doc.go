// Package radius makes the park gateway a standard RADIUS NAS: it asks a
// central server whether a visitor may get online (Authorizer), reports
// sessions to it (Accounting, RFC 2866, through a durable bbolt queue) and
// accepts Disconnect and CoA requests from it (DAS, RFC 5176).
//
// The package builds packets with layeh.com/radius but does its own
// transport, because that library neither adds nor checks the
// Message-Authenticator attribute, and since BlastRADIUS (CVE-2024-3596) an
// Access-Accept without one can be forged by anyone on the path.
//
// # Message-Authenticator policy
//
// Every packet this package sends — Access-Request, Accounting-Request,
// Disconnect/CoA-ACK and -NAK — carries a Message-Authenticator (attribute
// 80, HMAC-MD5 keyed with the shared secret) as its first attribute, where
// BlastRADIUS mitigations want it.
//
// Responses received by the Client are checked in this order, and a response
// failing any check is ignored as if it had never arrived (the request is
// retransmitted and eventually fails over), so a spoofed packet cannot end an
// exchange:
//
//   - it comes from the server's address (connected socket), has the
//     request's Identifier and a code that answers the request's code;
//   - its Response Authenticator is correct (RFC 2865/2866);
//   - Access-Accept, Access-Reject and Access-Challenge MUST contain exactly
//     one valid Message-Authenticator; there is no switch to turn this off.
//     A genuine answer (Response Authenticator verified) without one is
//     what an unpatched server sends (FreeRADIUS before 3.2.5): it is not
//     used either, but after the current retransmission timeout the
//     exchange with that server ends with ErrUnverifiable, not
//     ErrUnreachable, since the server may have said no and a fail-open
//     policy must not turn that into yes;
//   - Accounting-Response (RFC 2866 defines no Message-Authenticator for it):
//     if one is present it must be valid, if absent the response is accepted.
//
// The DAS requires a valid Message-Authenticator in every Disconnect- and
// CoA-Request unless the client entry sets AllowMissingMessageAuthenticator;
// one that is present is always verified. Requests failing any check are
// dropped without an answer, as RFC 5176 asks; DASConfig.OnRequest tells
// the caller why, so a misconfigured server is reported.
//
// # Server health
//
// Client.Probe sends each server a Status-Server (RFC 5997, with
// Message-Authenticator) and reports, per server, whether it answers,
// whether its answers verify with the shared secret and whether its
// authentication port signs them (Health, Problem, Problem.Fix); real
// exchanges update the same state, and a real signed Access-Accept or
// -Reject outweighs an unsigned Status-Server answer.
//
// Shared secrets are never logged, nor are User-Password values.
//
// # Attributes
//
// Access-Request: User-Name (phone, E.164), User-Password (RFC 2865
// encrypted; AuthConfig.Password or, when empty, the phone number),
// Service-Type Login-User, NAS-Port-Type Wireless-802.11,
// Calling-Station-Id (AA-BB-CC-DD-EE-FF), Framed-IP-Address or
// Framed-IPv6-Address, NAS-Identifier, NAS-IP-Address or NAS-IPv6-Address,
// Called-Station-Id, Message-Authenticator.
//
// Access-Accept/Reject parsed into a Decision: Reply-Message,
// Session-Timeout, Idle-Timeout, Acct-Interim-Interval,
// WISPr-Bandwidth-Max-Up/Down (14122/7,8, bit/s),
// ChilliSpot-Bandwidth-Max-Up/Down (14559/4,5, kbit/s; WISPr wins when both
// are present), the first Class. A known attribute of the wrong length is an
// error; other vendors' attributes are ignored.
//
// Accounting-Request: Acct-Status-Type, Acct-Session-Id, User-Name,
// Calling-Station-Id, Called-Station-Id, NAS-Identifier, NAS-IP-Address,
// NAS-Port-Type, Framed-IP-Address, Class, Event-Timestamp (when the
// event happened: Record.At, else the time of enqueueing), Acct-Delay-Time
// (seconds since then, at each send) and,
// on Interim-Update and Stop, Acct-Input/Output-Octets with
// Acct-Input/Output-Gigawords, Acct-Input/Output-Packets, Acct-Session-Time;
// on Stop, Acct-Terminate-Cause. Delivery is at least once: a record whose
// acknowledgement was lost in a crash is sent again.
//
// Disconnect/CoA-Request: sessions are identified by Acct-Session-Id,
// User-Name, Calling-Station-Id and Framed-IP(v6)-Address (all given must
// match); NAS-IP-Address, NAS-IPv6-Address and NAS-Identifier must name this
// NAS (403); Event-Timestamp outside the replay window drops the request;
// Proxy-State is echoed; State and Called-Station-Id are accepted and
// ignored. CoA may carry Session-Timeout, Idle-Timeout and the WISPr and
// ChilliSpot bandwidth attributes, and changes only those. Anything else is
// NAKed with Unsupported-Attribute (401), Service-Type with
// Unsupported-Service (405), a malformed or repeated attribute with
// Invalid-Request (404), an unparseable MAC with Invalid-Attribute-Value
// (407), a request without session identification (or a CoA without a
// change) with Missing-Attribute (402), no matching session with
// Session-Context-Not-Found (503).
package radius
