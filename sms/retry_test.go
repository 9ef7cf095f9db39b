package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/internal/fake"
)

var (
	errTemp = &Error{Kind: Temporary, Code: "20429", Provider: "fake"}
	errPerm = &Error{Kind: Permanent, Code: "21211", Provider: "fake"}
)

// scripted returns its errors in order, then nil.
type scripted struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (s *scripted) Send(ctx context.Context, m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.errs) == 0 {
		return nil
	}
	err := s.errs[0]
	s.errs = s.errs[1:]
	return err
}

func newFakeClock() *fake.Clock { return fake.NewClock(time.Date(2026, 3, 1, 17, 0, 0, 0, time.UTC)) }

func TestRetrying(t *testing.T) {
	tests := []struct {
		name      string
		errs      []error
		attempts  int
		deadline  time.Duration
		wantCalls int
		wantWaits []time.Duration
		wantErr   error
	}{
		{name: "first try", wantCalls: 1},
		{name: "one temporary", errs: []error{errTemp}, wantCalls: 2, wantWaits: []time.Duration{time.Second}},
		{name: "two temporary", errs: []error{errTemp, errTemp}, wantCalls: 3, wantWaits: []time.Duration{time.Second, 2 * time.Second}},
		{name: "attempts exhausted", errs: []error{errTemp, errTemp, errTemp, errTemp}, wantCalls: 3,
			wantWaits: []time.Duration{time.Second, 2 * time.Second}, wantErr: errTemp},
		{name: "five attempts", attempts: 5, errs: []error{errTemp, errTemp, errTemp, errTemp}, wantCalls: 5,
			wantWaits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}},
		{name: "permanent at once", errs: []error{errPerm}, wantCalls: 1, wantErr: errPerm},
		{name: "permanent after temporary", errs: []error{errTemp, errPerm}, wantCalls: 2,
			wantWaits: []time.Duration{time.Second}, wantErr: errPerm},
		// 1 s + 2 s fit in 5 s, the next 4 s wait would not.
		{name: "deadline", attempts: 10, deadline: 5 * time.Second, errs: []error{errTemp, errTemp, errTemp, errTemp}, wantCalls: 3,
			wantWaits: []time.Duration{time.Second, 2 * time.Second}, wantErr: errTemp},
		{name: "unclassified error retried", errs: []error{errors.New("disk full")}, wantCalls: 2, wantWaits: []time.Duration{time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var waits []time.Duration
			s := &scripted{errs: tt.errs}
			r := &Retrying{Sender: s, Attempts: tt.attempts, Deadline: tt.deadline, Now: clock.Now,
				Sleep: func(ctx context.Context, d time.Duration) error {
					waits = append(waits, d)
					clock.Advance(d)
					return nil
				}}
			err := r.Send(context.Background(), Message{To: "+97433123456", Body: "x"})
			if s.calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", s.calls, tt.wantCalls)
			}
			if !reflect.DeepEqual(waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", waits, tt.wantWaits)
			}
			if tt.wantErr == nil && len(tt.errs) < tt.wantCalls && err != nil {
				t.Errorf("Send = %v, want success", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Send = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestRetryingStopsWhenCallerGivesUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &scripted{errs: []error{errTemp, errTemp}}
	r := &Retrying{Sender: s, Sleep: func(ctx context.Context, d time.Duration) error {
		cancel() // the visitor closed the page while we waited
		return sleepCtx(ctx, d)
	}}
	err := r.Send(ctx, Message{})
	if s.calls != 1 || err == nil || IsPermanent(err) {
		t.Fatalf("calls = %d, err = %v; want 1 call and a temporary error", s.calls, err)
	}
}

func TestRetryingRealSleep(t *testing.T) {
	s := &scripted{errs: []error{errTemp}}
	r := &Retrying{Sender: s, Backoff: time.Millisecond}
	if err := r.Send(context.Background(), Message{}); err != nil || s.calls != 2 {
		t.Fatalf("calls = %d, err = %v", s.calls, err)
	}
}

func TestBreaker(t *testing.T) {
	clock := newFakeClock()
	s := &scripted{}
	b := &Breaker{Sender: s, Failures: 3, Cooldown: time.Minute, Now: clock.Now}
	send := func() error { return b.Send(context.Background(), Message{}) }

	// Two failures, a permanent one (provider answered) resets the count.
	s.errs = []error{errTemp, errTemp, errPerm, errTemp, errTemp}
	for range 5 {
		send()
	}
	if b.Open() {
		t.Fatal("breaker opened although a permanent error broke the streak")
	}
	// Third consecutive temporary failure opens it.
	s.errs = []error{errTemp}
	if err := send(); !errors.Is(err, errTemp) {
		t.Fatalf("Send = %v", err)
	}
	if !b.Open() {
		t.Fatal("breaker not open after 3 consecutive temporary failures")
	}
	calls := s.calls
	err := send()
	if !errors.Is(err, ErrCircuitOpen) || IsPermanent(err) || s.calls != calls {
		t.Fatalf("open breaker: err = %v, provider calls %d→%d; want ErrCircuitOpen without a call", err, calls, s.calls)
	}

	// Cool-down not over yet.
	clock.Advance(59 * time.Second)
	if err := send(); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("after 59 s: %v", err)
	}
	// Over: one probe goes through and fails, which reopens it.
	clock.Advance(time.Second)
	s.errs = []error{errTemp}
	if err := send(); !errors.Is(err, errTemp) || s.calls != calls+1 {
		t.Fatalf("probe: err = %v, calls = %d", err, s.calls)
	}
	if err := send(); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("after failed probe: %v", err)
	}
	// Next probe succeeds and closes it.
	clock.Advance(time.Minute)
	if err := send(); err != nil {
		t.Fatalf("successful probe: %v", err)
	}
	if b.Open() {
		t.Fatal("breaker still open after a successful probe")
	}
	if err := send(); err != nil {
		t.Fatalf("closed breaker: %v", err)
	}
}

// blocking holds each Send until released, to test the half-open state.
type blocking struct {
	entered chan struct{}
	release chan error
}

func (b *blocking) Send(ctx context.Context, m Message) error {
	b.entered <- struct{}{}
	return <-b.release
}

func TestBreakerSingleProbe(t *testing.T) {
	clock := newFakeClock()
	bs := &blocking{entered: make(chan struct{}, 10), release: make(chan error, 10)}
	b := &Breaker{Sender: bs, Failures: 1, Cooldown: time.Second, Now: clock.Now}
	bs.release <- errTemp
	b.Send(context.Background(), Message{})
	<-bs.entered
	clock.Advance(time.Second)

	done := make(chan error)
	go func() { done <- b.Send(context.Background(), Message{}) }()
	<-bs.entered // the probe is in flight
	if err := b.Send(context.Background(), Message{}); !errors.Is(err, ErrCircuitOpen) {
		t.Errorf("second call during the probe = %v, want ErrCircuitOpen", err)
	}
	bs.release <- nil
	if err := <-done; err != nil {
		t.Fatalf("probe: %v", err)
	}
}

func TestBreakerIgnoresCancellation(t *testing.T) {
	s := &scripted{errs: []error{context.Canceled, context.Canceled}}
	b := &Breaker{Sender: s, Failures: 1}
	b.Send(context.Background(), Message{})
	if b.Open() {
		t.Fatal("a caller's cancellation opened the breaker")
	}
}

func TestRetryingBreakerRace(t *testing.T) {
	s := &scripted{}
	for range 50 {
		s.errs = append(s.errs, errTemp)
	}
	b := &Breaker{Sender: &Retrying{Sender: s, Backoff: time.Microsecond}, Failures: 2, Cooldown: time.Millisecond}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				b.Send(context.Background(), Message{})
				b.Open()
			}
		})
	}
	wg.Wait()
}

// TestNotSent drives the real senders against fakes and checks which
// failures count as "nothing went out" (the portal then gives the
// visitor's SMS allowance back) and which may have delivered.
func TestNotSent(t *testing.T) {
	ctx := context.Background()
	msg := Message{To: "+97433123456", Body: testPIN}
	gateway := func(t *testing.T, status int, answer string, cfg HTTPGatewayConfig) error {
		srv, _ := fakeGateway(t, status, answer)
		cfg.URL, cfg.BodyTemplate = srv.URL, "to={to}&text={body}"
		gw, err := NewHTTPGateway(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return gw.Send(ctx, msg)
	}
	twilio := func(t *testing.T, code, status int) error {
		tw, _ := fakeTwilio(t, TwilioConfig{From: "+15005550006"}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"code": %d, "message": "x", "status": %d}`, code, status)
		})
		return tw.Send(ctx, msg)
	}
	closedPort := func(t *testing.T) *url.URL {
		srv := httptest.NewServer(http.NotFoundHandler())
		u, _ := url.Parse(srv.URL)
		srv.Close()
		return u
	}
	tests := []struct {
		name string
		send func(t *testing.T) error
		want bool
	}{
		{"gateway 400", func(t *testing.T) error { return gateway(t, 400, "", HTTPGatewayConfig{}) }, true},
		{"gateway 429", func(t *testing.T) error { return gateway(t, 429, "", HTTPGatewayConfig{}) }, true},
		{"gateway 503", func(t *testing.T) error { return gateway(t, 503, "", HTTPGatewayConfig{}) }, true},
		{"gateway 500", func(t *testing.T) error { return gateway(t, 500, "", HTTPGatewayConfig{}) }, false},
		{"gateway 502", func(t *testing.T) error { return gateway(t, 502, "", HTTPGatewayConfig{}) }, false},
		{"gateway 504", func(t *testing.T) error { return gateway(t, 504, "", HTTPGatewayConfig{}) }, false},
		{"gateway 2xx without marker", func(t *testing.T) error {
			return gateway(t, 200, "queued?", HTTPGatewayConfig{SuccessContains: "OK"})
		}, false},
		{"gateway 302", func(t *testing.T) error { return gateway(t, 302, "", HTTPGatewayConfig{}) }, false},
		{"gateway unreachable", func(t *testing.T) error {
			gw, err := NewHTTPGateway(HTTPGatewayConfig{URL: closedPort(t).String(), BodyTemplate: "to={to}"})
			if err != nil {
				t.Fatal(err)
			}
			return gw.Send(ctx, msg)
		}, true},
		{"gateway timeout", func(t *testing.T) error {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(srv.Close)
			defer close(release)
			gw, err := NewHTTPGateway(HTTPGatewayConfig{URL: srv.URL, BodyTemplate: "to={to}", Timeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return gw.Send(ctx, msg)
		}, false},
		{"twilio 21211 invalid number", func(t *testing.T) error { return twilio(t, 21211, 400) }, true},
		{"twilio 20429 too many requests", func(t *testing.T) error { return twilio(t, 20429, 429) }, true},
		{"twilio 20503 unavailable", func(t *testing.T) error { return twilio(t, 20503, 503) }, true},
		{"twilio 20500 internal error", func(t *testing.T) error { return twilio(t, 20500, 500) }, false},
		{"twilio created then failed", func(t *testing.T) error {
			tw, _ := fakeTwilio(t, TwilioConfig{From: "+15005550006"}, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusCreated)
				s := strings.Replace(twilioCreated("+97433123456", "+15005550006", ""), `"error_code":null`, `"error_code":30007`, 1)
				io.WriteString(w, strings.Replace(s, `"status":"queued"`, `"status":"failed"`, 1))
			})
			return tw.Send(ctx, msg)
		}, false},
		{"twilio unreachable", func(t *testing.T) error {
			tw, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: "+15005550006",
				Transport: &rewriteHost{target: closedPort(t), base: http.DefaultTransport}})
			if err != nil {
				t.Fatal(err)
			}
			return tw.Send(ctx, msg)
		}, true},
		{"unclassified", func(*testing.T) error { return errors.New("connection reset") }, false},
		{"success", func(*testing.T) error { return nil }, false},
		{"breaker open", func(*testing.T) error {
			b := &Breaker{Sender: &scripted{errs: []error{errTemp}}, Failures: 1}
			b.Send(ctx, msg)
			return b.Send(ctx, msg)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.send(t)
			if got := NotSent(err); got != tt.want {
				t.Errorf("NotSent(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
}

// TestRetryingNotSent: a Send whose tries all sent nothing is NotSent;
// one try that may have delivered makes the whole Send possibly sent,
// whatever the later tries say.
func TestRetryingNotSent(t *testing.T) {
	refused := &Error{Kind: Temporary, Code: "http-503", Provider: "http"}
	timeout := &Error{Kind: Temporary, Provider: "http", Err: context.DeadlineExceeded}
	rejected := &Error{Kind: Permanent, Code: "http-400", Provider: "http"}
	for _, tt := range []struct {
		name string
		errs []error
		want bool
	}{
		{"all refused", []error{refused, refused, refused}, true},
		{"refused then permanent refusal", []error{refused, rejected}, true},
		{"timeout then refused", []error{timeout, refused, refused}, false},
		{"refused then timeout then refused", []error{refused, timeout, refused}, false},
		{"timeout then permanent refusal", []error{timeout, rejected}, false},
		{"circuit open", []error{ErrCircuitOpen, ErrCircuitOpen, ErrCircuitOpen}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &scripted{errs: tt.errs}
			r := &Retrying{Sender: s, Sleep: func(context.Context, time.Duration) error { return nil }}
			err := r.Send(context.Background(), Message{})
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := NotSent(err); got != tt.want {
				t.Errorf("NotSent(%v) = %v, want %v", err, got, tt.want)
			}
			// The wrapping keeps the last try's error, and so its kind.
			if last := tt.errs[len(tt.errs)-1]; !errors.Is(err, last) || IsPermanent(err) != IsPermanent(last) {
				t.Errorf("Send = %v, want it to wrap %v", err, last)
			}
		})
	}
}
