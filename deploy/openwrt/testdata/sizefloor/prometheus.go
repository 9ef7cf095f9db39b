//go:build prometheus

package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func init() {
	uses = append(uses, func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		logins := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logins_total"}, []string{"result"})
		reg.MustRegister(logins)
		logins.WithLabelValues("ok").Inc()
		http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	})
}
