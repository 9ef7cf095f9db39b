package sms

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// gatewayRequest is what the fake gateway saw.
type gatewayRequest struct {
	method, path, ctype, auth string
	query                     url.Values
	body                      string
}

// fakeGateway answers every request with status and answer and hands the
// request it saw to the test.
func fakeGateway(t *testing.T, status int, answer string) (*httptest.Server, chan gatewayRequest) {
	t.Helper()
	seen := make(chan gatewayRequest, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- gatewayRequest{method: r.Method, path: r.URL.Path, ctype: r.Header.Get("Content-Type"),
			auth: r.Header.Get("Authorization"), query: r.URL.Query(), body: string(b)}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

// awkward is a body with everything that breaks naive templating.
const awkward = "رمز الدخول 482913 \"quoted\" & a=b+c\n{to} 100% \\ é"

func TestHTTPGatewayForm(t *testing.T) {
	srv, seen := fakeGateway(t, http.StatusOK, "OK: queued")
	gw, err := NewHTTPGateway(HTTPGatewayConfig{
		URL:             srv.URL + "/api/send",
		Headers:         map[string]string{"Authorization": "Basic dXNlcjpwYXNz"},
		BodyTemplate:    "user=park&to={to}&text={body}&lang=ar",
		SuccessContains: "OK",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Send(context.Background(), Message{To: "+97433123456", Body: awkward}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := <-seen
	if r.method != http.MethodPost || r.path != "/api/send" || r.ctype != "application/x-www-form-urlencoded" || r.auth != "Basic dXNlcjpwYXNz" {
		t.Errorf("request = %+v", r)
	}
	form, err := url.ParseQuery(r.body)
	if err != nil {
		t.Fatalf("body %q is not a form: %v", r.body, err)
	}
	want := url.Values{"user": {"park"}, "to": {"+97433123456"}, "text": {awkward}, "lang": {"ar"}}
	if form.Encode() != want.Encode() {
		t.Errorf("form = %v, want %v", form, want)
	}
}

func TestHTTPGatewayJSON(t *testing.T) {
	srv, seen := fakeGateway(t, http.StatusAccepted, `{"result":{"status":"accepted","id":17}}`)
	gw, err := NewHTTPGateway(HTTPGatewayConfig{
		URL:              srv.URL + "/v1/messages",
		Mode:             ModeJSON,
		Headers:          map[string]string{"Authorization": "Bearer s3cret"},
		BodyTemplate:     `{"sender":"ParkWiFi","to":"{to}","text":"{body}"}`,
		SuccessJSONField: "result.status",
		SuccessJSONValue: "accepted",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Send(context.Background(), Message{To: "+97433123456", Body: awkward}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := <-seen
	if r.ctype != "application/json" || r.auth != "Bearer s3cret" {
		t.Errorf("request = %+v", r)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	if got["to"] != "+97433123456" || got["text"] != awkward || got["sender"] != "ParkWiFi" {
		t.Errorf("JSON body = %v", got)
	}
}

func TestHTTPGatewayGETQuery(t *testing.T) {
	srv, seen := fakeGateway(t, http.StatusOK, "0")
	gw, err := NewHTTPGateway(HTTPGatewayConfig{URL: srv.URL + "/send?to={to}&msg={body}&key=k"})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Send(context.Background(), Message{To: "+97433123456", Body: awkward}); err != nil {
		t.Fatal(err)
	}
	r := <-seen
	if r.method != http.MethodGet || r.query.Get("to") != "+97433123456" || r.query.Get("msg") != awkward || r.query.Get("key") != "k" {
		t.Errorf("request = %+v", r)
	}
}

func TestHTTPGatewayClassification(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		answer   string
		cfg      HTTPGatewayConfig
		wantErr  bool
		wantKind Kind
		wantCode string
	}{
		{name: "200", status: 200, answer: "ok"},
		{name: "custom range", status: 302, answer: "", cfg: HTTPGatewayConfig{SuccessMin: 200, SuccessMax: 399}},
		{name: "500", status: 500, wantErr: true, wantKind: Temporary, wantCode: "http-500"},
		{name: "503", status: 503, wantErr: true, wantKind: Temporary, wantCode: "http-503"},
		{name: "429", status: 429, wantErr: true, wantKind: Temporary, wantCode: "http-429"},
		{name: "408", status: 408, wantErr: true, wantKind: Temporary, wantCode: "http-408"},
		{name: "400", status: 400, wantErr: true, wantKind: Permanent, wantCode: "http-400"},
		// Our credentials, our credit, our account: an operator fault.
		{name: "401", status: 401, wantErr: true, wantKind: Operator, wantCode: "http-401"},
		{name: "402", status: 402, wantErr: true, wantKind: Operator, wantCode: "http-402"},
		{name: "403", status: 403, wantErr: true, wantKind: Operator, wantCode: "http-403"},
		{name: "404", status: 404, wantErr: true, wantKind: Permanent, wantCode: "http-404"},
		{name: "redirect", status: 302, wantErr: true, wantKind: Permanent, wantCode: "http-302"},
		{name: "marker missing", status: 200, answer: "ERR 17 invalid number",
			cfg: HTTPGatewayConfig{SuccessContains: "OK"}, wantErr: true, wantKind: Permanent, wantCode: "rejected"},
		{name: "json mismatch", status: 200, answer: `{"status":"error","code":3}`,
			cfg: HTTPGatewayConfig{SuccessJSONField: "status", SuccessJSONValue: "ok"}, wantErr: true, wantKind: Permanent, wantCode: "rejected"},
		{name: "json number", status: 200, answer: `{"code":0}`,
			cfg: HTTPGatewayConfig{SuccessJSONField: "code", SuccessJSONValue: "0"}},
		{name: "json bool", status: 200, answer: `{"data":{"sent":true}}`,
			cfg: HTTPGatewayConfig{SuccessJSONField: "data.sent", SuccessJSONValue: "true"}},
		{name: "json missing", status: 200, answer: `{"data":{}}`,
			cfg: HTTPGatewayConfig{SuccessJSONField: "data.sent", SuccessJSONValue: "true"}, wantErr: true, wantKind: Permanent, wantCode: "rejected"},
		{name: "not json", status: 200, answer: `<html>`,
			cfg: HTTPGatewayConfig{SuccessJSONField: "ok", SuccessJSONValue: "true"}, wantErr: true, wantKind: Permanent, wantCode: "rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakeGateway(t, tt.status, tt.answer)
			cfg := tt.cfg
			cfg.URL = srv.URL
			cfg.BodyTemplate = "to={to}&text={body}"
			gw, err := NewHTTPGateway(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = gw.Send(context.Background(), Message{To: "+97433123456", Body: "PIN 482913"})
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Send = %v, want success", err)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) || se.Kind != tt.wantKind || se.Code != tt.wantCode || se.Provider != "http" {
				t.Fatalf("Send = %#v, want %v %s", err, tt.wantKind, tt.wantCode)
			}
			if strings.Contains(err.Error(), "482913") {
				t.Errorf("error leaks the PIN: %v", err)
			}
		})
	}
}

func TestHTTPGatewayTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	gw, err := NewHTTPGateway(HTTPGatewayConfig{URL: srv.URL + "/?text={body}", Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = gw.Send(context.Background(), Message{To: "+97433123456", Body: "PIN 482913"})
	if err == nil || IsPermanent(err) {
		t.Fatalf("Send = %v, want temporary", err)
	}
	if strings.Contains(err.Error(), "482913") {
		t.Errorf("timeout error leaks the PIN through the URL: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	gw.client.Timeout = time.Minute
	if err := gw.Send(ctx, Message{To: "+97433123456", Body: "x"}); !errors.Is(err, context.DeadlineExceeded) || IsPermanent(err) {
		t.Fatalf("Send with ctx deadline = %v, want temporary DeadlineExceeded", err)
	}
}

func TestNewHTTPGatewayValidation(t *testing.T) {
	bad := []HTTPGatewayConfig{
		{URL: ""},
		{URL: "ftp://gw/"},
		{URL: "https://gw/", Mode: "xml", BodyTemplate: "x"},
		{URL: "https://gw/", Mode: ModeJSON, BodyTemplate: `{"to":{to},"text":"{body}"}`}, // placeholder outside quotes
		{URL: "https://gw/", Mode: ModeJSON, BodyTemplate: `{"to":"{to}"`},                // broken JSON
		{URL: "https://gw/", BodyTemplate: "to={to}&x=%zz"},                               // broken form
		{URL: "https://gw/", SuccessMin: 300, SuccessMax: 200},
		{URL: "https://gw/", SuccessJSONValue: "ok"},
	}
	for i, c := range bad {
		if _, err := NewHTTPGateway(c); err == nil {
			t.Errorf("%d: %+v accepted", i, c)
		}
	}
}

// FuzzGatewayRender checks that whatever number and text a visitor's
// request carries, the rendered body stays well-formed and decodes back to
// exactly what was sent, in both modes.
func FuzzGatewayRender(f *testing.F) {
	f.Add("+97433123456", awkward)
	f.Add("{body}", "{to}")
	f.Add("", "\x00\u2028\u2029</script>")
	f.Add("a&b=c", "%%%+ +")
	jsonTmpl := `{"to":"{to}","text":"{body}","again":"{body}"}`
	formTmpl := "to={to}&text={body}&again={body}&hex={body_ucs2}&auto={body_auto}&dcs={dcs}"
	f.Fuzz(func(t *testing.T, to, body string) {
		m := Message{To: to, Body: body}

		js := renderBody(jsonTmpl, ModeJSON, m)
		var got map[string]string
		if err := json.Unmarshal([]byte(js), &got); err != nil {
			t.Fatalf("JSON mode rendered invalid JSON %q: %v", js, err)
		}
		if utf8.ValidString(to) && utf8.ValidString(body) {
			if got["to"] != to || got["text"] != body || got["again"] != body || len(got) != 3 {
				t.Fatalf("JSON round trip: got %q, want to=%q text=%q", got, to, body)
			}
		}

		fs := renderBody(formTmpl, ModeForm, m)
		form, err := url.ParseQuery(fs)
		if err != nil {
			t.Fatalf("form mode rendered invalid form %q: %v", fs, err)
		}
		if form.Get("to") != to || form.Get("text") != body || form.Get("again") != body || len(form) != 6 {
			t.Fatalf("form round trip: got %q, want to=%q text=%q", form, to, body)
		}
		if utf8.ValidString(body) {
			if got := decodeUCS2Hex(t, form.Get("hex")); got != body {
				t.Fatalf("UCS-2 hex round trip: %q, want %q", got, body)
			}
			auto := form.Get("auto")
			if form.Get("dcs") == "8" {
				auto = decodeUCS2Hex(t, auto)
			}
			if auto != body || (form.Get("dcs") == "8") != MeasureText(body).UCS2 {
				t.Fatalf("auto body %q with dcs %s, want %q", form.Get("auto"), form.Get("dcs"), body)
			}
		}

		u, err := url.Parse(renderURL("https://gw.example/send?to={to}&text={body}", m))
		if err != nil {
			t.Fatalf("URL did not render: %v", err)
		}
		if q := u.Query(); q.Get("to") != to || q.Get("text") != body {
			t.Fatalf("URL round trip: got %q", q)
		}
	})
}

// decodeUCS2Hex reads back what {body_ucs2} wrote.
func decodeUCS2Hex(t *testing.T, h string) string {
	t.Helper()
	if len(h)%4 != 0 {
		t.Fatalf("UCS-2 hex %q is not whole units", h)
	}
	var units []uint16
	for i := 0; i < len(h); i += 4 {
		n, err := strconv.ParseUint(h[i:i+4], 16, 16)
		if err != nil {
			t.Fatalf("UCS-2 hex %q: %v", h, err)
		}
		units = append(units, uint16(n))
	}
	return string(utf16.Decode(units))
}

// TestHTTPGatewayNumberFormats: {to} in each format an operator may
// want; a number of another country has no national form and fails
// without a request.
func TestHTTPGatewayNumberFormats(t *testing.T) {
	for format, want := range map[string]string{"": "+97433123456", NumberE164: "+97433123456",
		NumberInternational: "97433123456", Number00: "0097433123456", NumberNational: "33123456"} {
		srv, seen := fakeGateway(t, http.StatusOK, "OK")
		gw, err := NewHTTPGateway(HTTPGatewayConfig{URL: srv.URL + "/send?msisdn={to}", BodyTemplate: "to={to}&text={body}",
			NumberFormat: format, CountryCode: "974"})
		if err != nil {
			t.Fatalf("%q: %v", format, err)
		}
		if err := gw.Send(context.Background(), Message{To: "+97433123456", Body: "PIN 482913"}); err != nil {
			t.Fatalf("%q: %v", format, err)
		}
		r := <-seen
		form, _ := url.ParseQuery(r.body)
		if form.Get("to") != want || r.query.Get("msisdn") != want {
			t.Errorf("format %q: body to=%q, URL msisdn=%q, want %q", format, form.Get("to"), r.query.Get("msisdn"), want)
		}
	}
	srv, seen := fakeGateway(t, http.StatusOK, "OK")
	gw, err := NewHTTPGateway(HTTPGatewayConfig{URL: srv.URL, BodyTemplate: "to={to}", NumberFormat: NumberNational, CountryCode: "974"})
	if err != nil {
		t.Fatal(err)
	}
	err = gw.Send(context.Background(), Message{To: "+447400123456", Body: "x"})
	var se *Error
	if !errors.As(err, &se) || se.Kind != Permanent || se.Code != "number-format" || !NotSent(err) || len(seen) != 0 {
		t.Errorf("a foreign number in national format: %#v, %d requests", err, len(seen))
	}
	for _, bad := range []HTTPGatewayConfig{
		{NumberFormat: "local"},
		{NumberFormat: NumberNational},
		{NumberFormat: NumberNational, CountryCode: "0974"},
		{NumberFormat: NumberNational, CountryCode: "97a"},
		{NumberFormat: NumberE164, CountryCode: "9745"},
	} {
		bad.URL = "https://gw.example/"
		if _, err := NewHTTPGateway(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestHTTPGatewayUCS2: {body_ucs2} is UCS-2 big-endian hex as Gulf
// gateways want it with dcs=8; {body_auto} and {dcs} send English as
// GSM-7 text (160 a segment) and Arabic as UCS-2.
func TestHTTPGatewayUCS2(t *testing.T) {
	srv, seen := fakeGateway(t, http.StatusOK, "OK")
	gw, err := NewHTTPGateway(HTTPGatewayConfig{URL: srv.URL,
		BodyTemplate: "to={to}&hex={body_ucs2}&text={body_auto}&dcs={dcs}&coding={coding}&unicode={unicode}"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		body                               string
		hex, text, dcs, coding, unicodeVal string
	}{
		{"رمز 12", "063106450632002000310032", "063106450632002000310032", "8", "2", "1"},
		{"PIN 12", "00500049004E002000310032", "PIN 12", "0", "0", "0"},
		{"😀", "D83DDE00", "D83DDE00", "8", "2", "1"},
	}
	for _, c := range cases {
		if err := gw.Send(context.Background(), Message{To: "+97433123456", Body: c.body}); err != nil {
			t.Fatal(err)
		}
		form, _ := url.ParseQuery((<-seen).body)
		if form.Get("hex") != c.hex || form.Get("text") != c.text || form.Get("dcs") != c.dcs || form.Get("coding") != c.coding || form.Get("unicode") != c.unicodeVal {
			t.Errorf("%q: got %q", c.body, form)
		}
	}
}
