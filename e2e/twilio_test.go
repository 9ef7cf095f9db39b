package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/lab"
	"github.com/parkwifi/parkportal/sms"
)

// Issue 16: the Twilio sender through the real daemon. The daemon in the
// lab's gateway sends its Twilio requests (the real twilio-go client) to
// a fake Twilio this test serves on the gateway's loopback, through the
// test-only PARKPORTAL_TWILIO_API_URL; the fake speaks Twilio's Messages
// API: form fields in, a 201 message resource or Twilio's error JSON out.

const (
	twSID   = "AC0123456789abcdef0123456789abcdef"
	twToken = "e2ef00dfeedf00dfeedf00dfeedf00df"
	twFrom  = "+15005550006"
)

// fakeTwilio is the Messages API on the gateway's loopback.
type fakeTwilio struct {
	url string

	mu       sync.Mutex
	requests []url.Values // the form fields of each create-message request
	auth     []string     // "user:password" of each
	answer   func(form url.Values) (int, string)
}

func (f *fakeTwilio) setAnswer(a func(form url.Values) (int, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

func (f *fakeTwilio) seen() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.requests...)
}

// created is Twilio's 201 answer to a message create (trimmed).
func created(form url.Values) (int, string) {
	return http.StatusCreated, fmt.Sprintf(`{"account_sid":%q,"api_version":"2010-04-01","body":%q,"direction":"outbound-api",
"error_code":null,"error_message":null,"from":%q,"messaging_service_sid":null,"num_segments":"1","price":null,
"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":%q,
"uri":"/2010-04-01/Accounts/%s/Messages/SM0123456789abcdef0123456789abcdef.json"}`,
		twSID, form.Get("Body"), form.Get("From"), form.Get("To"), twSID)
}

// twilioError is Twilio's error shape.
func twilioError(status, code int, message string) func(url.Values) (int, string) {
	return func(url.Values) (int, string) {
		return status, fmt.Sprintf(`{"code": %d, "message": %q, "more_info": "https://www.twilio.com/docs/errors/%d", "status": %d}`,
			code, message, code, status)
	}
}

// startFakeTwilio listens on 127.0.0.1 inside the gateway namespace,
// where the daemon runs, and serves until the test ends.
func (p *testPark) startFakeTwilio() *fakeTwilio {
	p.t.Helper()
	var ln net.Listener
	inNS(p.t, p.Gateway, func() {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			p.t.Fatal(err)
		}
	})
	f := &fakeTwilio{url: "http://" + ln.Addr().String(), answer: created}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+twSID+"/Messages.json" {
			http.Error(w, `{"code": 20404, "message": "not found", "status": 404}`, http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		user, pass, _ := r.BasicAuth()
		f.mu.Lock()
		f.requests = append(f.requests, form)
		f.auth = append(f.auth, user+":"+pass)
		answer := f.answer
		f.mu.Unlock()
		status, out := answer(form)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, out)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	p.t.Cleanup(func() { srv.Close() })
	return f
}

// twilioPark runs the daemon with the Twilio sender pointed at a fake.
func twilioPark(t *testing.T) (*testPark, *fakeTwilio, *daemon) {
	p := newPark(t, 1)
	tw := p.startFakeTwilio()
	cfg := p.config(map[string]string{
		"sms.provider":           "twilio",
		"sms.twilio_account_sid": twSID,
		"sms.twilio_auth_token":  twToken,
		"sms.twilio_from":        twFrom,
		"sms.twilio_validity":    "5m",
		"sms.retry_backoff":      "100ms",
	})
	p.env = []string{sms.TwilioAPIURLEnv + "=" + tw.url}
	return p, tw, p.start(cfg)
}

var bodyPIN = regexp.MustCompile(`\b(\d{6})\b`)

// TestTwilioThroughDaemon: a visitor asks for a PIN; the fake Twilio gets
// the form fields Twilio would (To in E.164, From, a Body with the PIN
// in the visitor's language, ValidityPeriod), with the account's
// credentials; the visitor logs in with that PIN and is online.
func TestTwilioThroughDaemon(t *testing.T) {
	p, tw, d := twilioPark(t)
	v := p.Visitors[0]
	r := lab.PostForm(v.NS, portalURL+"sms", map[string]string{"phone": "3312 3456", "lang": "ar"})
	if r.Code != http.StatusSeeOther {
		t.Fatalf("POST /sms: %d %s", r.Code, r.Body)
	}
	reqs := tw.seen()
	if len(reqs) != 1 {
		t.Fatalf("fake Twilio got %d requests, want 1", len(reqs))
	}
	form := reqs[0]
	if form.Get("To") != "+97433123456" || form.Get("From") != twFrom || form.Get("ValidityPeriod") != "300" || form.Has("MessagingServiceSid") {
		t.Errorf("Twilio form fields: %v", form)
	}
	if !strings.Contains(form.Get("Body"), "صالح 5 دقائق") {
		t.Errorf("Body %q is not the Arabic PIN message", form.Get("Body"))
	}
	if tw.auth[0] != twSID+":"+twToken {
		t.Errorf("basic auth %q", tw.auth[0])
	}
	m := bodyPIN.FindStringSubmatch(form.Get("Body"))
	if m == nil {
		t.Fatalf("no PIN in %q", form.Get("Body"))
	}
	r = lab.PostForm(v.NS, portalURL+"pin", map[string]string{"pin": m[1]})
	if r.Code != http.StatusOK || !strings.Contains(r.Body, `id="connected"`) {
		t.Fatalf("POST /pin with the PIN Twilio carried: %d\n%s", r.Code, r.Body)
	}
	if !online(v) {
		t.Error("visitor not online after logging in")
	}
	out := d.output()
	if !strings.Contains(out, "TEST ONLY: "+sms.TwilioAPIURLEnv+" is set") {
		t.Errorf("the daemon did not warn about the test override:\n%s", out)
	}
	if strings.Contains(out, m[1]) || strings.Contains(out, twToken) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(twSID+":"+twToken))) {
		t.Errorf("the daemon's log holds the PIN or the token:\n%s", out)
	}
}

// TestTwilioErrorsThroughDaemon: Twilio's 21211 (invalid 'To') tells the
// visitor to use another number; 20003 (authentication) is our account:
// the visitor is told to try later, the breaker opens (the next visitor
// is answered without a request to Twilio) and the daemon logs an error
// for staff.
func TestTwilioErrorsThroughDaemon(t *testing.T) {
	p, tw, d := twilioPark(t)
	v := p.Visitors[0]
	send := func(number string) lab.HTTPResult {
		t.Helper()
		return lab.PostForm(v.NS, portalURL+"sms", map[string]string{"phone": number, "lang": "en"})
	}

	tw.setAnswer(twilioError(http.StatusBadRequest, 21211, "The 'To' number +97455123456 is not a valid phone number."))
	r := send("55123456")
	if r.Code != http.StatusBadRequest || !strings.Contains(r.Body, `data-code="sms-undeliverable"`) || !strings.Contains(r.Body, "Try another number.") {
		t.Errorf("21211: %d\n%s", r.Code, r.Body)
	}
	if n := len(tw.seen()); n != 1 {
		t.Errorf("21211: Twilio asked %d times, want once (a permanent error is not retried)", n)
	}

	tw.setAnswer(twilioError(http.StatusUnauthorized, 20003, "Authenticate"))
	r = send("66123456")
	if r.Code != http.StatusServiceUnavailable || !strings.Contains(r.Body, `data-code="sms-paused"`) ||
		!strings.Contains(r.Body, "try again later") || strings.Contains(r.Body, "another number") {
		t.Errorf("20003: %d\n%s", r.Code, r.Body)
	}
	asked := len(tw.seen())
	if asked != 2 {
		t.Errorf("20003: Twilio asked %d times in all, want 2 (an operator fault is not retried)", asked)
	}
	// The breaker is open: the next visitor hears the same without a
	// request to Twilio.
	r = send("77123456")
	if r.Code != http.StatusServiceUnavailable || !strings.Contains(r.Body, `data-code="sms-paused"`) {
		t.Errorf("while paused: %d\n%s", r.Code, r.Body)
	}
	if n := len(tw.seen()); n != asked {
		t.Errorf("while paused Twilio was asked again (%d requests)", n)
	}
	out := d.output()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "refuses parkportal's account") || !strings.Contains(out, "code=20003") {
		t.Errorf("no error for staff in the daemon's log:\n%s", out)
	}
}
