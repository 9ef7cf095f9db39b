// Package promtext is the part of the Prometheus client's API parkportal
// uses -- counters, gauges, histograms, their labelled vectors, a
// registry -- writing the text exposition format (version 0.0.4) itself.
//
// The client (github.com/prometheus/client_golang) brings protobuf,
// its own procfs reader and an expression parser: about 2.5 MiB of a
// stripped mipsel binary, on routers with 16 MB of flash. The names and
// signatures here are the client's (package metrics imports this one as
// `prometheus`), so a metric is added the way it was:
//
//	m.foo = prometheus.NewCounter(prometheus.CounterOpts{Name: "...", Help: "...", ConstLabels: constLabels})
//
// What a scraper reads does not change: the same families, HELP and TYPE
// lines, label escaping, sort order and float formatting (the metrics
// package's tests parse the output with Prometheus's own parser and
// compare it with the client's).
//
// Every method is safe for concurrent use.
package promtext

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Labels are label names and values.
type Labels map[string]string

// Opts are the options of every metric: the name is
// Namespace_Subsystem_Name (empty parts left out), ConstLabels are on
// every series.
type Opts struct {
	Namespace   string
	Subsystem   string
	Name        string
	Help        string
	ConstLabels Labels
}

// CounterOpts are the options of a counter.
type CounterOpts Opts

// GaugeOpts are the options of a gauge.
type GaugeOpts Opts

// HistogramOpts are the options of a histogram; Buckets are the upper
// bounds, ascending (nil: DefBuckets). +Inf is always added.
type HistogramOpts struct {
	Namespace   string
	Subsystem   string
	Name        string
	Help        string
	ConstLabels Labels
	Buckets     []float64
}

// DefBuckets are the client's default histogram buckets, in seconds.
var DefBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// BuildFQName joins the non-empty parts of a name with underscores.
func BuildFQName(namespace, subsystem, name string) string {
	if name == "" {
		return ""
	}
	var parts []string
	for _, p := range []string{namespace, subsystem, name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "_")
}

// A Collector is one or more metric families a Registry exposes. The
// constructors of this package make them.
type Collector interface {
	// names lists the families, for the registry's duplicate check.
	names() []string
	// collect appends the current families.
	collect(out []family) []family
}

// The value types of a family, as the TYPE line writes them.
const (
	typeCounter   = "counter"
	typeGauge     = "gauge"
	typeSummary   = "summary"
	typeHistogram = "histogram"
)

// family is one metric family at one moment.
type family struct {
	name, help, typ string
	metrics         []metric
}

// metric is one series (a summary or histogram writes several lines).
type metric struct {
	labels    []labelPair // sorted by name
	value     float64
	quantiles []quantile // summary
	buckets   []bucket   // histogram, cumulative, without +Inf
	count     uint64     // summary and histogram
	sum       float64
}

type labelPair struct{ name, value string }

type quantile struct{ q, v float64 }

type bucket struct {
	upper float64
	count uint64
}

// validName reports whether s is a classic metric name
// ([a-zA-Z_:][a-zA-Z0-9_:]*, colon allowed) or label name (no colon).
// Checked by hand rather than with regexp so that every CLI call, which
// links this package, does not compile expressions at start.
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':' && colon:
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// desc is what every metric of a family shares.
type desc struct {
	name, help, typ string
	constLabels     []labelPair
	variable        []string // variable label names, in the order values are given
}

// newDesc checks a family's names the way the client's registry does;
// a bad name is a programming error, found at start.
func newDesc(namespace, subsystem, name, help, typ string, constLabels Labels, variable []string) *desc {
	fq := BuildFQName(namespace, subsystem, name)
	if !validName(fq, true) {
		panic(fmt.Sprintf("promtext: %q is not a valid metric name", fq))
	}
	d := &desc{name: fq, help: help, typ: typ, variable: variable}
	seen := map[string]bool{}
	check := func(l string) {
		if !validName(l, false) || strings.HasPrefix(l, "__") {
			panic(fmt.Sprintf("promtext: %s: %q is not a valid label name", fq, l))
		}
		if typ == typeHistogram && l == "le" || typ == typeSummary && l == "quantile" {
			panic(fmt.Sprintf("promtext: %s: label %q is reserved for its type", fq, l))
		}
		if seen[l] {
			panic(fmt.Sprintf("promtext: %s: label %q given twice", fq, l))
		}
		seen[l] = true
	}
	for l, v := range constLabels {
		check(l)
		if !utf8.ValidString(v) {
			panic(fmt.Sprintf("promtext: %s: label value %q is not valid UTF-8", fq, v))
		}
		d.constLabels = append(d.constLabels, labelPair{l, v})
	}
	for _, l := range variable {
		check(l)
	}
	slices.SortFunc(d.constLabels, func(a, b labelPair) int { return cmp.Compare(a.name, b.name) })
	return d
}

func (d *desc) names() []string { return []string{d.name} }

// labels merges the constant labels and the values of the variable ones,
// sorted by name.
func (d *desc) labels(values []string) []labelPair {
	if len(values) == 0 {
		return d.constLabels
	}
	out := make([]labelPair, 0, len(d.constLabels)+len(values))
	out = append(out, d.constLabels...)
	for i, v := range values {
		out = append(out, labelPair{d.variable[i], v})
	}
	slices.SortFunc(out, func(a, b labelPair) int { return cmp.Compare(a.name, b.name) })
	return out
}

// checkValues is the client's label value check: the right number, and
// valid UTF-8 (the text format has no way to write anything else).
func (d *desc) checkValues(values []string) {
	if len(values) != len(d.variable) {
		panic(fmt.Sprintf("promtext: %s: %d label values for %d labels %q", d.name, len(values), len(d.variable), d.variable))
	}
	for _, v := range values {
		if !utf8.ValidString(v) {
			panic(fmt.Sprintf("promtext: %s: label value %q is not valid UTF-8", d.name, v))
		}
	}
}

func (d *desc) family(ms []metric) family {
	return family{name: d.name, help: d.help, typ: d.typ, metrics: ms}
}

// floatValue is a float64 updated atomically.
type floatValue struct{ bits atomic.Uint64 }

func (f *floatValue) load() float64 { return math.Float64frombits(f.bits.Load()) }

func (f *floatValue) store(v float64) { f.bits.Store(math.Float64bits(v)) }

func (f *floatValue) add(v float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Counter is a value that only goes up.
type Counter interface {
	Collector
	// Inc adds 1.
	Inc()
	// Add adds v, which must not be negative.
	Add(v float64)
}

// counter keeps whole additions in an integer, as the client does, so
// large byte totals stay exact up to 2^64, and the rest in a float.
type counter struct {
	ival atomic.Uint64
	fval floatValue
	d    *desc
	lv   []string
}

// NewCounter returns a counter without variable labels.
func NewCounter(o CounterOpts) Counter {
	return &counter{d: newDesc(o.Namespace, o.Subsystem, o.Name, o.Help, typeCounter, o.ConstLabels, nil)}
}

func (c *counter) Inc() { c.ival.Add(1) }

func (c *counter) Add(v float64) {
	if v < 0 {
		panic("promtext: counter cannot decrease in value")
	}
	if i := uint64(v); float64(i) == v {
		c.ival.Add(i)
		return
	}
	c.fval.add(v)
}

func (c *counter) get() float64 { return c.fval.load() + float64(c.ival.Load()) }

func (c *counter) metric() metric { return metric{labels: c.d.labels(c.lv), value: c.get()} }

func (c *counter) names() []string { return c.d.names() }

func (c *counter) collect(out []family) []family {
	return append(out, c.d.family([]metric{c.metric()}))
}

// Gauge is a value that goes up and down.
type Gauge interface {
	Collector
	Set(v float64)
	Inc()
	Dec()
	Add(v float64)
	Sub(v float64)
}

type gauge struct {
	v  floatValue
	d  *desc
	lv []string
}

// NewGauge returns a gauge without variable labels.
func NewGauge(o GaugeOpts) Gauge {
	return &gauge{d: newDesc(o.Namespace, o.Subsystem, o.Name, o.Help, typeGauge, o.ConstLabels, nil)}
}

func (g *gauge) Set(v float64) { g.v.store(v) }
func (g *gauge) Inc()          { g.v.add(1) }
func (g *gauge) Dec()          { g.v.add(-1) }
func (g *gauge) Add(v float64) { g.v.add(v) }
func (g *gauge) Sub(v float64) { g.v.add(-v) }

func (g *gauge) metric() metric { return metric{labels: g.d.labels(g.lv), value: g.v.load()} }

func (g *gauge) names() []string { return g.d.names() }

func (g *gauge) collect(out []family) []family {
	return append(out, g.d.family([]metric{g.metric()}))
}

// GaugeFunc is a gauge whose value a function gives at each scrape.
type GaugeFunc interface{ Collector }

// CounterFunc is a counter whose value a function gives at each scrape;
// the function must never return less than before.
type CounterFunc interface{ Collector }

type valueFunc struct {
	d  *desc
	fn func() float64
}

func (f *valueFunc) names() []string { return f.d.names() }

func (f *valueFunc) collect(out []family) []family {
	return append(out, f.d.family([]metric{{labels: f.d.constLabels, value: f.fn()}}))
}

// NewGaugeFunc returns a gauge that reads fn when scraped.
func NewGaugeFunc(o GaugeOpts, fn func() float64) GaugeFunc {
	return &valueFunc{newDesc(o.Namespace, o.Subsystem, o.Name, o.Help, typeGauge, o.ConstLabels, nil), fn}
}

// NewCounterFunc returns a counter that reads fn when scraped.
func NewCounterFunc(o CounterOpts, fn func() float64) CounterFunc {
	return &valueFunc{newDesc(o.Namespace, o.Subsystem, o.Name, o.Help, typeCounter, o.ConstLabels, nil), fn}
}

// Histogram counts observations in buckets.
type Histogram interface {
	Collector
	Observe(v float64)
}

type histogram struct {
	d      *desc
	lv     []string
	upper  []float64
	mu     sync.Mutex // keeps buckets, count and sum of one scrape consistent
	counts []uint64   // per bucket, not cumulative; the last is +Inf
	count  uint64
	sum    float64
}

func checkBuckets(name string, b []float64) []float64 {
	if b == nil {
		b = DefBuckets
	}
	b = slices.Clone(b)
	if n := len(b); n > 0 && math.IsInf(b[n-1], +1) {
		b = b[:n-1] // +Inf is implicit
	}
	for i := range b {
		if i > 0 && b[i] <= b[i-1] || math.IsNaN(b[i]) {
			panic(fmt.Sprintf("promtext: %s: histogram buckets must be in increasing order", name))
		}
	}
	return b
}

func newHistogram(d *desc, upper []float64, lv []string) *histogram {
	return &histogram{d: d, lv: lv, upper: upper, counts: make([]uint64, len(upper)+1)}
}

// NewHistogram returns a histogram without variable labels.
func NewHistogram(o HistogramOpts) Histogram {
	d := newDesc(o.Namespace, o.Subsystem, o.Name, o.Help, typeHistogram, o.ConstLabels, nil)
	return newHistogram(d, checkBuckets(d.name, o.Buckets), nil)
}

func (h *histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v) // the first bucket with v <= upper
	h.mu.Lock()
	h.counts[i]++
	h.count++
	h.sum += v
	h.mu.Unlock()
}

func (h *histogram) metric() metric {
	m := metric{labels: h.d.labels(h.lv), buckets: make([]bucket, len(h.upper))}
	h.mu.Lock()
	defer h.mu.Unlock()
	var cum uint64
	for i, u := range h.upper {
		cum += h.counts[i]
		m.buckets[i] = bucket{u, cum}
	}
	m.count, m.sum = h.count, h.sum
	return m
}

func (h *histogram) names() []string { return h.d.names() }

func (h *histogram) collect(out []family) []family {
	return append(out, h.d.family([]metric{h.metric()}))
}

// vec is the labelled series of one family, made on first use.
type vec[T any] struct {
	d      *desc
	make   func(values []string) T
	metric func(T) metric
	mu     sync.RWMutex
	series map[string]T
}

func (v *vec[T]) with(values []string) T {
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	s, ok := v.series[key]
	v.mu.RUnlock()
	if ok {
		return s
	}
	v.d.checkValues(values)
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.series[key]; ok {
		return s
	}
	s = v.make(slices.Clone(values))
	v.series[key] = s
	return s
}

func (v *vec[T]) withLabels(l Labels) T {
	if len(l) != len(v.d.variable) {
		panic(fmt.Sprintf("promtext: %s: labels %v for %q", v.d.name, l, v.d.variable))
	}
	values := make([]string, len(v.d.variable))
	for i, name := range v.d.variable {
		val, ok := l[name]
		if !ok {
			panic(fmt.Sprintf("promtext: %s: label %q missing", v.d.name, name))
		}
		values[i] = val
	}
	return v.with(values)
}

func (v *vec[T]) names() []string { return v.d.names() }

func (v *vec[T]) collect(out []family) []family {
	v.mu.RLock()
	ms := make([]metric, 0, len(v.series))
	for _, s := range v.series {
		ms = append(ms, v.metric(s))
	}
	v.mu.RUnlock()
	if len(ms) == 0 {
		return out // the client leaves a family without series out
	}
	return append(out, v.d.family(ms))
}

// CounterVec is a counter family with variable labels.
type CounterVec struct{ vec[*counter] }

// NewCounterVec returns a counter family with the given variable labels.
func NewCounterVec(o CounterOpts, labelNames []string) *CounterVec {
	d := newDesc(o.Namespace, o.Subsystem, o.Name, o.Help, typeCounter, o.ConstLabels, slices.Clone(labelNames))
	return &CounterVec{vec[*counter]{d: d, series: map[string]*counter{},
		make:   func(lv []string) *counter { return &counter{d: d, lv: lv} },
		metric: (*counter).metric}}
}

// WithLabelValues returns the counter of these label values, in the
// order the labels were given; a wrong number of values panics.
func (v *CounterVec) WithLabelValues(values ...string) Counter { return v.with(values) }

// With returns the counter of these labels.
func (v *CounterVec) With(l Labels) Counter { return v.withLabels(l) }

// GaugeVec is a gauge family with variable labels.
type GaugeVec struct{ vec[*gauge] }

// NewGaugeVec returns a gauge family with the given variable labels.
func NewGaugeVec(o GaugeOpts, labelNames []string) *GaugeVec {
	d := newDesc(o.Namespace, o.Subsystem, o.Name, o.Help, typeGauge, o.ConstLabels, slices.Clone(labelNames))
	return &GaugeVec{vec[*gauge]{d: d, series: map[string]*gauge{},
		make:   func(lv []string) *gauge { return &gauge{d: d, lv: lv} },
		metric: (*gauge).metric}}
}

// WithLabelValues returns the gauge of these label values.
func (v *GaugeVec) WithLabelValues(values ...string) Gauge { return v.with(values) }

// With returns the gauge of these labels.
func (v *GaugeVec) With(l Labels) Gauge { return v.withLabels(l) }

// HistogramVec is a histogram family with variable labels.
type HistogramVec struct{ vec[*histogram] }

// NewHistogramVec returns a histogram family with the given variable labels.
func NewHistogramVec(o HistogramOpts, labelNames []string) *HistogramVec {
	d := newDesc(o.Namespace, o.Subsystem, o.Name, o.Help, typeHistogram, o.ConstLabels, slices.Clone(labelNames))
	upper := checkBuckets(d.name, o.Buckets)
	return &HistogramVec{vec[*histogram]{d: d, series: map[string]*histogram{},
		make:   func(lv []string) *histogram { return newHistogram(d, upper, lv) },
		metric: (*histogram).metric}}
}

// WithLabelValues returns the histogram of these label values.
func (v *HistogramVec) WithLabelValues(values ...string) Histogram { return v.with(values) }

// With returns the histogram of these labels.
func (v *HistogramVec) With(l Labels) Histogram { return v.withLabels(l) }

// Registry is the set of collectors one /metrics exposes.
type Registry struct {
	mu         sync.RWMutex
	collectors []Collector
	names      map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

// Register adds c, refusing a family name already registered.
func (r *Registry) Register(c Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range c.names() {
		if r.names[n] {
			return fmt.Errorf("registering %s: a metric of that name is already registered", n)
		}
	}
	for _, n := range c.names() {
		r.names[n] = true
	}
	r.collectors = append(r.collectors, c)
	return nil
}

// MustRegister registers every collector and panics on a duplicate name.
func (r *Registry) MustRegister(cs ...Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// gather collects every family, sorted by name, each family's series
// sorted by their label values: the order the client writes.
func (r *Registry) gather() []family {
	r.mu.RLock()
	cs := slices.Clone(r.collectors)
	r.mu.RUnlock()
	var fs []family
	for _, c := range cs {
		fs = c.collect(fs)
	}
	slices.SortFunc(fs, func(a, b family) int { return cmp.Compare(a.name, b.name) })
	for _, f := range fs {
		slices.SortFunc(f.metrics, func(a, b metric) int {
			for i := range min(len(a.labels), len(b.labels)) {
				if c := cmp.Compare(a.labels[i].value, b.labels[i].value); c != 0 {
					return c
				}
			}
			return cmp.Compare(len(a.labels), len(b.labels))
		})
	}
	return fs
}

// WriteText writes every family in the text exposition format 0.0.4.
func (r *Registry) WriteText(w io.Writer) error {
	var b bytes.Buffer
	for _, f := range r.gather() {
		writeFamily(&b, &f)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeFamily writes a family's HELP (also when the help is empty: the
// client always writes it), TYPE and sample lines.
func writeFamily(b *bytes.Buffer, f *family) {
	b.WriteString("# HELP ")
	b.WriteString(f.name)
	b.WriteByte(' ')
	writeEscaped(b, f.help, false)
	b.WriteByte('\n')
	b.WriteString("# TYPE ")
	b.WriteString(f.name)
	b.WriteByte(' ')
	b.WriteString(f.typ)
	b.WriteByte('\n')
	for i := range f.metrics {
		m := &f.metrics[i]
		switch f.typ {
		case typeSummary:
			for _, q := range m.quantiles {
				writeSample(b, f.name, "", m.labels, "quantile", q.q, q.v)
			}
			writeSample(b, f.name, "_sum", m.labels, "", 0, m.sum)
			writeSample(b, f.name, "_count", m.labels, "", 0, float64(m.count))
		case typeHistogram:
			for _, bk := range m.buckets {
				writeSample(b, f.name, "_bucket", m.labels, "le", bk.upper, float64(bk.count))
			}
			writeSample(b, f.name, "_bucket", m.labels, "le", math.Inf(+1), float64(m.count))
			writeSample(b, f.name, "_sum", m.labels, "", 0, m.sum)
			writeSample(b, f.name, "_count", m.labels, "", 0, float64(m.count))
		default:
			writeSample(b, f.name, "", m.labels, "", 0, m.value)
		}
	}
}

// writeSample writes one line: name, labels (and the extra le or quantile
// label last, as the client does), value.
func writeSample(b *bytes.Buffer, name, suffix string, labels []labelPair, extraName string, extraValue, v float64) {
	b.WriteString(name)
	b.WriteString(suffix)
	if len(labels) > 0 || extraName != "" {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.name)
			b.WriteString(`="`)
			writeEscaped(b, l.value, true)
			b.WriteByte('"')
		}
		if extraName != "" {
			if len(labels) > 0 {
				b.WriteByte(',')
			}
			b.WriteString(extraName)
			b.WriteString(`="`)
			writeFloat(b, extraValue)
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	writeFloat(b, v)
	b.WriteByte('\n')
}

// writeEscaped escapes a backslash and a newline, and in a label value
// also a double quote.
func writeEscaped(b *bytes.Buffer, s string, quote bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '"' && quote:
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
}

// writeFloat formats a value the way the client does.
func writeFloat(b *bytes.Buffer, f float64) {
	switch {
	case f == 1:
		b.WriteByte('1')
	case f == 0:
		b.WriteByte('0')
	case f == -1:
		b.WriteString("-1")
	case math.IsNaN(f):
		b.WriteString("NaN")
	case math.IsInf(f, +1):
		b.WriteString("+Inf")
	case math.IsInf(f, -1):
		b.WriteString("-Inf")
	default:
		b.Write(strconv.AppendFloat(b.AvailableBuffer(), f, 'g', -1, 64))
	}
}
