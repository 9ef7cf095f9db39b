package portal

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/limits"
	"github.com/parkwifi/parkportal/sms"
	"github.com/parkwifi/parkportal/store"
)

// newLimitedPark is a park with the real abuse limits (default caps: 3
// SMS per number per hour, 60 s between two) kept in the store's own
// bbolt file, as the daemon runs them, and the provider behind the real
// circuit breaker (one failure opens it for a minute).
func newLimitedPark(t *testing.T, v visitor) (*park, *limits.Limiter) {
	t.Helper()
	var lim *limits.Limiter
	p := newParkWith(t, nil, func(o *Options) {
		var err error
		lim, err = limits.Open(o.Store.DB(), limits.Config{Location: time.UTC}, o.Now)
		if err != nil {
			t.Fatal(err)
		}
		o.Limits = lim
		o.SMS = &sms.Breaker{Sender: o.SMS, Failures: 1, Cooldown: time.Minute, Now: o.Now}
	}, v)
	return p, lim
}

// providerDown is the gateway answering 503: it took nothing.
var providerDown = &sms.Error{Kind: sms.Temporary, Code: "http-503", Provider: "http", Err: errors.New("gateway answered 503")}

// TestFailedSMSKeepsAllowance: sends that never reached the provider, or
// that it refused, cost the visitor nothing: no "wait 60 s", and no SMS
// off their hourly three.
func TestFailedSMSKeepsAllowance(t *testing.T) {
	v := newVisitor(1)
	p, lim := newLimitedPark(t, v)
	send := func(what string, status int, code string) {
		t.Helper()
		w := p.post(t, v, "/sms", url.Values{"phone": {"33123456"}, "lang": {"en"}})
		if status == http.StatusSeeOther {
			if w.Code != status {
				t.Fatalf("%s: status %d, want 303\n%s", what, w.Code, w.Body.String())
			}
			return
		}
		expect(t, what, w, status, code)
	}

	send("first PIN", http.StatusSeeOther, "")
	p.clock.Advance(61 * time.Second)

	// The provider refuses: this opens the breaker; the next two are
	// refused by the breaker without a request. Each time the visitor is
	// told to try again, never that a code was just sent.
	p.sms.setErr(providerDown)
	send("provider refuses", http.StatusServiceUnavailable, "sms-unavailable")
	send("breaker open", http.StatusServiceUnavailable, "sms-unavailable")
	p.clock.Advance(5 * time.Second)
	send("breaker still open", http.StatusServiceUnavailable, "sms-unavailable")
	if used, _ := lim.SMSUsedToday(); used != 1 {
		t.Errorf("SMSUsedToday = %d after 1 sent and 3 failed, want 1", used)
	}

	// The provider is back: the visitor still has two of three.
	p.sms.setErr(nil)
	p.clock.Advance(time.Minute)
	send("second PIN", http.StatusSeeOther, "")
	p.clock.Advance(61 * time.Second)
	send("third PIN", http.StatusSeeOther, "")
	p.clock.Advance(61 * time.Second)
	send("fourth PIN within the hour", http.StatusTooManyRequests, "limit-per-number")
	if n := p.sms.count(); n != 3 {
		t.Errorf("%d SMS delivered, want 3", n)
	}
}

// TestTimedOutSMSStaysCounted: a send that may have reached the provider
// (the request went out, the answer did not come back) stays counted:
// it may still arrive and cost money.
func TestTimedOutSMSStaysCounted(t *testing.T) {
	v := newVisitor(1)
	p, lim := newLimitedPark(t, v)
	p.sms.setErr(&sms.Error{Kind: sms.Temporary, Provider: "http", Err: context.DeadlineExceeded})
	expect(t, "timeout", p.sendPIN(t, v, "33123456"), http.StatusServiceUnavailable, "sms-unavailable")
	p.sms.setErr(nil)
	expect(t, "at once after a timeout", p.sendPIN(t, v, "33123456"), http.StatusTooManyRequests, "limit-resend-gap")
	if used, _ := lim.SMSUsedToday(); used != 1 {
		t.Errorf("SMSUsedToday = %d, want 1", used)
	}
}

// TestFailedResendKeepsEarlierPIN: a resend that fails leaves the PIN
// already on the visitor's phone working, with the tries it had left.
func TestFailedResendKeepsEarlierPIN(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
	}{
		{"refused", providerDown},
		{"timed out", &sms.Error{Kind: sms.Temporary, Provider: "twilio", Err: context.DeadlineExceeded}},
		{"permanent", &sms.Error{Kind: sms.Permanent, Code: "21610", Provider: "twilio"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newVisitor(1)
			p, _ := newLimitedPark(t, v)
			p.sendPIN(t, v, "33123456")
			_, pin := p.sms.last(t)
			expect(t, "wrong PIN", p.enterPIN(t, v, otherPIN(pin)), http.StatusBadRequest, "wrong-pin")

			p.clock.Advance(61 * time.Second)
			p.sms.setErr(c.err)
			w := p.post(t, v, "/sms", url.Values{"phone": {"+97433123456"}, "lang": {"en"}})
			if w.Code < 400 {
				t.Fatalf("failed resend: status %d", w.Code)
			}
			pend, err := p.st.Pending(v.mac.String())
			if err != nil || pend.Tries != 1 || pend.Phone != "+97433123456" {
				t.Fatalf("pending after a failed resend = %+v, %v; want the first PIN with 1 try used", pend, err)
			}
			// The visitor goes back to the PIN page and types the code
			// they have.
			if body := p.get(t, v, "/").Body.String(); !strings.Contains(body, `action="/pin"`) {
				t.Errorf("no PIN page after a failed resend:\n%s", body)
			}
			expect(t, "first PIN after a failed resend", p.enterPIN(t, v, pin), http.StatusOK, "")
		})
	}
}

// TestFailedFirstSendLeavesNoPIN: with no earlier PIN, a failed send
// leaves none behind (the PIN page would ask for a code that never came).
func TestFailedFirstSendLeavesNoPIN(t *testing.T) {
	v := newVisitor(1)
	p, _ := newLimitedPark(t, v)
	p.sms.setErr(providerDown)
	expect(t, "send", p.sendPIN(t, v, "33123456"), http.StatusServiceUnavailable, "sms-unavailable")
	if _, err := p.st.Pending(v.mac.String()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pending PIN after a failed first send: %v", err)
	}
}

// TestReleaseOnlyWhenNotSent checks the portal's side with the fake
// limiter: it gives the slot back exactly when sms.NotSent says so.
func TestReleaseOnlyWhenNotSent(t *testing.T) {
	for _, c := range []struct {
		name    string
		err     error
		release bool
	}{
		{"sent", nil, false},
		{"refused", providerDown, true},
		{"breaker open", sms.ErrCircuitOpen, true},
		{"permanent refusal", &sms.Error{Kind: sms.Permanent, Code: "http-400", Provider: "http"}, true},
		{"timed out", &sms.Error{Kind: sms.Temporary, Provider: "http", Err: context.DeadlineExceeded}, false},
		{"unclassified", errors.New("connection reset"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newVisitor(1)
			p := newPark(t, v)
			p.sms.setErr(c.err)
			p.sendPIN(t, v, "33123456")
			if got := p.lim.released; (got == 1) != c.release || got > 1 {
				t.Errorf("ReleaseSMS called %d times, want release=%v", got, c.release)
			}
		})
	}
}
