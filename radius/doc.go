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
//     one valid Message-Authenticator; there is no switch to turn this off;
//   - Accounting-Response (RFC 2866 defines no Message-Authenticator for it):
//     if one is present it must be valid, if absent the response is accepted.
//
// The DAS requires a valid Message-Authenticator in every Disconnect- and
// CoA-Request unless the client entry sets AllowMissingMessageAuthenticator;
// one that is present is always verified. Requests failing any check are
// dropped without an answer, as RFC 5176 asks.
//
// Shared secrets are never logged, nor are User-Password values.
package radius
