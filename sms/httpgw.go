package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Body encodings of an HTTP gateway request.
const (
	ModeForm = "form" // application/x-www-form-urlencoded
	ModeJSON = "json" // application/json
)

// HTTPGatewayConfig describes an operator's SMS gateway: most Qatari and
// regional aggregators take one HTTP request per message with the number
// and text in a form or JSON body, authenticated by a header.
//
// The placeholders {to} and {body} are replaced in URL (query-escaped, for
// gateways that take GET parameters) and in BodyTemplate (form-escaped in
// form mode; JSON-string-escaped in JSON mode, so write them inside quotes:
// {"to":"{to}","text":"{body}"}). Replacement is a single pass: text the
// visitor controls is never expanded again.
type HTTPGatewayConfig struct {
	URL          string
	Method       string            // default POST, or GET when BodyTemplate is empty
	Headers      map[string]string // e.g. "Authorization": "Bearer …"; never logged
	Mode         string            // ModeForm (default) or ModeJSON
	BodyTemplate string

	// A status in [SuccessMin, SuccessMax] (default 200–299) is success,
	// provided the checks below also pass. Many gateways answer 200 with
	// an error inside the body, hence the optional checks.
	SuccessMin, SuccessMax int
	// SuccessContains, if set, must occur in the response body.
	SuccessContains string
	// SuccessJSONField, if set, is a dotted path ("result.status") into a
	// JSON response whose value, as text, must equal SuccessJSONValue.
	SuccessJSONField string
	SuccessJSONValue string

	Timeout   time.Duration     // per request, default 10 s
	Transport http.RoundTripper // nil means http.DefaultTransport
}

// HTTPGateway sends messages through an HTTPGatewayConfig.
type HTTPGateway struct {
	cfg    HTTPGatewayConfig
	client *http.Client
}

// maxGatewayResponse bounds how much of an answer we read: a success flag
// never needs more, and a broken gateway must not fill our memory.
const maxGatewayResponse = 64 << 10

// NewHTTPGateway checks cfg, including that the body template renders to
// valid JSON in JSON mode, and returns a sender.
func NewHTTPGateway(cfg HTTPGatewayConfig) (*HTTPGateway, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("configuring SMS gateway: URL must be http(s)://host/…")
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeForm
	}
	if cfg.Mode != ModeForm && cfg.Mode != ModeJSON {
		return nil, fmt.Errorf("configuring SMS gateway: mode %q is neither %q nor %q", cfg.Mode, ModeForm, ModeJSON)
	}
	if cfg.Method == "" {
		cfg.Method = http.MethodPost
		if cfg.BodyTemplate == "" {
			cfg.Method = http.MethodGet
		}
	}
	cfg.Method = strings.ToUpper(cfg.Method)
	if cfg.SuccessMin == 0 && cfg.SuccessMax == 0 {
		cfg.SuccessMin, cfg.SuccessMax = 200, 299
	}
	if cfg.SuccessMin < 100 || cfg.SuccessMax > 599 || cfg.SuccessMin > cfg.SuccessMax {
		return nil, fmt.Errorf("configuring SMS gateway: bad success status range %d-%d", cfg.SuccessMin, cfg.SuccessMax)
	}
	if cfg.SuccessJSONValue != "" && cfg.SuccessJSONField == "" {
		return nil, errors.New("configuring SMS gateway: success JSON value given without a field")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	// Render with awkward sample values so a template mistake (a JSON
	// placeholder outside quotes, a broken form) shows at start-up, not
	// when the first visitor waits for a PIN.
	sample := Message{To: "+97433123456", Body: "a \"b\" & c=d\n{to} رمز"}
	if body := renderBody(cfg.BodyTemplate, cfg.Mode, sample); body != "" {
		if cfg.Mode == ModeJSON && !json.Valid([]byte(body)) {
			return nil, errors.New("configuring SMS gateway: body template does not render to valid JSON (put {to} and {body} inside quotes)")
		}
		if cfg.Mode == ModeForm {
			if _, err := url.ParseQuery(body); err != nil {
				return nil, fmt.Errorf("configuring SMS gateway: body template is not a valid form: %w", err)
			}
		}
	}
	if _, err := url.Parse(renderURL(cfg.URL, sample)); err != nil {
		return nil, fmt.Errorf("configuring SMS gateway: URL does not render: %w", err)
	}
	return &HTTPGateway{
		cfg: cfg,
		client: &http.Client{
			Transport: cfg.Transport,
			Timeout:   cfg.Timeout,
			// A redirect on a send is a misconfigured URL; following it
			// would turn a POST into a GET and drop the message.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// renderBody fills the body template for mode.
func renderBody(tmpl, mode string, m Message) string {
	if tmpl == "" {
		return ""
	}
	var to, body string
	if mode == ModeJSON {
		to, body = jsonStringContent(m.To), jsonStringContent(m.Body)
	} else {
		to, body = url.QueryEscape(m.To), url.QueryEscape(m.Body)
	}
	return strings.NewReplacer("{to}", to, "{body}", body).Replace(tmpl)
}

// renderURL fills placeholders in the URL, query-escaped.
func renderURL(raw string, m Message) string {
	return strings.NewReplacer("{to}", url.QueryEscape(m.To), "{body}", url.QueryEscape(m.Body)).Replace(raw)
}

// jsonStringContent returns s encoded as the inside of a JSON string
// literal. Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func jsonStringContent(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b[1 : len(b)-1])
}

// Send makes one request to the gateway. 429, 408, 5xx and network
// failures are Temporary; any other status outside the success range is
// Permanent, and so is a success status whose body fails the configured
// check: the gateway processed the request and said no, and repeating it
// risks a second SMS if the check was merely misconfigured.
func (g *HTTPGateway) Send(ctx context.Context, m Message) error {
	var body io.Reader
	if b := renderBody(g.cfg.BodyTemplate, g.cfg.Mode, m); b != "" {
		body = strings.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, g.cfg.Method, renderURL(g.cfg.URL, m), body)
	if err != nil {
		return &Error{Kind: Permanent, Provider: "http", Err: fmt.Errorf("building gateway request: %w", err)}
	}
	if body != nil {
		if g.cfg.Mode == ModeJSON {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	for k, v := range g.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		// The *url.Error names the URL, which may hold {to} and {body}
		// substituted in: report only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &Error{Kind: Temporary, Provider: "http", Err: fmt.Errorf("sending SMS via gateway: %w", err)}
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxGatewayResponse))
	if err != nil {
		return &Error{Kind: Temporary, Provider: "http", Code: "http-" + strconv.Itoa(resp.StatusCode),
			Err: fmt.Errorf("reading gateway response: %w", err)}
	}
	if resp.StatusCode < g.cfg.SuccessMin || resp.StatusCode > g.cfg.SuccessMax {
		// The response body is left out: gateways echo the text, which
		// holds the PIN.
		return &Error{Kind: httpStatusKind(resp.StatusCode), Provider: "http", Code: "http-" + strconv.Itoa(resp.StatusCode),
			Err: fmt.Errorf("gateway answered %s", resp.Status)}
	}
	if g.cfg.SuccessContains != "" && !bytes.Contains(respBody, []byte(g.cfg.SuccessContains)) {
		return &Error{Kind: Permanent, Provider: "http", Code: "rejected",
			Err: fmt.Errorf("gateway response lacks the success marker")}
	}
	if g.cfg.SuccessJSONField != "" {
		got, err := jsonField(respBody, g.cfg.SuccessJSONField)
		if err != nil {
			return &Error{Kind: Permanent, Provider: "http", Code: "rejected", Err: fmt.Errorf("checking gateway response: %w", err)}
		}
		if got != g.cfg.SuccessJSONValue {
			if m.Body != "" && strings.Contains(got, m.Body) {
				got = "[echoed message]" // never put the PIN in an error
			}
			return &Error{Kind: Permanent, Provider: "http", Code: "rejected",
				Err: fmt.Errorf("gateway response field %s is %q, want %q", g.cfg.SuccessJSONField, truncate(got, 40), g.cfg.SuccessJSONValue)}
		}
	}
	return nil
}

// jsonField returns the value at a dotted path in a JSON document as text:
// strings as they are, numbers as written, true/false, null as "null".
func jsonField(doc []byte, path string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("response is not JSON: %w", err)
	}
	for _, key := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("response has no field %s", path)
		}
		if v, ok = obj[key]; !ok {
			return "", fmt.Errorf("response has no field %s", path)
		}
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "null", nil
	}
	return "", fmt.Errorf("response field %s is not a scalar", path)
}

// truncate shortens s to at most n runes.
func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i] + "…"
		}
		n--
	}
	return s
}
