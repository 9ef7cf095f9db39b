package sms

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewConsole(t *testing.T) {
	s, err := New(ProviderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*Console); !ok {
		t.Errorf("default provider is %T, want *Console", s)
	}
}

func TestNewTwilioFromConfig(t *testing.T) {
	t.Setenv("TWILIO_AUTH_TOKEN", testToken)
	s, err := New(ProviderConfig{Provider: "twilio", TwilioAccountSID: testSID, TwilioFrom: "+15005550006",
		TwilioValidity: "10m", RetryAttempts: "2", BreakerCooldown: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	b, ok := s.(*Breaker)
	if !ok {
		t.Fatalf("got %T, want *Breaker", s)
	}
	r := b.Sender.(*Retrying)
	tw := r.Sender.(*Twilio)
	if r.Attempts != 2 || tw.cfg.AuthToken != testToken || tw.cfg.ValidityPeriod.Minutes() != 10 {
		t.Errorf("retry %+v, twilio validity %v", r, tw.cfg.ValidityPeriod)
	}
}

func TestNewHTTPFromConfig(t *testing.T) {
	srv, seen := fakeGateway(t, http.StatusOK, `{"ok":true}`)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("Bearer k3y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(ProviderConfig{
		Provider: "http", HTTPURL: srv.URL, HTTPMode: "json",
		HTTPBodyTemplate: `{"to":"{to}","text":"{body}"}`,
		HTTPHeaders:      map[string]string{"X-Site": "aspire"},
		HTTPAuthHeader:   "Authorization", HTTPAuthFile: keyFile,
		HTTPSuccessStatus: "200", HTTPSuccessJSONField: "ok", HTTPSuccessJSONValue: "true",
		HTTPNumberFormat: "00",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), Message{To: "+97433123456", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	if r := <-seen; r.auth != "Bearer k3y" || !strings.Contains(r.body, `"to":"0097433123456"`) {
		t.Errorf("auth header = %q, body %s", r.auth, r.body)
	}
}

func TestNewRejects(t *testing.T) {
	t.Setenv("TWILIO_AUTH_TOKEN", "")
	bad := map[string]ProviderConfig{
		"unknown provider":  {Provider: "carrier-pigeon"},
		"twilio no token":   {Provider: "twilio", TwilioAccountSID: testSID, TwilioFrom: "+15005550006"},
		"twilio bad SID":    {Provider: "twilio", TwilioAccountSID: "x", TwilioAuthToken: testToken, TwilioFrom: "+1"},
		"bad duration":      {Provider: "twilio", TwilioAccountSID: testSID, TwilioAuthToken: testToken, TwilioFrom: "+1", Timeout: "soon"},
		"negative attempts": {Provider: "http", HTTPURL: "https://gw/", RetryAttempts: "-1"},
		"bad status":        {Provider: "http", HTTPURL: "https://gw/", HTTPSuccessStatus: "2xx"},
		"auth header empty": {Provider: "http", HTTPURL: "https://gw/", HTTPAuthHeader: "Authorization"},
		"http bad json":     {Provider: "http", HTTPURL: "https://gw/", HTTPMode: "json", HTTPBodyTemplate: "{"},
		"number format":     {Provider: "http", HTTPURL: "https://gw/", HTTPNumberFormat: "local"},
		"national no cc":    {Provider: "http", HTTPURL: "https://gw/", HTTPNumberFormat: "national"},
	}
	for name, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
