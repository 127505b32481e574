package apiserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	latency *prometheus.HistogramVec
	deploys *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ruche_api_request_duration_seconds",
			Help:    "API request latency by method, route and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "route", "code"}),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ruche_deploys_total",
			Help: "Deploy requests by result (applied, unchanged, dry_run, rejected).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.latency, m.deploys)
	}
	return m
}

// observe records a request. The method label is one of the standard
// methods or "other": a route without a method in its pattern (the
// catch-all under /v1/agent/) takes any method a client makes up, and
// each would otherwise be a new series.
func (m *metrics) observe(method, route string, code int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
	default:
		method = "other"
	}
	m.latency.WithLabelValues(method, route, strconv.Itoa(code)).Observe(d.Seconds())
}
