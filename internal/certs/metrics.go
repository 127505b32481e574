package certs

import (
	"crypto/x509"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
)

// metrics are the Manager's Prometheus metrics. Certificate counts and
// expiry are computed at scrape time from what is being served.
type metrics struct {
	m              *Manager
	acme           *prometheus.CounterVec
	internalIssued prometheus.Counter
	certs          *prometheus.Desc
	expiry         *prometheus.Desc
}

func newMetrics(m *Manager) *metrics {
	return &metrics{
		m: m,
		acme: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ruche_certs_acme_results_total",
			Help: "ACME certificate orders by operation (obtain, renew) and result (success, failure).",
		}, []string{"op", "result"}),
		internalIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ruche_certs_internal_issued_total",
			Help: "Certificates issued by this node from the cluster CA.",
		}),
		certs: prometheus.NewDesc("ruche_certs_certificates",
			"Wanted hosts with a certificate ready to serve, by TLS mode.", []string{"mode"}, nil),
		expiry: prometheus.NewDesc("ruche_certs_expiry_seconds",
			"When the served certificate of a host expires (Unix time).", []string{"host", "mode"}, nil),
	}
}

func (x *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{x.acme, x.internalIssued, x} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (x *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- x.certs
	ch <- x.expiry
}

func (x *metrics) Collect(ch chan<- prometheus.Metric) {
	count := map[string]int{client.TLSACME: 0, client.TLSInternal: 0, client.TLSFiles: 0}
	for _, s := range x.m.served() {
		count[s.mode]++
		ch <- prometheus.MustNewConstMetric(x.expiry, prometheus.GaugeValue,
			float64(s.leaf.NotAfter.Unix()), s.host, s.mode)
	}
	for mode, n := range count {
		ch <- prometheus.MustNewConstMetric(x.certs, prometheus.GaugeValue, float64(n), mode)
	}
}

// servedCert is a wanted host and the leaf it is served with now.
type servedCert struct {
	host, mode string
	leaf       *x509.Certificate
}

// served lists the wanted hosts that have a certificate, without issuing
// or loading anything.
func (m *Manager) served() []servedCert {
	var out []servedCert
	var acmeHosts []string
	m.mu.RLock()
	a := m.acme
	for host, w := range m.wants {
		switch w.Mode {
		case client.TLSInternal:
			if l := m.internal[host]; l != nil {
				out = append(out, servedCert{host, w.Mode, l.cert.Leaf})
			}
		case client.TLSFiles:
			if f := m.files[host]; f != nil && f.serves(w) {
				out = append(out, servedCert{host, w.Mode, f.cert.Leaf})
			}
		case client.TLSACME:
			acmeHosts = append(acmeHosts, host)
		}
	}
	m.mu.RUnlock()
	if a == nil {
		return out
	}
	for _, host := range acmeHosts {
		var best *x509.Certificate
		for _, c := range a.cache.AllMatchingCertificates(host) {
			if c.Leaf != nil && (best == nil || c.Leaf.NotAfter.After(best.NotAfter)) {
				best = c.Leaf
			}
		}
		if best != nil {
			out = append(out, servedCert{host, client.TLSACME, best})
		}
	}
	return out
}
