package sms

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProviderConfig is the SMS section of the daemon's config. Every field is
// a plain string (or a map of strings) so the config package can fill it
// from any file format or the environment without knowing our types;
// New parses and checks it. Empty fields take the documented defaults.
type ProviderConfig struct {
	Provider string // "console" (default), "twilio" or "http"

	// console: the lab sender.
	Outbox string // JSON-lines file the lab reads PINs from; "" for none

	// twilio. The token is taken from the first non-empty of
	// TwilioAuthToken, the file TwilioAuthTokenFile and the environment
	// variable TwilioAuthTokenEnv (default TWILIO_AUTH_TOKEN, Twilio's
	// own convention).
	TwilioAccountSID          string
	TwilioAuthToken           string
	TwilioAuthTokenFile       string
	TwilioAuthTokenEnv        string
	TwilioFrom                string
	TwilioMessagingServiceSID string
	TwilioValidity            string // e.g. "10m": drop the SMS if still queued then
	// TwilioAPIURL, for tests only, is a fake Twilio's base URL on
	// loopback (the daemon takes it from $PARKPORTAL_TWILIO_API_URL).
	TwilioAPIURL string

	// http: an operator gateway, see HTTPGatewayConfig. The auth header's
	// value comes, like the Twilio token, from value, file or environment.
	HTTPURL              string
	HTTPMethod           string
	HTTPMode             string // "form" or "json"
	HTTPBodyTemplate     string
	HTTPHeaders          map[string]string
	HTTPAuthHeader       string // e.g. "Authorization"
	HTTPAuthValue        string
	HTTPAuthFile         string
	HTTPAuthEnv          string
	HTTPSuccessStatus    string // "200-299" (default) or a single "200"
	HTTPSuccessContains  string
	HTTPSuccessJSONField string
	HTTPSuccessJSONValue string
	HTTPNumberFormat     string // e164 (default), international, 00 or national
	HTTPCountryCode      string // digits, e.g. "974": required for national

	// Delivery policy for twilio and http (see Retrying and Breaker).
	Timeout         string // per request, e.g. "10s"
	RetryAttempts   string // e.g. "3"
	RetryBackoff    string // e.g. "1s"
	RetryDeadline   string // e.g. "20s"
	BreakerFailures string // e.g. "5"
	BreakerCooldown string // e.g. "30s"
}

// New builds the Sender cfg describes. Network providers come wrapped as
// Breaker(Retrying(provider)): a whole retried send counts as one failure
// for the breaker, so it opens after five visitors in a row could not get
// a PIN, not after five HTTP requests.
func New(cfg ProviderConfig) (Sender, error) {
	var p sparser
	timeout := p.duration("timeout", cfg.Timeout)
	var provider Sender
	switch strings.ToLower(cfg.Provider) {
	case "", "console":
		return NewConsole(os.Stdout, cfg.Outbox), nil
	case "twilio":
		env := cfg.TwilioAuthTokenEnv
		if env == "" {
			env = "TWILIO_AUTH_TOKEN"
		}
		token, err := LoadSecret(cfg.TwilioAuthToken, cfg.TwilioAuthTokenFile, env)
		if err != nil {
			return nil, fmt.Errorf("loading twilio auth token: %w", err)
		}
		validity := p.duration("twilio validity", cfg.TwilioValidity)
		if p.err != nil {
			return nil, p.err
		}
		var apiBase *url.URL
		if cfg.TwilioAPIURL != "" {
			if apiBase, err = ParseTwilioAPIURL(cfg.TwilioAPIURL); err != nil {
				return nil, fmt.Errorf("configuring twilio: %w", err)
			}
		}
		tw, err := NewTwilio(TwilioConfig{
			AccountSID:          cfg.TwilioAccountSID,
			AuthToken:           token,
			From:                cfg.TwilioFrom,
			MessagingServiceSID: cfg.TwilioMessagingServiceSID,
			ValidityPeriod:      validity,
			Timeout:             timeout,
			APIBase:             apiBase,
		})
		if err != nil {
			return nil, err
		}
		provider = tw
	case "http":
		headers := make(map[string]string, len(cfg.HTTPHeaders)+1)
		for k, v := range cfg.HTTPHeaders {
			headers[k] = v
		}
		if cfg.HTTPAuthHeader != "" {
			v, err := LoadSecret(cfg.HTTPAuthValue, cfg.HTTPAuthFile, cfg.HTTPAuthEnv)
			if err != nil {
				return nil, fmt.Errorf("loading SMS gateway auth header: %w", err)
			}
			headers[cfg.HTTPAuthHeader] = v
		}
		lo, hi := p.statusRange(cfg.HTTPSuccessStatus)
		if p.err != nil {
			return nil, p.err
		}
		gw, err := NewHTTPGateway(HTTPGatewayConfig{
			URL:              cfg.HTTPURL,
			Method:           cfg.HTTPMethod,
			Headers:          headers,
			Mode:             cfg.HTTPMode,
			BodyTemplate:     cfg.HTTPBodyTemplate,
			SuccessMin:       lo,
			SuccessMax:       hi,
			SuccessContains:  cfg.HTTPSuccessContains,
			SuccessJSONField: cfg.HTTPSuccessJSONField,
			SuccessJSONValue: cfg.HTTPSuccessJSONValue,
			NumberFormat:     cfg.HTTPNumberFormat,
			CountryCode:      cfg.HTTPCountryCode,
			Timeout:          timeout,
		})
		if err != nil {
			return nil, err
		}
		provider = gw
	default:
		return nil, fmt.Errorf("configuring SMS: unknown provider %q (want console, twilio or http)", cfg.Provider)
	}
	r := &Retrying{
		Sender:   provider,
		Attempts: p.int("retry attempts", cfg.RetryAttempts),
		Backoff:  p.duration("retry backoff", cfg.RetryBackoff),
		Deadline: p.duration("retry deadline", cfg.RetryDeadline),
	}
	b := &Breaker{
		Sender:   r,
		Failures: p.int("breaker failures", cfg.BreakerFailures),
		Cooldown: p.duration("breaker cooldown", cfg.BreakerCooldown),
	}
	if p.err != nil {
		return nil, p.err
	}
	return b, nil
}

// sparser parses config strings, keeping the first error.
type sparser struct{ err error }

func (p *sparser) duration(name, s string) time.Duration {
	if s == "" || p.err != nil {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = errors.New("negative")
	}
	if err != nil {
		p.err = fmt.Errorf("configuring SMS: %s %q: %w", name, s, err)
	}
	return d
}

func (p *sparser) int(name, s string) int {
	if s == "" || p.err != nil {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err == nil && n < 0 {
		err = errors.New("negative")
	}
	if err != nil {
		p.err = fmt.Errorf("configuring SMS: %s %q: %w", name, s, err)
	}
	return n
}

// statusRange parses "200-299" or "200"; "" gives 0, 0 (the default).
func (p *sparser) statusRange(s string) (lo, hi int) {
	if s == "" || p.err != nil {
		return 0, 0
	}
	a, b, found := strings.Cut(s, "-")
	lo = p.int("success status", strings.TrimSpace(a))
	hi = lo
	if found {
		hi = p.int("success status", strings.TrimSpace(b))
	}
	return lo, hi
}
