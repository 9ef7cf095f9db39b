package promtext

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
)

// ContentType is the text format's: what promhttp answers a scraper that
// does not ask for protobuf. Every metric name here is a classic one, so
// the underscore escaping the parameter announces never changes a name.
const ContentType = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"

// HandlerFor serves r's families in the text format, gzipped when the
// scraper accepts it (Prometheus does), like promhttp.HandlerFor with its
// Registry option: the handler's own error counter,
// promhttp_metric_handler_errors_total, is registered on r.
func HandlerFor(r *Registry) http.Handler {
	errs := NewCounterVec(CounterOpts{
		Name: "promhttp_metric_handler_errors_total",
		Help: "Total number of internal errors encountered by the promhttp metric handler.",
	}, []string{"cause"})
	errs.WithLabelValues("gathering") // nothing fails to gather here; kept at 0 for dashboards
	encoding := errs.WithLabelValues("encoding")
	r.MustRegister(errs)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body bytes.Buffer
		if err := r.WriteText(&body); err != nil {
			encoding.Inc()
			http.Error(w, "writing metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Add("Vary", "Accept")
		h.Add("Vary", "Accept-Encoding")
		if !acceptsGzip(req.Header.Get("Accept-Encoding")) {
			if _, err := w.Write(body.Bytes()); err != nil {
				encoding.Inc()
			}
			return
		}
		h.Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		_, err := gz.Write(body.Bytes())
		if cerr := gz.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			encoding.Inc()
		}
	})
}

// acceptsGzip reads an Accept-Encoding header: gzip listed and not
// refused with q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") && strings.Trim(v, " 0.") == "" && v != "" {
				return false // q=0, q=0.0, q=0.000
			}
		}
		return true
	}
	return false
}
