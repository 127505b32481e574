package proxy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Error kinds of an attempt; kindNames are the "kind" label values of
// ruche_proxy_upstream_errors_total.
type errKind uint8

const (
	kindNone     errKind = iota
	kindDial             // could not connect
	kindReset            // closed or reset before the response headers
	kindTimeout          // no response headers within UpstreamHeaderTimeout
	kindProtocol         // malformed response
	kindBody             // the upstream failed in the middle of the response
	kindClient           // the client went away or sent a broken body (not the upstream's fault)
	kindTooLarge         // the request body exceeded MaxBodyBytes
	numKinds
)

var kindNames = [numKinds]string{"", "dial", "reset", "timeout", "protocol", "body", "client", "too_large"}

// upstreamKinds are the kinds counted as upstream errors.
var upstreamKinds = []errKind{kindDial, kindReset, kindTimeout, kindProtocol, kindBody}

var codeClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// metrics are the proxy's Prometheus collectors.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	upErrors  *prometheus.CounterVec
	inflight  *prometheus.GaugeVec
	unrouted  prometheus.Counter
	limited   prometheus.Counter
	ejections *prometheus.CounterVec
}

// routeMetrics are the children of one route, resolved once per route
// name so the hot path only does atomic adds.
type routeMetrics struct {
	codes     [len(codeClasses)]prometheus.Counter
	duration  prometheus.Observer
	errs      [numKinds]prometheus.Counter
	inflight  prometheus.Gauge
	ejections prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ruche_proxy_requests_total", Help: "Requests served by the ingress proxy, by route and status class.",
		}, []string{"route", "code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ruche_proxy_request_duration_seconds", Help: "Time from request to the end of the response, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ruche_proxy_upstream_errors_total", Help: "Failed exchanges with upstreams, retried or not, by route and kind.",
		}, []string{"route", "kind"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ruche_proxy_requests_in_flight", Help: "Requests being served, by route (open WebSockets included).",
		}, []string{"route"}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ruche_proxy_unrouted_requests_total", Help: "Requests for a host or path no route serves (404).",
		}),
		limited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ruche_proxy_rate_limited_total", Help: "Requests refused by the per-client rate limit (429).",
		}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ruche_proxy_upstream_ejections_total", Help: "Upstreams taken out of rotation by passive health checking, by route.",
		}, []string{"route"}),
	}
}

// register registers every collector, reusing one already registered
// (a second proxy in the same process shares them).
func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	reg := func(c prometheus.Collector) prometheus.Collector {
		if err := r.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return are.ExistingCollector
			}
			errs = append(errs, err)
		}
		return c
	}
	m.requests = reg(m.requests).(*prometheus.CounterVec)
	m.duration = reg(m.duration).(*prometheus.HistogramVec)
	m.upErrors = reg(m.upErrors).(*prometheus.CounterVec)
	m.inflight = reg(m.inflight).(*prometheus.GaugeVec)
	m.unrouted = reg(m.unrouted).(prometheus.Counter)
	m.limited = reg(m.limited).(prometheus.Counter)
	m.ejections = reg(m.ejections).(*prometheus.CounterVec)
	return errors.Join(errs...)
}

func (m *metrics) forRoute(name string) *routeMetrics {
	rm := &routeMetrics{
		duration:  m.duration.WithLabelValues(name),
		inflight:  m.inflight.WithLabelValues(name),
		ejections: m.ejections.WithLabelValues(name),
	}
	for i, c := range codeClasses {
		rm.codes[i] = m.requests.WithLabelValues(name, c)
	}
	for _, k := range upstreamKinds {
		rm.errs[k] = m.upErrors.WithLabelValues(name, kindNames[k])
	}
	return rm
}

// forget deletes the series of a route that no longer exists.
func (m *metrics) forget(name string) {
	m.duration.DeleteLabelValues(name)
	m.inflight.DeleteLabelValues(name)
	m.ejections.DeleteLabelValues(name)
	for _, c := range codeClasses {
		m.requests.DeleteLabelValues(name, c)
	}
	for _, k := range upstreamKinds {
		m.upErrors.DeleteLabelValues(name, kindNames[k])
	}
}

func (rm *routeMetrics) request(status int, seconds float64) {
	c := min(max(status/100, 1), 5)
	rm.codes[c-1].Inc()
	rm.duration.Observe(seconds)
}

func (rm *routeMetrics) upstreamError(k errKind) {
	if c := rm.errs[k]; c != nil {
		c.Inc()
	}
}
