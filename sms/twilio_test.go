package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "f00dfeedf00dfeedf00dfeedf00dfeed"
	testPIN   = "Code 482913"
)

// rewriteHost sends every request to target whatever host twilio-go put in
// the URL (its base URL https://api.twilio.com is fixed), and records the
// hosts it was asked for.
type rewriteHost struct {
	target *url.URL
	base   http.RoundTripper

	mu    sync.Mutex
	hosts []string
}

func (r *rewriteHost) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Scheme+"://"+req.URL.Host)
	r.mu.Unlock()
	out := req.Clone(req.Context())
	out.URL.Scheme = r.target.Scheme
	out.URL.Host = r.target.Host
	out.Host = ""
	return r.base.RoundTrip(out)
}

// fakeTwilio starts an httptest server running h and returns a Twilio
// sender whose real twilio-go client talks to it.
func fakeTwilio(t *testing.T, cfg TwilioConfig, h http.HandlerFunc) (*Twilio, *rewriteHost) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	rw := &rewriteHost{target: u, base: srv.Client().Transport}
	if cfg.AccountSID == "" {
		cfg.AccountSID = testSID
	}
	if cfg.AuthToken == "" {
		cfg.AuthToken = testToken
	}
	cfg.Transport = rw
	tw, err := NewTwilio(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tw, rw
}

// twilioCreated is a trimmed copy of a real 201 answer of Messages.json.
func twilioCreated(to, from, msid string) string {
	return fmt.Sprintf(`{"account_sid":%q,"api_version":"2010-04-01","body":"redacted",
"date_created":"Thu, 24 Aug 2025 05:01:45 +0000","date_sent":null,"date_updated":"Thu, 24 Aug 2025 05:01:45 +0000",
"direction":"outbound-api","error_code":null,"error_message":null,"from":%q,"messaging_service_sid":%q,
"num_media":"0","num_segments":"1","price":null,"price_unit":"USD","sid":"SM0123456789abcdef0123456789abcdef",
"status":"queued","subresource_uris":{"media":"/2010-04-01/Accounts/%s/Messages/SM0123456789abcdef0123456789abcdef/Media.json"},
"to":%q,"uri":"/2010-04-01/Accounts/%s/Messages/SM0123456789abcdef0123456789abcdef.json"}`,
		testSID, from, msid, testSID, to, testSID)
}

type captured struct {
	method, path, user, pass, ctype string
	ok                              bool
	form                            url.Values
}

func capture(r *http.Request) captured {
	c := captured{method: r.Method, path: r.URL.Path, ctype: r.Header.Get("Content-Type")}
	c.user, c.pass, c.ok = r.BasicAuth()
	_ = r.ParseForm()
	c.form = r.PostForm
	return c
}

func TestTwilioSendFrom(t *testing.T) {
	var got captured
	tw, rw := fakeTwilio(t, TwilioConfig{From: "+15005550006", ValidityPeriod: 10 * time.Minute},
		func(w http.ResponseWriter, r *http.Request) {
			got = capture(r)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, twilioCreated("+97433123456", "+15005550006", ""))
		})
	if err := tw.Send(context.Background(), Message{To: "+97433123456", Body: testPIN}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got.method != http.MethodPost {
		t.Errorf("method = %s, want POST", got.method)
	}
	if want := "/2010-04-01/Accounts/" + testSID + "/Messages.json"; got.path != want {
		t.Errorf("path = %s, want %s", got.path, want)
	}
	if !got.ok || got.user != testSID || got.pass != testToken {
		t.Errorf("basic auth = %q/%q (%v), want account SID and token", got.user, got.pass, got.ok)
	}
	if got.ctype != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", got.ctype)
	}
	want := url.Values{"To": {"+97433123456"}, "From": {"+15005550006"}, "Body": {testPIN}, "ValidityPeriod": {"600"}}
	if got.form.Encode() != want.Encode() {
		t.Errorf("form = %v, want %v", got.form, want)
	}
	if len(rw.hosts) != 1 || rw.hosts[0] != "https://api.twilio.com" {
		t.Errorf("twilio-go asked for %v, want https://api.twilio.com once", rw.hosts)
	}
}

func TestTwilioSendMessagingService(t *testing.T) {
	var got captured
	const msid = "MG0123456789abcdef0123456789abcdef"
	tw, _ := fakeTwilio(t, TwilioConfig{MessagingServiceSID: msid},
		func(w http.ResponseWriter, r *http.Request) {
			got = capture(r)
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, twilioCreated("+97455123456", "", msid))
		})
	// Arabic text goes through untouched (UTF-8 in the form).
	body := "رمز الدخول 482913"
	if err := tw.Send(context.Background(), Message{To: "+97455123456", Body: body}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := url.Values{"To": {"+97455123456"}, "MessagingServiceSid": {msid}, "Body": {body}}
	if got.form.Encode() != want.Encode() {
		t.Errorf("form = %v, want %v", got.form, want)
	}
}

func TestTwilioErrors(t *testing.T) {
	// Driven through the real twilio-go client against the fake API.
	tests := []struct {
		code, status int
		want         Kind
	}{
		{21211, 400, Permanent},
		{21408, 400, Operator}, // the account's geo permissions
		{21610, 400, Permanent},
		{21612, 400, Permanent},
		{21614, 400, Permanent},
		{21606, 400, Operator},
		{20005, 401, Operator},
		{21608, 400, Operator},
		{20003, 401, Operator},
		{20404, 404, Operator},
		{99999, 403, Operator}, // unknown code: the status decides
		{20429, 429, Temporary},
		{20500, 500, Temporary},
		{20503, 503, Temporary},
		{21611, 400, Temporary}, // the table wins over the status
		{99999, 400, Permanent}, // unknown code: the status decides
		{99999, 502, Temporary},
		{99999, 429, Temporary},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_%d", tt.code, tt.status), func(t *testing.T) {
			tw, _ := fakeTwilio(t, TwilioConfig{From: "+15005550006"}, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, `{"code": %d, "message": "The 'To' number +97400000000 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/%d", "status": %d}`,
					tt.code, tt.code, tt.status)
			})
			err := tw.Send(context.Background(), Message{To: "+97433123456", Body: testPIN})
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Send = %v, want *Error", err)
			}
			if se.Kind != tt.want || se.Code != fmt.Sprint(tt.code) || se.Provider != "twilio" {
				t.Errorf("got kind %v code %q provider %q, want %v %d twilio", se.Kind, se.Code, se.Provider, tt.want, tt.code)
			}
			if IsPermanent(err) != (tt.want == Permanent) {
				t.Errorf("IsPermanent = %v", IsPermanent(err))
			}
			msg := err.Error()
			if strings.Contains(msg, testToken) || strings.Contains(msg, "482913") {
				t.Errorf("error text leaks the token or the PIN: %s", msg)
			}
		})
	}
}

// TestTwilioKind covers the delivery-time codes (status callbacks carry no
// HTTP status) and the fallbacks.
func TestTwilioKind(t *testing.T) {
	tests := []struct {
		code, status int
		want         Kind
	}{
		{30003, 0, Permanent}, // unreachable handset
		{30004, 0, Permanent}, // blocked
		{30005, 0, Permanent}, // unknown handset
		{30006, 0, Permanent}, // landline
		{30007, 0, Permanent}, // carrier filtered
		{30008, 0, Temporary}, // unknown error
		{30001, 0, Temporary}, // queue overflow
		{30009, 0, Temporary}, // missing segment
		{30007, 500, Permanent},
		{30008, 400, Temporary},
		{12345, 0, Permanent}, // unknown without status: do not retry blindly
		{0, 408, Temporary},
		{0, 504, Temporary},
		{0, 403, Operator},
		{0, 402, Operator},
		{0, 404, Permanent},
		{30002, 0, Operator}, // account suspended
	}
	for _, tt := range tests {
		if got := TwilioKind(tt.code, tt.status); got != tt.want {
			t.Errorf("TwilioKind(%d, %d) = %v, want %v", tt.code, tt.status, got, tt.want)
		}
	}
}

func TestTwilioUndecodableError(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   Kind
	}{{503, Temporary}, {502, Temporary}, {403, Operator}, {400, Permanent}} {
		tw, _ := fakeTwilio(t, TwilioConfig{From: "+15005550006"}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(tt.status)
			io.WriteString(w, "<html><body>upstream trouble</body></html>")
		})
		err := tw.Send(context.Background(), Message{To: "+97433123456", Body: testPIN})
		var se *Error
		if !errors.As(err, &se) || se.Kind != tt.want || se.Code != fmt.Sprintf("http-%d", tt.status) {
			t.Errorf("status %d: Send = %#v, want %v http-%d", tt.status, err, tt.want, tt.status)
		}
	}
}

func TestTwilioCreatedButFailed(t *testing.T) {
	tw, _ := fakeTwilio(t, TwilioConfig{From: "+15005550006"}, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		s := strings.Replace(twilioCreated("+97433123456", "+15005550006", ""), `"error_code":null`, `"error_code":30007`, 1)
		io.WriteString(w, strings.Replace(s, `"status":"queued"`, `"status":"failed"`, 1))
	})
	err := tw.Send(context.Background(), Message{To: "+97433123456", Body: testPIN})
	var se *Error
	if !errors.As(err, &se) || se.Kind != Permanent || se.Code != "30007" {
		t.Fatalf("Send = %v, want permanent 30007", err)
	}
}

func TestTwilioDeadline(t *testing.T) {
	release := make(chan struct{})
	tw, _ := fakeTwilio(t, TwilioConfig{From: "+15005550006"}, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := tw.Send(ctx, Message{To: "+97433123456", Body: testPIN})
	if err == nil || IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want a temporary error wrapping context.DeadlineExceeded", err)
	}

	// An already expired context does not reach the network at all.
	if err := tw.Send(ctx, Message{To: "+97433123456", Body: testPIN}); KindOf(err) != Temporary {
		t.Errorf("Send with expired ctx = %v, want temporary", err)
	}
}

func TestTwilioUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(srv.URL)
	srv.Close() // nothing listens there any more
	tw, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: "+15005550006",
		Transport: &rewriteHost{target: u, base: http.DefaultTransport}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Send(context.Background(), Message{To: "+97433123456", Body: testPIN}); err == nil || IsPermanent(err) {
		t.Fatalf("Send to a closed port = %v, want temporary", err)
	}
}

func TestNewTwilioValidation(t *testing.T) {
	ok := TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: "+15005550006"}
	bad := map[string]func(*TwilioConfig){
		"short SID":       func(c *TwilioConfig) { c.AccountSID = "AC123" },
		"wrong prefix":    func(c *TwilioConfig) { c.AccountSID = "SK" + testSID[2:] },
		"no token":        func(c *TwilioConfig) { c.AuthToken = "" },
		"token with dash": func(c *TwilioConfig) { c.AuthToken = "abc-def" },
		"no sender":       func(c *TwilioConfig) { c.From = "" },
		"both senders":    func(c *TwilioConfig) { c.MessagingServiceSID = "MG0123456789abcdef0123456789abcdef" },
		"bad service":     func(c *TwilioConfig) { c.From = ""; c.MessagingServiceSID = "XX01" },
		"negative valid":  func(c *TwilioConfig) { c.ValidityPeriod = -time.Second },
	}
	if _, err := NewTwilio(ok); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for name, mutate := range bad {
		c := ok
		mutate(&c)
		_, err := NewTwilio(c)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), testToken) {
			t.Errorf("%s: error leaks token", name)
		}
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PARKPORTAL_TEST_SECRET", "fromenv")

	tests := []struct {
		value, file, env string
		want             string
		wantErr          bool
	}{
		{"inline", file, "PARKPORTAL_TEST_SECRET", "inline", false},
		{"", file, "PARKPORTAL_TEST_SECRET", "fromfile", false},
		{"", empty, "PARKPORTAL_TEST_SECRET", "fromenv", false},
		{"", "", "PARKPORTAL_TEST_SECRET", "fromenv", false},
		{"", filepath.Join(dir, "missing"), "PARKPORTAL_TEST_SECRET", "", true},
		{"", "", "PARKPORTAL_TEST_UNSET", "", true},
		{"", "", "", "", true},
	}
	for i, tt := range tests {
		got, err := LoadSecret(tt.value, tt.file, tt.env)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%d: LoadSecret = %q, %v; want %q, err %v", i, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := LoadSecret("", "", ""); !errors.Is(err, ErrNoSecret) {
		t.Errorf("want ErrNoSecret, got %v", err)
	}
}

func TestParseTwilioAPIURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://127.0.0.1:8080":  "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/": "http://127.0.0.1:8080",
		"https://[::1]:9443":     "https://[::1]:9443",
		"http://127.3.2.1:1":     "http://127.3.2.1:1",
	} {
		u, err := ParseTwilioAPIURL(raw)
		if err != nil || u.String() != want {
			t.Errorf("%q: %v, %v; want %s", raw, u, err, want)
		}
	}
	for _, raw := range []string{
		"http://api.twilio.example:80", // a name, not loopback
		"http://localhost:8080",        // a name: could resolve anywhere
		"http://192.0.2.10:8080",       // not loopback
		"ftp://127.0.0.1:21",
		"http://127.0.0.1",               // no port
		"http://127.0.0.1:80/2010-04-01", // a path
		"http://user:pw@127.0.0.1:80",
		"127.0.0.1:8080",
		"",
	} {
		if u, err := ParseTwilioAPIURL(raw); err == nil {
			t.Errorf("%q accepted as %v", raw, u)
		} else if !strings.Contains(err.Error(), TwilioAPIURLEnv) {
			t.Errorf("%q: error %q does not name %s", raw, err, TwilioAPIURLEnv)
		}
	}
}

// TestTwilioAPIBase: with the test override the real twilio-go client's
// requests reach the fake at the override's address, same path; without
// it, sms.New refuses a non-loopback override outright.
func TestTwilioAPIBase(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, twilioCreated("+97433123456", "+15005550006", ""))
	}))
	defer srv.Close()
	s, err := New(ProviderConfig{Provider: "twilio", TwilioAccountSID: testSID, TwilioAuthToken: testToken,
		TwilioFrom: "+15005550006", TwilioAPIURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), Message{To: "+97433123456", Body: testPIN}); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != "/2010-04-01/Accounts/"+testSID+"/Messages.json" {
		t.Errorf("fake saw path %q", p)
	}
	if _, err := New(ProviderConfig{Provider: "twilio", TwilioAccountSID: testSID, TwilioAuthToken: testToken,
		TwilioFrom: "+15005550006", TwilioAPIURL: "https://sms.example.net:443"}); err == nil {
		t.Error("a non-loopback Twilio override was accepted")
	}
}
