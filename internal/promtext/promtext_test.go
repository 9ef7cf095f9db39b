package promtext

// The writer is held to the Prometheus client: the same metrics built
// with client_golang (imported by tests only) must give the same bytes,
// and Prometheus's own parser must read ours back.

import (
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	client "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// clientText is the text exposition of a client_golang registry.
func clientText(t *testing.T, reg *client.Registry) string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("client Gather: %v", err)
	}
	var b bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatalf("client MetricFamilyToText: %v", err)
		}
	}
	return b.String()
}

func ourText(t *testing.T, reg *Registry) string {
	t.Helper()
	var b bytes.Buffer
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestSameTextAsClient builds one of each kind in both libraries, feeds
// them the same values and compares the exposition byte for byte.
func TestSameTextAsClient(t *testing.T) {
	ours, theirs := NewRegistry(), client.NewRegistry()
	const help = "Help with a \\ backslash,\na newline and \"quotes\"."
	cl := Labels{"site": "park \"one\"\\\n", "zone": "ب"}
	ccl := client.Labels(cl)

	c1 := NewCounter(CounterOpts{Namespace: "pp", Subsystem: "x", Name: "events_total", Help: help, ConstLabels: cl})
	c2 := client.NewCounter(client.CounterOpts{Namespace: "pp", Subsystem: "x", Name: "events_total", Help: help, ConstLabels: ccl})
	g1 := NewGauge(GaugeOpts{Name: "pp_level", Help: "A level."})
	g2 := client.NewGauge(client.GaugeOpts{Name: "pp_level", Help: "A level."})
	cv1 := NewCounterVec(CounterOpts{Name: "pp_bytes_total", Help: "Bytes.", ConstLabels: Labels{"site": "p"}}, []string{"direction", "b_first"})
	cv2 := client.NewCounterVec(client.CounterOpts{Name: "pp_bytes_total", Help: "Bytes.", ConstLabels: client.Labels{"site": "p"}}, []string{"direction", "b_first"})
	gv1 := NewGaugeVec(GaugeOpts{Name: "pp_queue", Help: "Queue."}, []string{"server"})
	gv2 := client.NewGaugeVec(client.GaugeOpts{Name: "pp_queue", Help: "Queue."}, []string{"server"})
	buckets := []float64{0.001, 0.01, 0.1, 1, 10}
	h1 := NewHistogram(HistogramOpts{Name: "pp_send_seconds", Help: "Send time.", Buckets: buckets, ConstLabels: Labels{"site": "p"}})
	h2 := client.NewHistogram(client.HistogramOpts{Name: "pp_send_seconds", Help: "Send time.", Buckets: buckets, ConstLabels: client.Labels{"site": "p"}})
	hv1 := NewHistogramVec(HistogramOpts{Name: "pp_wait_seconds", Help: "Wait."}, []string{"kind"})
	hv2 := client.NewHistogramVec(client.HistogramOpts{Name: "pp_wait_seconds", Help: "Wait."}, []string{"kind"})
	var fn float64
	gf1 := NewGaugeFunc(GaugeOpts{Name: "pp_online", Help: "Online."}, func() float64 { return fn })
	gf2 := client.NewGaugeFunc(client.GaugeOpts{Name: "pp_online", Help: "Online."}, func() float64 { return fn })
	cf1 := NewCounterFunc(CounterOpts{Name: "pp_seen_total", Help: "Seen."}, func() float64 { return fn * 2 })
	cf2 := client.NewCounterFunc(client.CounterOpts{Name: "pp_seen_total", Help: "Seen."}, func() float64 { return fn * 2 })
	empty1 := NewCounterVec(CounterOpts{Name: "pp_unused_total", Help: "Never used."}, []string{"x"})
	empty2 := client.NewCounterVec(client.CounterOpts{Name: "pp_unused_total", Help: "Never used."}, []string{"x"})
	ours.MustRegister(c1, g1, cv1, gv1, h1, hv1, gf1, cf1, empty1)
	theirs.MustRegister(c2, g2, cv2, gv2, h2, hv2, gf2, cf2, empty2)

	compare := func(step string) {
		t.Helper()
		if a, b := ourText(t, ours), clientText(t, theirs); a != b {
			t.Fatalf("%s: exposition differs from client_golang's\nours:\n%s\nclient:\n%s", step, a, b)
		}
	}
	compare("at zero")

	c1.Inc()
	c2.Inc()
	c1.Add(1 << 20)
	c2.Add(1 << 20)
	c1.Add(0.25)
	c2.Add(0.25)
	for _, v := range []float64{0, 1, -1, 0.1, 1e-7, 123456789, 1e21, math.Inf(+1), math.Inf(-1), math.NaN(), 3.5} {
		g1.Set(v)
		g2.Set(v)
		compare("gauge " + fmtFloat(v))
	}
	g1.Set(2)
	g2.Set(2)
	g1.Inc()
	g2.Inc()
	g1.Sub(0.5)
	g2.Sub(0.5)
	g1.Dec()
	g2.Dec()
	g1.Add(7)
	g2.Add(7)
	for _, lv := range [][]string{{"up", "z"}, {"down", "z"}, {"down", "a"}, {"\"odd\\\nvalue", "ü"}, {"", ""}} {
		cv1.WithLabelValues(lv...).Add(1048576)
		cv2.WithLabelValues(lv...).Add(1048576)
	}
	cv1.With(Labels{"direction": "up", "b_first": "z"}).Inc()
	cv2.With(client.Labels{"direction": "up", "b_first": "z"}).Inc()
	gv1.WithLabelValues("radius-1").Set(3)
	gv2.WithLabelValues("radius-1").Set(3)
	gv1.WithLabelValues("radius-0").Set(-2.5)
	gv2.WithLabelValues("radius-0").Set(-2.5)
	for _, v := range []float64{0.0005, 0.001, 0.002, 0.5, 1, 9.99, 10, 11, 1e9, -3} {
		h1.Observe(v)
		h2.Observe(v)
		hv1.WithLabelValues("sms").Observe(v / 3)
		hv2.WithLabelValues("sms").Observe(v / 3)
	}
	hv1.WithLabelValues("db").Observe(0.01)
	hv2.WithLabelValues("db").Observe(0.01)
	fn = 42
	compare("after updates")
	// Parse ours with Prometheus's parser as a scraper would.
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(ourText(t, ours)))
	if err != nil {
		t.Fatalf("Prometheus's text parser rejects our output: %v", err)
	}
	if got := fams["pp_bytes_total"].GetMetric(); len(got) != 5 {
		t.Errorf("pp_bytes_total: %d series parsed, want 5", len(got))
	}
}

func fmtFloat(v float64) string {
	var b bytes.Buffer
	writeFloat(&b, v)
	return b.String()
}

// TestCounterExactLikeClient: whole additions are exact past 2^53, the
// way the client keeps them.
func TestCounterExactLikeClient(t *testing.T) {
	c1 := NewCounter(CounterOpts{Name: "big_total", Help: "Big."})
	c2 := client.NewCounter(client.CounterOpts{Name: "big_total", Help: "Big."})
	for range 3 {
		c1.Add(1 << 53)
		c2.Add(1 << 53)
	}
	c1.Add(1)
	c2.Add(1)
	r1, r2 := NewRegistry(), client.NewRegistry()
	r1.MustRegister(c1)
	r2.MustRegister(c2)
	if a, b := ourText(t, r1), clientText(t, r2); a != b {
		t.Errorf("ours:\n%s\nclient:\n%s", a, b)
	}
}

// TestValidName: the hand-written name check is the client's expressions
// ^[a-zA-Z_:][a-zA-Z0-9_:]*$ (metrics) and ^[a-zA-Z_][a-zA-Z0-9_]*$
// (labels).
func TestValidName(t *testing.T) {
	metricRE := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelRE := regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	for _, s := range []string{"", "a", "_", ":", "a:b", "a_b9", "9a", "a-b", "ä", "a b", "A_Z:09", "__x", ":9", "_9", "a\x00"} {
		if got, want := validName(s, true), metricRE.MatchString(s); got != want {
			t.Errorf("metric name %q: %v, want %v", s, got, want)
		}
		if got, want := validName(s, false), labelRE.MatchString(s); got != want {
			t.Errorf("label name %q: %v, want %v", s, got, want)
		}
	}
}

func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	fn()
}

// TestMisuse: what the client refuses, this refuses, at once.
func TestMisuse(t *testing.T) {
	mustPanic(t, "bad metric name", func() { NewCounter(CounterOpts{Name: "1bad"}) })
	mustPanic(t, "bad label name", func() { NewCounterVec(CounterOpts{Name: "ok_total"}, []string{"bad-label"}) })
	mustPanic(t, "reserved label", func() { NewCounterVec(CounterOpts{Name: "ok_total"}, []string{"__x"}) })
	mustPanic(t, "le on a histogram", func() { NewHistogramVec(HistogramOpts{Name: "h"}, []string{"le"}) })
	mustPanic(t, "label twice", func() { NewCounterVec(CounterOpts{Name: "ok_total", ConstLabels: Labels{"a": "1"}}, []string{"a"}) })
	mustPanic(t, "unsorted buckets", func() { NewHistogram(HistogramOpts{Name: "h", Buckets: []float64{1, 0.5}}) })
	mustPanic(t, "negative add", func() { NewCounter(CounterOpts{Name: "ok_total"}).Add(-1) })
	v := NewCounterVec(CounterOpts{Name: "ok_total"}, []string{"a", "b"})
	mustPanic(t, "too few values", func() { v.WithLabelValues("x") })
	mustPanic(t, "invalid UTF-8 value", func() { v.WithLabelValues("x", "\xff") })
	mustPanic(t, "missing label", func() { v.With(Labels{"a": "1", "c": "2"}) })
	r := NewRegistry()
	r.MustRegister(NewCounter(CounterOpts{Name: "dup_total"}))
	if err := r.Register(NewGauge(GaugeOpts{Name: "dup_total"})); err == nil {
		t.Error("a second metric of one name was registered")
	}
}

// TestHandler: content type, Vary, gzip when accepted, plain otherwise,
// and the handler's error counter at zero like promhttp's.
func TestHandler(t *testing.T) {
	r := NewRegistry()
	c := NewCounter(CounterOpts{Name: "pp_logins_total", Help: "Logins."})
	r.MustRegister(c)
	c.Add(3)
	h := HandlerFor(r)
	for _, enc := range []string{"", "gzip", "deflate, gzip;q=1.0, *;q=0.5", "gzip;q=0", "identity"} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res := w.Result()
		if ct := res.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8; escaping=underscores" {
			t.Errorf("%q: Content-Type %q", enc, ct)
		}
		if v := res.Header.Values("Vary"); strings.Join(v, ",") != "Accept,Accept-Encoding" {
			t.Errorf("%q: Vary %q", enc, v)
		}
		body := res.Body
		wantGzip := enc == "gzip" || strings.HasPrefix(enc, "deflate")
		if got := res.Header.Get("Content-Encoding") == "gzip"; got != wantGzip {
			t.Fatalf("Accept-Encoding %q: gzip %v, want %v", enc, got, wantGzip)
		}
		if wantGzip {
			zr, err := gzip.NewReader(body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"# TYPE pp_logins_total counter\npp_logins_total 3\n",
			"promhttp_metric_handler_errors_total{cause=\"encoding\"} 0\npromhttp_metric_handler_errors_total{cause=\"gathering\"} 0\n",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%q: body lacks %q:\n%s", enc, want, b)
			}
		}
	}
}

// FuzzLabelValue: any label value and help text a metric may carry is
// written exactly as the client writes it.
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\"", "back\\slash", "new\nline", "تجربة", "\\n", "\x00"} {
		f.Add(s, "help "+s)
	}
	f.Fuzz(func(t *testing.T, value, help string) {
		if !utf8.ValidString(value) || !utf8.ValidString(help) {
			return // both refuse such values (TestMisuse)
		}
		ours, theirs := NewRegistry(), client.NewRegistry()
		v1 := NewCounterVec(CounterOpts{Name: "pp_x_total", Help: help}, []string{"v"})
		v2 := client.NewCounterVec(client.CounterOpts{Name: "pp_x_total", Help: help}, []string{"v"})
		ours.MustRegister(v1)
		theirs.MustRegister(v2)
		v1.WithLabelValues(value).Add(float64(len(value)))
		v2.WithLabelValues(value).Add(float64(len(value)))
		if a, b := ourText(t, ours), clientText(t, theirs); a != b {
			t.Fatalf("ours:\n%q\nclient:\n%q", a, b)
		}
		acceptsGzip(value) // a scraper's header: never panics
	})
}
