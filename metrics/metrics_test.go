package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parkwifi/parkportal/internal/fake"
)

// scrape returns the Prometheus text exposition of m.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Result().Body)
	return string(b)
}

// TestRefusalsCounted: PIN tries refused by the back-off have their own
// counter, visible at zero before the first refusal like the other
// labelled series, and kept out of the dashboard's PIN figures.
func TestRefusalsCounted(t *testing.T) {
	clk := fake.NewClock(time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC))
	m := New("park", nil, clk.Now)
	body := scrape(t, m)
	for _, want := range []string{
		`parkportal_pin_refused_total{reason="pin-backoff",site="park"} 0`,
		`parkportal_sms_refused_total{reason="resend-gap",site="park"} 0`,
		`parkportal_sms_refused_total{reason="number-not-allowed",site="park"} 0`,
		`parkportal_sms_failed_total{reason="sms-unavailable",site="park"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s before any event", want)
		}
	}
	m.PINRefused("pin-backoff")
	m.PINRefused("pin-backoff")
	m.SMSRefused("resend-gap")
	body = scrape(t, m)
	for _, want := range []string{
		`parkportal_pin_refused_total{reason="pin-backoff",site="park"} 2`,
		`parkportal_sms_refused_total{reason="resend-gap",site="park"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if today := m.Snapshot().Today; today.PINFailed != 0 || today.PINOK != 0 || today.SMSRefused != 1 {
		t.Errorf("today = %+v; a refused PIN try is no PIN failure", today)
	}
	// The help texts name the reasons the code passes, not others.
	for _, stale := range []string{"number_cap", "device_cap", "daily_budget"} {
		if strings.Contains(body, stale) {
			t.Errorf("/metrics mentions %q, a reason nothing passes", stale)
		}
	}
}
