package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// TwilioConfig holds what the Twilio sender needs. Callers fill AuthToken
// with LoadSecret so the token can live in a file or the environment rather
// than in the main config file.
type TwilioConfig struct {
	AccountSID string // "AC…", 34 characters
	AuthToken  string // never logged

	// Exactly one of From (an E.164 number or alphanumeric sender ID) and
	// MessagingServiceSID ("MG…") is required. A Messaging Service lets
	// Twilio pick a sender per destination country, which Qatar's
	// operators may require for alphanumeric sender IDs.
	From                string
	MessagingServiceSID string

	// ValidityPeriod, if set, asks Twilio to drop the message if it is
	// still queued after this long. Set it to the PIN's lifetime: an SMS
	// that arrives after its PIN expired only confuses the visitor.
	ValidityPeriod time.Duration

	// Timeout bounds one API request (default 10 s, twilio-go's own).
	Timeout time.Duration

	// Transport carries the requests; nil means http.DefaultTransport.
	// Tests and outbound proxies set it.
	Transport http.RoundTripper

	// APIBase, for tests only, sends every request to this scheme and host
	// instead of https://api.twilio.com (twilio-go's base URL is fixed),
	// path unchanged. See ParseTwilioAPIURL: only loopback is accepted.
	APIBase *url.URL
}

// TwilioAPIURLEnv names the environment variable with which the daemon
// sends its Twilio requests to a fake Twilio instead of api.twilio.com:
// the end-to-end tests run one on the gateway's loopback. It is for
// tests only: ParseTwilioAPIURL accepts nothing but a loopback address,
// and the daemon logs a warning at every start while it is set.
const TwilioAPIURLEnv = "PARKPORTAL_TWILIO_API_URL"

// ParseTwilioAPIURL checks a test override of Twilio's API base URL:
// http or https, a loopback IP address (127.0.0.0/8 or ::1) and a port,
// no path. Anything else is refused, so the override cannot quietly send
// a production gateway's credentials and visitors' numbers elsewhere.
func ParseTwilioAPIURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", TwilioAPIURLEnv, raw, err)
	}
	ip, perr := netip.ParseAddr(u.Hostname())
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%s=%q: want http://127.0.0.1:PORT (a fake Twilio for tests)", TwilioAPIURLEnv, raw)
	case perr != nil || !ip.IsLoopback():
		return nil, fmt.Errorf("%s=%q: only a loopback address is allowed (it is for tests against a fake Twilio)", TwilioAPIURLEnv, raw)
	case u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		return nil, fmt.Errorf("%s=%q: want scheme, loopback address and port only, like http://127.0.0.1:8080", TwilioAPIURLEnv, raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// toAPIBase sends requests to base instead of the host in their URL.
type toAPIBase struct {
	base *url.URL
	next http.RoundTripper
}

func (t toAPIBase) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = t.base.Scheme, t.base.Host, ""
	return t.next.RoundTrip(out)
}

// Twilio sends messages through Twilio's Programmable Messaging API.
type Twilio struct {
	cfg TwilioConfig
}

// NewTwilio checks cfg and returns a sender. It does not contact Twilio.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	// twilio-go itself rejects non-alphanumeric credentials (codes 21222 and
	// 21224) on every request; failing here reports the mistake at start-up.
	if !strings.HasPrefix(cfg.AccountSID, "AC") || len(cfg.AccountSID) != 34 || !alnum(cfg.AccountSID) {
		return nil, errors.New("configuring twilio: account SID must be \"AC\" followed by 32 hex digits")
	}
	if cfg.AuthToken == "" || !alnum(cfg.AuthToken) {
		return nil, errors.New("configuring twilio: auth token is empty or not alphanumeric")
	}
	switch {
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		return nil, errors.New("configuring twilio: need a From number or a Messaging Service SID")
	case cfg.From != "" && cfg.MessagingServiceSID != "":
		return nil, errors.New("configuring twilio: set either From or Messaging Service SID, not both")
	case cfg.MessagingServiceSID != "" && !strings.HasPrefix(cfg.MessagingServiceSID, "MG"):
		return nil, errors.New("configuring twilio: Messaging Service SID must start with \"MG\"")
	}
	if cfg.ValidityPeriod < 0 {
		return nil, errors.New("configuring twilio: negative validity period")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.APIBase != nil {
		base, err := ParseTwilioAPIURL(cfg.APIBase.String())
		if err != nil {
			return nil, fmt.Errorf("configuring twilio: %w", err)
		}
		cfg.Transport = toAPIBase{base: base, next: cfg.Transport}
	}
	return &Twilio{cfg: cfg}, nil
}

func alnum(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// Send creates one message. It returns an *Error classified with
// TwilioKind.
//
// twilio-go builds its requests with context.Background(), so to honour ctx
// each call gets its own http.Client whose transport attaches ctx to the
// request. The API service is the same one twilio.NewRestClientWithParams
// (twilio.ClientParams{Client: c}) would put in RestClient.Api, without the
// other sixty services we do not use.
func (t *Twilio) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return &Error{Kind: Temporary, Provider: "twilio", Err: err}
	}
	tr := &callTransport{ctx: ctx, base: t.cfg.Transport}
	c := &client.Client{
		Credentials: client.NewCredentials(t.cfg.AccountSID, t.cfg.AuthToken),
		HTTPClient: &http.Client{
			Transport: tr,
			Timeout:   t.cfg.Timeout,
			// Like twilio-go's default client: a redirect is never a
			// success for a POST that creates a message.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.SetAccountSid(t.cfg.AccountSID)
	api := openapi.NewApiServiceWithClient(c)

	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	params.SetBody(m.Body)
	if t.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(t.cfg.MessagingServiceSID)
	} else {
		params.SetFrom(t.cfg.From)
	}
	if t.cfg.ValidityPeriod > 0 {
		params.SetValidityPeriod(int((t.cfg.ValidityPeriod + time.Second - 1) / time.Second))
	}

	msg, err := api.CreateMessage(params)
	// twilio-go does not close the body of an error response; we do, so
	// the connection is reused instead of leaked.
	tr.closeBodies()
	if err != nil {
		return classifyTwilio(err, tr.status)
	}
	if msg.ErrorCode != nil && *msg.ErrorCode != 0 {
		return &Error{
			Kind:     TwilioKind(*msg.ErrorCode, 0),
			Code:     strconv.Itoa(*msg.ErrorCode),
			Provider: "twilio",
			Err:      fmt.Errorf("message created with status %q", deref(msg.Status)),
		}
	}
	if s := deref(msg.Status); s == "failed" || s == "undelivered" {
		return &Error{Kind: Temporary, Provider: "twilio", Err: fmt.Errorf("message created with status %q", s)}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// classifyTwilio turns what CreateMessage returned into an *Error. status
// is the last HTTP status seen (0 if none); it decides when twilio-go could
// not decode an error body, e.g. an HTML 503 page from a proxy.
func classifyTwilio(err error, status int) error {
	wrapped := fmt.Errorf("sending SMS via twilio: %w", err)
	var re *client.TwilioRestError
	if errors.As(err, &re) {
		return &Error{Kind: TwilioKind(re.Code, re.Status), Code: strconv.Itoa(re.Code), Provider: "twilio", Err: wrapped}
	}
	var rv1 *client.RestErrorV1
	if errors.As(err, &rv1) {
		return &Error{Kind: TwilioKind(rv1.Code, rv1.HttpStatusCode), Code: strconv.Itoa(rv1.Code), Provider: "twilio", Err: wrapped}
	}
	if isTransport(err) {
		return &Error{Kind: Temporary, Provider: "twilio", Err: wrapped}
	}
	if status != 0 {
		return &Error{Kind: httpStatusKind(status), Code: "http-" + strconv.Itoa(status), Provider: "twilio", Err: wrapped}
	}
	return &Error{Kind: Temporary, Provider: "twilio", Err: wrapped}
}

// twilioCodes classifies the Twilio error codes a PIN sender can meet.
// 21xxx come back synchronously from the Messages API; 300xx arrive as a
// message's error_code (in the create response when Twilio fails it at
// once, otherwise in status callbacks), and are classified here so that a
// callback handler can use TwilioKind too.
var twilioCodes = map[int]Kind{
	// The recipient cannot get this message: a retry fails the same way.
	21211: Permanent, // invalid 'To' number: the visitor mistyped it
	21610: Permanent, // recipient replied STOP to this sender; only they can undo it
	21612: Permanent, // no route from this sender to this 'To' number
	21614: Permanent, // 'To' is not a mobile number (landline)
	30003: Permanent, // unreachable handset: phone off or out of coverage; the carrier already retried, and by the time we know the PIN has nearly expired, so the visitor must request a new one
	30004: Permanent, // message blocked (by the recipient or the carrier)
	30005: Permanent, // unknown handset: the number does not exist
	30006: Permanent, // landline or unreachable carrier
	30007: Permanent, // carrier filtered the content as spam; the same text is filtered again

	// Our account or configuration is refused: no visitor gets a PIN
	// until staff fix it, so visitors are told to try later and the
	// breaker opens at once (see Operator).
	20003: Operator, // authentication failed: wrong account SID or token
	20005: Operator, // account not active: out of funds, or a trial never activated
	10001: Operator, // account not active (suspended, balance at or below zero)
	20404: Operator, // resource not found: wrong account SID
	20008: Operator, // test credentials cannot send real messages
	21222: Operator, // twilio-go: account SID has illegal characters
	21224: Operator, // twilio-go: auth token has illegal characters
	21408: Operator, // no permission to send to this region: the account's geo permissions, for every visitor alike
	21601: Operator, // 'From' is not an SMS-capable number of this account
	21606: Operator, // 'From' is not an SMS-capable number of this account (for this destination)
	21212: Operator, // 'From' is not a valid number or sender ID
	21603: Operator, // 'From' missing
	21608: Operator, // trial account: it can only text numbers verified in its console
	21659: Operator, // 'From' is not a Twilio number (or a short code of another country)
	21661: Operator, // 'From' is not SMS-capable
	30002: Operator, // account suspended
	30010: Operator, // price exceeds the MaxPrice we set

	// Our message is wrong: no retry fixes it.
	21602: Permanent, // body missing
	21617: Permanent, // body over 1600 characters

	// Load or a transient fault at Twilio or the carrier: worth a retry
	// after a back-off.
	14107: Temporary, // SMS send rate limit exceeded
	20429: Temporary, // too many concurrent requests
	20500: Temporary, // Twilio internal error
	20503: Temporary, // Twilio service unavailable
	21611: Temporary, // 'From' number has too many queued messages
	30001: Temporary, // queue overflow
	30008: Temporary, // unknown error: Twilio's own advice is to retry
	30009: Temporary, // a segment of a multi-part message went missing
}

// TwilioKind classifies a Twilio error code, falling back to the HTTP
// status (0 if unknown) for codes not in the table: 429 and 5xx are
// Temporary, 401, 402, 403 and 407 Operator, everything else Permanent.
func TwilioKind(code, status int) Kind {
	if k, ok := twilioCodes[code]; ok {
		return k
	}
	if status == 0 {
		// An unknown code without a status: a delivery-time failure we
		// have not classified. Not retrying is the cheaper mistake.
		return Permanent
	}
	return httpStatusKind(status)
}

// httpStatusKind classifies an HTTP error status: the server asked us to
// slow down (429), timed out waiting for us (408) or failed itself (5xx)
// → Temporary; it refused our credentials or account (401, 403), wants
// payment (402, an operator's "no credit") or our proxy's credentials
// (407) → Operator; any other status means the request itself is wrong.
func httpStatusKind(status int) Kind {
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
		return Temporary
	case status == http.StatusUnauthorized || status == http.StatusPaymentRequired || status == http.StatusForbidden ||
		status == http.StatusProxyAuthRequired:
		return Operator
	}
	return Permanent
}

// callTransport attaches one Send's context to every request and remembers
// the responses, so Send can classify undecodable errors by status and
// close the bodies twilio-go leaves open.
type callTransport struct {
	ctx    context.Context
	base   http.RoundTripper
	status int
	resps  []*http.Response
}

func (c *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req.WithContext(c.ctx))
	if resp != nil {
		c.status = resp.StatusCode
		c.resps = append(c.resps, resp)
	}
	return resp, err
}

func (c *callTransport) closeBodies() {
	for _, r := range c.resps {
		r.Body.Close()
	}
}

// ErrNoSecret means none of the places LoadSecret was told to look held a
// value.
var ErrNoSecret = errors.New("no secret configured")

// LoadSecret returns the first non-empty of: value itself, the contents of
// file (surrounding white space trimmed, as files written with echo end in
// a newline), and the environment variable env. Empty arguments are
// skipped. A file that is named but unreadable is an error rather than a
// silent fall-through, so a typo in the path does not pick up a stale
// environment variable.
func LoadSecret(value, file, env string) (string, error) {
	if value != "" {
		return value, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	}
	if env != "" {
		if s := os.Getenv(env); s != "" {
			return s, nil
		}
	}
	return "", ErrNoSecret
}
