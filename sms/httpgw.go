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
	"unicode/utf16"
)

// Body encodings of an HTTP gateway request.
const (
	ModeForm = "form" // application/x-www-form-urlencoded
	ModeJSON = "json" // application/json
)

// Number formats for {to}: what the operator's gateway calls a number.
const (
	NumberE164          = "e164"          // +97433123456 (the default)
	NumberInternational = "international" // 97433123456
	Number00            = "00"            // 0097433123456
	NumberNational      = "national"      // 33123456: needs CountryCode
)

// HTTPGatewayConfig describes an operator's SMS gateway: most Qatari and
// regional aggregators take one HTTP request per message with the number
// and text in a form or JSON body, authenticated by a header.
//
// Placeholders are replaced in URL (query-escaped, for gateways that take
// GET parameters) and in BodyTemplate (form-escaped in form mode;
// JSON-string-escaped in JSON mode, so write them inside quotes:
// {"to":"{to}","text":"{body}"}). Replacement is a single pass: text the
// visitor controls is never expanded again.
//
//	{to}         the number, in NumberFormat
//	{body}       the text as it is (UTF-8)
//	{body_ucs2}  the text as UCS-2 big-endian hex, four digits a UTF-16
//	             unit ("0631064506320643…"), as many Gulf gateways want
//	             it with dcs=8
//	{body_auto}  {body_ucs2} when the text needs UCS-2 (any Arabic),
//	             {body} when it fits GSM-7 (so English stays 160 a segment)
//	{dcs}        the data coding scheme {body_auto} needs: 8 or 0
//	{coding}     the same in Kannel's numbering: 2 or 0
//	{unicode}    the same as a flag: 1 or 0
type HTTPGatewayConfig struct {
	URL          string
	Method       string            // default POST, or GET when BodyTemplate is empty
	Headers      map[string]string // e.g. "Authorization": "Bearer …"; never logged
	Mode         string            // ModeForm (default) or ModeJSON
	BodyTemplate string

	// NumberFormat is how {to} is written: NumberE164 (default),
	// NumberInternational, Number00 or NumberNational. National numbers
	// drop CountryCode (digits, e.g. "974"); a number of another country
	// cannot be sent in that format and fails without a request.
	NumberFormat string
	CountryCode  string

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
	switch cfg.NumberFormat {
	case "":
		cfg.NumberFormat = NumberE164
	case NumberE164, NumberInternational, Number00:
	case NumberNational:
		if !validCountryCode(cfg.CountryCode) {
			return nil, fmt.Errorf("configuring SMS gateway: national number format needs the country calling code (1 to 3 digits, e.g. 974), got %q", cfg.CountryCode)
		}
	default:
		return nil, fmt.Errorf("configuring SMS gateway: number format %q is not one of %s, %s, %s, %s",
			cfg.NumberFormat, NumberE164, NumberInternational, Number00, NumberNational)
	}
	if cfg.CountryCode != "" && !validCountryCode(cfg.CountryCode) {
		return nil, fmt.Errorf("configuring SMS gateway: country code must be 1 to 3 digits (e.g. 974), got %q", cfg.CountryCode)
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

func validCountryCode(cc string) bool {
	if len(cc) < 1 || len(cc) > 3 || cc[0] == '0' {
		return false
	}
	for _, c := range cc {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// errNoRequest marks a failure before any request was made, so NotSent
// knows nothing went out.
var errNoRequest = errors.New("no request was made")

// formatNumber writes an E.164 number the way the gateway wants it.
func formatNumber(e164, format, cc string) (string, error) {
	digits, ok := strings.CutPrefix(e164, "+")
	if !ok {
		return "", fmt.Errorf("%w: number is not in E.164 form", errNoRequest)
	}
	switch format {
	case NumberInternational:
		return digits, nil
	case Number00:
		return "00" + digits, nil
	case NumberNational:
		national, ok := strings.CutPrefix(digits, cc)
		if !ok || national == "" {
			return "", fmt.Errorf("%w: the number is not in country +%s, so it has no national form", errNoRequest, cc)
		}
		return national, nil
	}
	return e164, nil
}

// fields are a message's placeholder values, before escaping.
func fields(m Message) []string {
	hex := ucs2Hex(m.Body)
	auto, dcs, coding, unicode := m.Body, "0", "0", "0"
	if MeasureText(m.Body).UCS2 {
		auto, dcs, coding, unicode = hex, "8", "2", "1"
	}
	return []string{"{to}", m.To, "{body}", m.Body, "{body_ucs2}", hex, "{body_auto}", auto,
		"{dcs}", dcs, "{coding}", coding, "{unicode}", unicode}
}

// ucs2Hex writes s as UCS-2 (UTF-16) big-endian hex, four upper-case
// digits a unit; a character outside the BMP is its surrogate pair.
func ucs2Hex(s string) string {
	units := utf16.Encode([]rune(s))
	b := make([]byte, 0, 4*len(units))
	for _, u := range units {
		b = append(b, "0123456789ABCDEF"[u>>12], "0123456789ABCDEF"[u>>8&0xf], "0123456789ABCDEF"[u>>4&0xf], "0123456789ABCDEF"[u&0xf])
	}
	return string(b)
}

// replacer fills the placeholders, each value escaped by esc.
func replacer(m Message, esc func(string) string) *strings.Replacer {
	f := fields(m)
	for i := 1; i < len(f); i += 2 {
		f[i] = esc(f[i])
	}
	return strings.NewReplacer(f...)
}

// renderBody fills the body template for mode; m.To is already in the
// gateway's number format.
func renderBody(tmpl, mode string, m Message) string {
	if tmpl == "" {
		return ""
	}
	esc := url.QueryEscape
	if mode == ModeJSON {
		esc = jsonStringContent
	}
	return replacer(m, esc).Replace(tmpl)
}

// renderURL fills placeholders in the URL, query-escaped.
func renderURL(raw string, m Message) string {
	return replacer(m, url.QueryEscape).Replace(raw)
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
	to, err := formatNumber(m.To, g.cfg.NumberFormat, g.cfg.CountryCode)
	if err != nil {
		return &Error{Kind: Permanent, Code: "number-format", Provider: "http", Err: err}
	}
	m.To = to
	var body io.Reader
	if b := renderBody(g.cfg.BodyTemplate, g.cfg.Mode, m); b != "" {
		body = strings.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, g.cfg.Method, renderURL(g.cfg.URL, m), body)
	if err != nil {
		return &Error{Kind: Operator, Provider: "http", Err: fmt.Errorf("building gateway request: %w: %w", errNoRequest, err)}
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
