package sms

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twilio/twilio-go/client"
)

// Defaults for Retrying and Breaker. A visitor stares at the portal while
// we send, so the whole retry budget is short: three tries over at most
// 20 s (1 s, then 2 s between them) cover a provider hiccup without
// leaving the visitor waiting longer than they would before tapping
// "resend".
const (
	DefaultAttempts        = 3
	DefaultBackoff         = time.Second
	DefaultRetryDeadline   = 20 * time.Second
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 30 * time.Second
)

// Retrying retries Temporary failures of Sender with exponential back-off
// inside a total deadline. Permanent failures return at once: a mistyped
// number does not improve with time. Zero fields take the defaults above.
type Retrying struct {
	Sender   Sender
	Attempts int           // tries in total, including the first
	Backoff  time.Duration // wait before the second try; doubles after each try
	Deadline time.Duration // budget for all tries and waits together

	// Sleep waits d or until ctx is done; nil sleeps on a timer. Tests
	// inject one that advances a fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now reads the clock used to decide whether another wait still fits
	// in Deadline; nil means time.Now.
	Now func() time.Time
}

// Send implements Sender.
func (r *Retrying) Send(ctx context.Context, m Message) error {
	attempts, backoff, deadline := r.Attempts, r.Backoff, r.Deadline
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	if deadline <= 0 {
		deadline = DefaultRetryDeadline
	}
	now, sleep := r.Now, r.Sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	end := now().Add(deadline)
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()

	wait := backoff
	// maybeSent records that some try may have put the message on its
	// way, so a later try that certainly sent nothing does not make the
	// whole Send look unsent (see NotSent).
	maybeSent := false
	for try := 1; ; try++ {
		err := r.Sender.Send(ctx, m)
		if err == nil {
			return nil
		}
		if !NotSent(err) {
			maybeSent = true
		} else if maybeSent {
			err = &earlierTryMayHaveSent{err}
		}
		if KindOf(err) != Temporary {
			return err // the recipient or our account: the same again
		}
		if try >= attempts {
			return fmt.Errorf("giving up after %d attempts: %w", try, err)
		}
		// Waiting past the deadline only to be cut off is pointless:
		// report the failure now so the visitor sees it sooner.
		if !now().Add(wait).Before(end) {
			return fmt.Errorf("giving up after %d attempts, no time left before the deadline: %w", try, err)
		}
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("giving up after %d attempts (%v): %w", try, serr, err)
		}
		wait *= 2
	}
}

// earlierTryMayHaveSent wraps the failure of a try that sent nothing when an
// earlier try of the same Send may have delivered the message.
type earlierTryMayHaveSent struct{ err error }

func (e *earlierTryMayHaveSent) Error() string {
	return e.err.Error() + " (an earlier attempt may have been delivered)"
}

func (e *earlierTryMayHaveSent) Unwrap() error { return e.err }

// NotSent reports whether a failed Send certainly put no message on its
// way, so whoever counted it against a visitor's allowance (the portal,
// through package limits) may give the slot back. It is false for nil.
//
// It is true only when
//   - the circuit breaker refused the call (ErrCircuitOpen), or
//   - the request never left: the connection could not be made (dial or
//     DNS failure) or the provider's certificate was refused before
//     anything was written, or
//   - the provider answered that it did not take the message: an HTTP
//     4xx (a bad number, a blocked region, our account, 429 rate
//     limiting), 501 or 503 (unavailable, so nothing was processed),
//     carried as a Twilio API error or as a gateway's "http-NNN" code.
//
// Everything else counts as possibly sent, on purpose: a timeout or a
// reset after the request was written, a 500, 502 or 504 (a proxy or
// the provider failing after it may have queued the message), a
// message Twilio created and then failed (30xxx), or a gateway that
// said 2xx with an unexpected body. Any of those may still reach the
// phone and cost money; handing the slot back would let someone who can
// slow the network or the provider get SMS past the caps for free. With
// Retrying, one such try makes the whole Send possibly sent.
func NotSent(err error) bool {
	if err == nil {
		return false
	}
	var earlier *earlierTryMayHaveSent
	if errors.As(err, &earlier) {
		return false
	}
	if errors.Is(err, ErrCircuitOpen) || errors.Is(err, errNoRequest) {
		return true
	}
	var re *client.TwilioRestError
	if errors.As(err, &re) {
		return refusedStatus(re.Status)
	}
	var rv1 *client.RestErrorV1
	if errors.As(err, &rv1) {
		return refusedStatus(rv1.HttpStatusCode)
	}
	var se *Error
	if errors.As(err, &se) {
		if code, ok := strings.CutPrefix(se.Code, "http-"); ok {
			status, cerr := strconv.Atoi(code)
			return cerr == nil && refusedStatus(status)
		}
	}
	return neverLeft(err)
}

// refusedStatus reports whether an HTTP error status says the server did
// not process the request. 408 is the server giving up on receiving it.
func refusedStatus(status int) bool {
	return status >= 400 && status < 500 || status == 501 || status == 503
}

// neverLeft reports whether a transport error happened before the
// request could be written: no connection, no address, or a TLS
// certificate we refused (the handshake precedes the request).
func neverLeft(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrCircuitOpen is what Breaker returns while it refuses calls. It is a
// Temporary *Error: the visitor may try again shortly.
var ErrCircuitOpen error = &Error{
	Kind: Temporary,
	Code: "circuit-open",
	Err:  errors.New("SMS provider is failing; sending paused"),
}

// Breaker stops calling Sender after Failures consecutive Temporary
// failures, for Cooldown. During an outage that makes every visitor fail at
// once instead of waiting out a retry budget, and stops us hammering a
// provider that is rate-limiting us. After the cool-down one call goes
// through as a probe: success closes the breaker, failure opens it again.
//
// An Operator failure (the provider refused our account) opens it at once:
// every visitor would fail the same way. While it is open for that reason
// the calls it refuses are Operator errors too, so visitors keep hearing
// "try later", and Fault reports it to staff until a send succeeds.
//
// Permanent failures count as the provider working (it answered), and so
// do calls the caller cancelled. Zero fields take the defaults above.
type Breaker struct {
	Sender   Sender
	Failures int
	Cooldown time.Duration
	Now      func() time.Time // nil means time.Now
	// OnFault, if set, is called (outside the breaker's lock) when an
	// Operator failure opens the breaker, once per fault: the daemon logs
	// it as an error and counts it. Set it before the first Send.
	OnFault func(*Error)

	mu         sync.Mutex
	failures   int       // consecutive Temporary failures
	openUntil  time.Time // refuse calls until then, once failures ≥ threshold
	probing    bool      // a half-open probe is in flight
	fault      *Error    // the Operator failure that opened it, until a success
	faultSince time.Time
}

// Fault returns the Operator failure that paused sending and since when,
// or nil while sending works (a success clears it).
func (b *Breaker) Fault() (*Error, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fault, b.faultSince
}

func (b *Breaker) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Breaker) threshold() int {
	if b.Failures > 0 {
		return b.Failures
	}
	return DefaultBreakerFailures
}

// Send implements Sender.
func (b *Breaker) Send(ctx context.Context, m Message) error {
	b.mu.Lock()
	probe := false
	if b.failures >= b.threshold() {
		if b.probing || b.now().Before(b.openUntil) {
			fault := b.fault
			b.mu.Unlock()
			if fault != nil {
				return &Error{Kind: Operator, Code: fault.Code, Provider: fault.Provider, Err: ErrCircuitOpen}
			}
			return ErrCircuitOpen
		}
		b.probing, probe = true, true
	}
	b.mu.Unlock()

	err := b.Sender.Send(ctx, m)

	b.mu.Lock()
	if probe {
		b.probing = false
	}
	var newFault *Error
	switch {
	case err == nil:
		b.failures, b.fault = 0, nil
	case IsPermanent(err):
		b.failures = 0
	case errors.Is(err, context.Canceled):
		// The visitor went away; that says nothing about the provider.
	case IsOperator(err):
		b.failures = b.threshold()
		b.openUntil = b.now().Add(b.cooldown())
		if b.fault == nil {
			var se *Error
			errors.As(err, &se)
			b.fault, b.faultSince, newFault = se, b.now(), se
		}
	default:
		b.failures++
		if b.failures >= b.threshold() {
			b.openUntil = b.now().Add(b.cooldown())
		}
	}
	onFault := b.OnFault
	b.mu.Unlock()
	if newFault != nil && onFault != nil {
		onFault(newFault)
	}
	return err
}

func (b *Breaker) cooldown() time.Duration {
	if b.Cooldown > 0 {
		return b.Cooldown
	}
	return DefaultBreakerCooldown
}

// Open reports whether the breaker currently refuses calls, for health
// pages and metrics.
func (b *Breaker) Open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures >= b.threshold() && (b.probing || b.now().Before(b.openUntil))
}
