package sms

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

var errOperator = &Error{Kind: Operator, Code: "http-402", Provider: "fake"}

// TestBreakerOpensAtOnceOnOperatorFault: one refusal of our account opens
// the breaker whatever its threshold; while open, visitors get Operator
// errors (not "try another number") that sent nothing; staff hear of it
// once per fault; a success clears it.
func TestBreakerOpensAtOnceOnOperatorFault(t *testing.T) {
	clock := newFakeClock()
	s := &scripted{errs: []error{errOperator}}
	var faults []*Error
	b := &Breaker{Sender: s, Failures: 5, Cooldown: time.Minute, Now: clock.Now, OnFault: func(e *Error) { faults = append(faults, e) }}
	send := func() error { return b.Send(context.Background(), Message{To: "+97433123456", Body: "PIN 482913"}) }

	if err := send(); !IsOperator(err) {
		t.Fatalf("first send = %v, want the operator error", err)
	}
	if !b.Open() || len(faults) != 1 || faults[0].Code != "http-402" {
		t.Fatalf("after one operator fault: open %v, faults %v", b.Open(), faults)
	}
	fault, since := b.Fault()
	if fault == nil || fault.Code != "http-402" || !since.Equal(clock.Now()) {
		t.Fatalf("Fault() = %v, %v", fault, since)
	}
	calls := s.calls
	clock.Advance(30 * time.Second)
	err := send()
	var se *Error
	if !errors.As(err, &se) || se.Kind != Operator || se.Code != "http-402" || !errors.Is(err, ErrCircuitOpen) || !NotSent(err) || s.calls != calls {
		t.Fatalf("while open: %#v (calls %d→%d), want an operator error wrapping ErrCircuitOpen, not sent, no call", err, calls, s.calls)
	}
	// The probe after the cool-down meets the same fault: still one alert.
	clock.Advance(time.Minute)
	s.errs = []error{errOperator}
	if err := send(); !IsOperator(err) || len(faults) != 1 {
		t.Fatalf("failed probe: %v, %d alerts", err, len(faults))
	}
	if f, _ := b.Fault(); f == nil {
		t.Fatal("a failed probe cleared the fault")
	}
	// Staff topped up the credit: the next probe succeeds.
	clock.Advance(time.Minute)
	if err := send(); err != nil {
		t.Fatalf("probe after the fix: %v", err)
	}
	if f, _ := b.Fault(); f != nil || b.Open() {
		t.Fatalf("after a success: fault %v, open %v", f, b.Open())
	}
	// A later fault alerts again.
	s.errs = []error{errOperator}
	send()
	if len(faults) != 2 {
		t.Fatalf("a new fault raised %d alerts in all, want 2", len(faults))
	}
}

func TestRetryingDoesNotRetryOperatorFaults(t *testing.T) {
	s := &scripted{errs: []error{errOperator, nil}}
	r := &Retrying{Sender: s, Backoff: time.Microsecond}
	if err := r.Send(context.Background(), Message{}); !IsOperator(err) || s.calls != 1 {
		t.Fatalf("Send = %v after %d calls, want the operator error after one", err, s.calls)
	}
}

// TestGatewayOperatorFaultThroughTheStack: a gateway answering 402 (no
// credit) through the daemon's stack, Breaker(Retrying(gateway)), is
// asked once; the next visitors are refused without a request.
func TestGatewayOperatorFaultThroughTheStack(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusPaymentRequired, http.StatusForbidden} {
		srv, seen := fakeGateway(t, status, `{"error":"insufficient credit"}`)
		gw, err := NewHTTPGateway(HTTPGatewayConfig{URL: srv.URL, BodyTemplate: "to={to}&text={body}"})
		if err != nil {
			t.Fatal(err)
		}
		b := &Breaker{Sender: &Retrying{Sender: gw, Backoff: time.Millisecond}}
		for i := range 3 {
			err := b.Send(context.Background(), Message{To: "+97433123456", Body: "PIN 482913"})
			if !IsOperator(err) || !NotSent(err) {
				t.Errorf("%d, visitor %d: %v, want an operator fault that sent nothing", status, i, err)
			}
		}
		if n := len(seen); n != 1 {
			t.Errorf("%d: the gateway was asked %d times, want once", status, n)
		}
	}
}
