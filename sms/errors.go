package sms

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Kind says whether sending the same message again can succeed. The portal
// uses it to pick what to tell the visitor ("check the number" versus "try
// again in a minute") and Retrying uses it to decide whether to retry.
type Kind int

const (
	// Permanent means the same request will fail again: a bad or
	// unreachable number, a blocked recipient, a misconfigured account.
	// Retrying only burns money and the visitor's patience.
	Permanent Kind = iota
	// Temporary means the provider or the network had a problem that may
	// clear on its own: rate limiting, 5xx answers, timeouts.
	Temporary
	// Operator means the provider refused our account, not the visitor's
	// number: wrong credentials, no credit, a suspended account, a sender
	// that is not ours (HTTP 401, 402, 403; Twilio 20003, 20005, 21606,
	// …). No visitor gets a PIN until staff fix it, so it is not retried,
	// the circuit breaker opens at once, staff are alerted and visitors
	// are told to try again later, never to try another number.
	Operator
)

// String returns "permanent" or "temporary".
func (k Kind) String() string {
	switch k {
	case Permanent:
		return "permanent"
	case Temporary:
		return "temporary"
	case Operator:
		return "operator"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is what every sender in this package returns when a message was not
// accepted. Code is the provider's own code ("21211" for Twilio, an HTTP
// status for a gateway) so operators can look it up; it never carries the
// message body.
type Error struct {
	Kind     Kind
	Code     string // provider's error code or HTTP status; may be empty
	Provider string // "twilio", "http", ...
	Err      error  // the underlying cause; may be nil
}

// Error formats the error without the message body or any credential.
func (e *Error) Error() string {
	s := "sms"
	if e.Provider != "" {
		s += " " + e.Provider
	}
	s += ": " + e.Kind.String() + " failure"
	if e.Code != "" {
		s += " (code " + e.Code + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause so errors.Is(err,
// context.DeadlineExceeded) and friends keep working.
func (e *Error) Unwrap() error { return e.Err }

// IsOperator reports whether err says the provider refused our account
// (see Operator). It is false for nil.
func IsOperator(err error) bool {
	return err != nil && KindOf(err) == Operator
}

// KindOf classifies any error returned by a Sender.
//
// An *Error anywhere in the chain decides. Otherwise context deadlines,
// cancellations and network errors are Temporary. Anything else unknown is
// also Temporary: we cannot prove a retry is pointless, and retries are
// bounded by Retrying's attempts and deadline.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Temporary
}

// IsPermanent reports whether err says that sending the same message again
// cannot succeed because of the recipient (see Operator for our account).
// It is false for nil.
func IsPermanent(err error) bool {
	return err != nil && KindOf(err) == Permanent
}

// isTransport reports whether err comes from the network or a deadline
// rather than from an answer of the provider.
func isTransport(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		errors.As(err, &ne)
}
