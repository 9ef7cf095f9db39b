//go:build metrics

package main

import (
	"net/http"

	prometheus "github.com/parkwifi/parkportal/internal/promtext"
)

func init() {
	uses = append(uses, func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector())
		logins := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logins_total"}, []string{"result"})
		reg.MustRegister(logins)
		logins.WithLabelValues("ok").Inc()
		http.Handle("/metrics", prometheus.HandlerFor(reg))
	})
}
