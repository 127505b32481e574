package proxy

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gather returns the series of reg as "name{k=v,...} value" lines
// (histograms as their sample count), for the named families.
func gather(t *testing.T, reg *prometheus.Registry, names ...string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !want[mf.GetName()] {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := New(Config{}, Deps{Log: testLog(t), Metrics: reg})
	t.Cleanup(p.closePools)
	p.randN = func(int) int { return 0 }
	p.Update(oneRoute("app.test", "", deadAddr(t), backend(t, named("web"))))
	for range 3 {
		do(p, "GET", "http://app.test/", "")
	}
	do(p, "GET", "http://nowhere.test/", "")

	got := gather(t, reg, "ruche_proxy_requests_total", "ruche_proxy_upstream_errors_total", "ruche_proxy_unrouted_requests_total",
		"ruche_proxy_requests_in_flight", "ruche_proxy_upstream_ejections_total", "ruche_proxy_request_duration_seconds")
	want := map[string]float64{
		"ruche_proxy_requests_total{code_class=1xx,route=p/web}":       0,
		"ruche_proxy_requests_total{code_class=2xx,route=p/web}":       3,
		"ruche_proxy_requests_total{code_class=3xx,route=p/web}":       0,
		"ruche_proxy_requests_total{code_class=4xx,route=p/web}":       0,
		"ruche_proxy_requests_total{code_class=5xx,route=p/web}":       0,
		"ruche_proxy_upstream_errors_total{kind=body,route=p/web}":     0,
		"ruche_proxy_upstream_errors_total{kind=dial,route=p/web}":     1,
		"ruche_proxy_upstream_errors_total{kind=protocol,route=p/web}": 0,
		"ruche_proxy_upstream_errors_total{kind=reset,route=p/web}":    0,
		"ruche_proxy_upstream_errors_total{kind=timeout,route=p/web}":  0,
		"ruche_proxy_unrouted_requests_total{}":                        1,
		"ruche_proxy_requests_in_flight{route=p/web}":                  0,
		"ruche_proxy_upstream_ejections_total{route=p/web}":            1,
		"ruche_proxy_request_duration_seconds{route=p/web}":            3,
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s: got %v (present %v), want %v", k, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}

	// A route that goes away takes its series along.
	p.Update(&Table{})
	if got := gather(t, reg, "ruche_proxy_requests_total"); len(got) != 0 {
		t.Errorf("series of a removed route: %v", got)
	}

	// A second proxy in the process shares the collectors.
	p2 := New(Config{}, Deps{Log: testLog(t), Metrics: reg})
	p2.Update(oneRoute("two.test", "", "10.0.0.1:80"))
	if got := gather(t, reg, "ruche_proxy_requests_total"); len(got) != 5 {
		t.Errorf("series after a second proxy: got %d, want 5", len(got))
	}
}
