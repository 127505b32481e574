package apiserver

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/store"
)

// Whatever a client sends (methods, paths with names in them, unknown
// endpoints), the API latency metric gets no series beyond its routes and
// a few methods: random input must not grow /metrics.
func TestMetricsCardinality(t *testing.T) {
	st := store.NewMemory()
	t.Cleanup(st.Close)
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	s := New(Config{}, Deps{Store: st, Log: log, Events: events.NewRecorder(st, log), Registry: reg})
	send := func(method, path string) {
		req := httptest.NewRequest("GET", path, bytes.NewReader(nil))
		req.Method = method
		req.Header.Set("Authorization", "Bearer "+token)
		s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	}
	series := func() int { return testutil.CollectAndCount(reg, "ruche_api_request_duration_seconds") }
	for i := range 3 {
		send("GET", fmt.Sprintf("/v1/projects/p%d", i))
		send("FOO", fmt.Sprintf("/v1/agent/x%d", i))
	}
	before := series()
	for i := range 50 {
		send(fmt.Sprintf("M%d", i), fmt.Sprintf("/v1/agent/nodes/n%d/nosuch", i))
		send("GET", fmt.Sprintf("/v1/projects/p-%d", i))
		send("DELETE", fmt.Sprintf("/v1/projects/p-%d/services/s%d", i, i))
		send("GET", fmt.Sprintf("/nosuch/%d", i))
	}
	if got := series(); got != before {
		t.Errorf("random methods and paths grew ruche_api_request_duration_seconds from %d to %d series", before, got)
	}
}
