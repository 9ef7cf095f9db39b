package metrics

// /metrics against the Prometheus client it replaced: the registry New
// used to build with client_golang (rebuilt here, test-only) and ours see
// the same events; Prometheus's parser reads both; the families, types,
// help texts and label names must match, and so must every parkportal
// value, byte for byte. The Go and process families are read at slightly
// different moments, so their values are compared where they are stable.

import (
	"bytes"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	client "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/parkwifi/parkportal/internal/fake"
)

// clientMetrics is New's registry as it was with client_golang, and the
// events this test feeds it.
type clientMetrics struct {
	reg                                        *client.Registry
	logins, smsSent, repairs                   client.Counter
	pinFail, pinRefused, smsFailed, smsRefused *client.CounterVec
	bytes                                      *client.CounterVec
	radiusQ, radiusDrop, smsPaused             client.Gauge
	radiusOK, radiusProb                       *client.GaugeVec
	dasRefused                                 *client.CounterVec
}

func newClientMetrics(site string, online func() int) *clientMetrics {
	m := &clientMetrics{reg: client.NewRegistry()}
	constLabels := client.Labels{"site": site}
	m.logins = client.NewCounter(client.CounterOpts{Name: "parkportal_logins_total", Help: "Visitor logins (sessions started).", ConstLabels: constLabels})
	m.pinFail = client.NewCounterVec(client.CounterOpts{Name: "parkportal_pin_failures_total", Help: "PIN entries that did not log in, by outcome (wrong, exhausted, expired, none).", ConstLabels: constLabels}, []string{"outcome"})
	m.smsSent = client.NewCounter(client.CounterOpts{Name: "parkportal_sms_sent_total", Help: "PIN messages accepted by the SMS provider.", ConstLabels: constLabels})
	m.smsFailed = client.NewCounterVec(client.CounterOpts{Name: "parkportal_sms_failed_total", Help: "PIN messages the provider did not take, by error class.", ConstLabels: constLabels}, []string{"reason"})
	m.pinRefused = client.NewCounterVec(client.CounterOpts{Name: "parkportal_pin_refused_total", Help: "PIN entries refused before they were checked, by reason (pin-backoff: too many wrong PINs from this number or device).", ConstLabels: constLabels}, []string{"reason"})
	m.smsRefused = client.NewCounterVec(client.CounterOpts{Name: "parkportal_sms_refused_total", Help: "PIN messages parkportal refused to send, by reason (malformed-number, number-not-allowed, per-number, per-device, site-budget, resend-gap).", ConstLabels: constLabels}, []string{"reason"})
	m.repairs = client.NewCounter(client.CounterOpts{Name: "parkportal_firewall_repairs_total", Help: "Kernel state repaired by resync (chains, set entries, classes).", ConstLabels: constLabels})
	m.radiusQ = client.NewGauge(client.GaugeOpts{Name: "parkportal_radius_queue_length", Help: "RADIUS accounting records waiting to be delivered.", ConstLabels: constLabels})
	m.radiusDrop = client.NewGauge(client.GaugeOpts{Name: "parkportal_radius_dropped_records", Help: "RADIUS accounting records a full queue gave up (oldest interim updates first), since the database was created.", ConstLabels: constLabels})
	m.bytes = client.NewCounterVec(client.CounterOpts{Name: "parkportal_visitor_bytes_total", Help: "Bytes carried for visitors, by direction.", ConstLabels: constLabels}, []string{"direction"})
	m.smsPaused = client.NewGauge(client.GaugeOpts{Name: "parkportal_sms_paused", Help: "1 while the SMS provider refuses parkportal's account (credentials, credit, suspension: HTTP 401/402/403, Twilio 20003, 20005, …) and sending is paused; staff must fix the account.", ConstLabels: constLabels})
	m.radiusOK = client.NewGaugeVec(client.GaugeOpts{Name: "parkportal_radius_server_ok", Help: "1 when the RADIUS server (role auth or acct) answers and its answers can be verified, 0 when not (see parkportal_radius_server_problem).", ConstLabels: constLabels}, []string{"role", "server"})
	m.radiusProb = client.NewGaugeVec(client.GaugeOpts{Name: "parkportal_radius_server_problem", Help: "1 for what is wrong with the RADIUS server now (no-message-authenticator: its Access-Accept/Reject cannot be trusted and logins that need it are refused; wrong-secret; unreachable), 0 for the rest.", ConstLabels: constLabels}, []string{"role", "server", "problem"})
	m.dasRefused = client.NewCounterVec(client.CounterOpts{Name: "parkportal_radius_das_refused_total", Help: "Disconnect/CoA requests from configured clients dropped, by problem (no-message-authenticator, wrong-secret).", ConstLabels: constLabels}, []string{"problem"})
	onlineGauge := client.NewGaugeFunc(client.GaugeOpts{Name: "parkportal_visitors_online", Help: "Visitors with an active session.", ConstLabels: constLabels}, func() float64 { return float64(online()) })
	m.reg.MustRegister(m.logins, m.pinFail, m.pinRefused, m.smsSent, m.smsFailed, m.smsRefused, m.repairs, m.radiusQ, m.radiusDrop, m.smsPaused,
		m.radiusOK, m.radiusProb, m.dasRefused, m.bytes, onlineGauge,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, p := range RADIUSProblems[:2] {
		m.dasRefused.WithLabelValues(p)
	}
	for _, o := range []string{"wrong", "exhausted", "expired", "none"} {
		m.pinFail.WithLabelValues(o)
	}
	for _, r := range PINRefusedReasons {
		m.pinRefused.WithLabelValues(r)
	}
	for _, r := range SMSRefusedReasons {
		m.smsRefused.WithLabelValues(r)
	}
	for _, r := range SMSFailedReasons {
		m.smsFailed.WithLabelValues(r)
	}
	for _, d := range []string{"down", "up"} {
		m.bytes.WithLabelValues(d)
	}
	return m
}

// get serves one request and returns the body and content type.
func get(t *testing.T, serve func(*httptest.ResponseRecorder)) (string, string) {
	t.Helper()
	w := httptest.NewRecorder()
	serve(w)
	b, err := io.ReadAll(w.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), w.Result().Header.Get("Content-Type")
}

func parseText(t *testing.T, who, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus's parser rejects %s /metrics: %v\n%s", who, err, body)
	}
	return fams
}

// parkportalLines keeps the lines of our own families.
func parkportalLines(body string) string {
	var b bytes.Buffer
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, "parkportal_") || strings.HasPrefix(line, "# HELP parkportal_") || strings.HasPrefix(line, "# TYPE parkportal_") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func labelNames(m *dto.Metric) []string {
	var n []string
	for _, l := range m.GetLabel() {
		n = append(n, l.GetName())
	}
	return n
}

func TestParityWithClient(t *testing.T) {
	clk := fake.NewClock(time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC))
	online := 0
	m := New("park \"north\"", func() int { return online }, clk.Now)
	ref := newClientMetrics("park \"north\"", func() int { return online })
	refHandler := promhttp.HandlerFor(ref.reg, promhttp.HandlerOpts{Registry: ref.reg})

	step := func(name string) {
		t.Helper()
		body, ct := get(t, func(w *httptest.ResponseRecorder) {
			m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		})
		refBody, refCT := get(t, func(w *httptest.ResponseRecorder) {
			refHandler.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		})
		if ct != refCT {
			t.Errorf("%s: Content-Type %q, the client answered %q", name, ct, refCT)
		}
		if a, b := parkportalLines(body), parkportalLines(refBody); a != b {
			t.Errorf("%s: parkportal families differ from the client's\nours:\n%s\nclient:\n%s", name, a, b)
		}
		ours, theirs := parseText(t, "our", body), parseText(t, "the client's", refBody)
		var names, refNames []string
		for n := range ours {
			names = append(names, n)
		}
		for n := range theirs {
			refNames = append(refNames, n)
		}
		slices.Sort(names)
		slices.Sort(refNames)
		if !slices.Equal(names, refNames) {
			t.Fatalf("%s: families\n%q\nthe client's\n%q", name, names, refNames)
		}
		for _, n := range names {
			a, b := ours[n], theirs[n]
			if a.GetType() != b.GetType() || a.GetHelp() != b.GetHelp() || len(a.GetMetric()) != len(b.GetMetric()) {
				t.Errorf("%s: %s is %v %q with %d series; the client's %v %q with %d", name, n, a.GetType(), a.GetHelp(), len(a.GetMetric()), b.GetType(), b.GetHelp(), len(b.GetMetric()))
				continue
			}
			for i := range a.GetMetric() {
				if la, lb := labelNames(a.GetMetric()[i]), labelNames(b.GetMetric()[i]); !slices.Equal(la, lb) {
					t.Errorf("%s: %s labels %q, the client's %q", name, n, la, lb)
				}
			}
		}
		// Stable Go and process values: equal.
		for _, n := range []string{"go_gc_gogc_percent", "go_gc_gomemlimit_bytes", "go_sched_gomaxprocs_threads", "process_max_fds", "process_virtual_memory_max_bytes"} {
			if a, b := ours[n].GetMetric()[0].GetGauge().GetValue(), theirs[n].GetMetric()[0].GetGauge().GetValue(); a != b {
				t.Errorf("%s: %s = %v, the client says %v", name, n, a, b)
			}
		}
		if a, b := ours["process_start_time_seconds"].GetMetric()[0].GetGauge().GetValue(), theirs["process_start_time_seconds"].GetMetric()[0].GetGauge().GetValue(); a-b > 0.011 || b-a > 0.011 {
			t.Errorf("%s: process_start_time_seconds = %v, the client says %v", name, a, b)
		}
		if a, b := ours["go_info"].GetMetric()[0].GetLabel()[0].GetValue(), theirs["go_info"].GetMetric()[0].GetLabel()[0].GetValue(); a != b {
			t.Errorf("%s: go_info version %q, the client says %q", name, a, b)
		}
		// The client gathers in goroutines of its own, which it counts.
		if a, b := ours["go_goroutines"].GetMetric()[0].GetGauge().GetValue(), theirs["go_goroutines"].GetMetric()[0].GetGauge().GetValue(); a < 1 || a > b {
			t.Errorf("%s: go_goroutines = %v, the client says %v", name, a, b)
		}
		// Sizes read a moment apart: the same order of magnitude.
		for _, n := range []string{"process_resident_memory_bytes", "process_virtual_memory_bytes", "go_memstats_sys_bytes", "go_memstats_heap_sys_bytes", "go_threads"} {
			a, b := ours[n].GetMetric()[0].GetGauge().GetValue(), theirs[n].GetMetric()[0].GetGauge().GetValue()
			if a <= 0 || b <= 0 || a > 2*b || b > 2*a {
				t.Errorf("%s: %s = %v, the client says %v", name, n, a, b)
			}
		}
	}
	step("at start")

	online = 3
	m.Login()
	ref.logins.Inc()
	m.SMSSent()
	ref.smsSent.Inc()
	m.PINFailed("wrong")
	ref.pinFail.WithLabelValues("wrong").Inc()
	m.PINRefused("pin-backoff")
	ref.pinRefused.WithLabelValues("pin-backoff").Inc()
	m.SMSFailed("sms-unavailable")
	ref.smsFailed.WithLabelValues("sms-unavailable").Inc()
	m.SMSRefused("resend-gap")
	ref.smsRefused.WithLabelValues("resend-gap").Inc()
	m.FirewallRepairs(7)
	ref.repairs.Add(7)
	m.SetRADIUSQueue(12, 1<<40)
	ref.radiusQ.Set(12)
	ref.radiusDrop.Set(1 << 40)
	m.AddBytes(1<<20, 123456789123)
	ref.bytes.WithLabelValues("down").Add(1 << 20)
	ref.bytes.WithLabelValues("up").Add(123456789123)
	step("after events")
}
