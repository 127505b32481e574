package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

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

// A stream (a watch, a follow) is observed for the time until it started,
// not for how long the client kept it open: an agent's hours-long watch
// must not land in the API latency histogram's +Inf bucket.
func TestMetricsStreamLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		defer st.Close()
		log := slog.New(slog.DiscardHandler)
		reg := prometheus.NewRegistry()
		s := New(Config{}, Deps{Store: st, Log: log, Events: events.NewRecorder(st, log), Registry: reg})
		ctx, cancel := context.WithCancel(context.Background())
		st.Txn(ctx, nil, store.Put(store.TokenKey(HashToken(token)), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})))
		req := httptest.NewRequest("GET", "/v1/projects/shop/watch", nil).WithContext(ctx)
		req.Header.Set("Authorization", "Bearer "+token)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Handler().ServeHTTP(httptest.NewRecorder(), req)
		}()
		time.Sleep(2 * time.Hour)
		cancel()
		<-done
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, mf := range mfs {
			if mf.GetName() != "ruche_api_request_duration_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				n += h.GetSampleCount()
				if h.GetSampleSum() > 1 {
					t.Errorf("watch observed for %vs, want the time until it started", h.GetSampleSum())
				}
			}
		}
		if n != 1 {
			t.Errorf("got %d observations, want 1", n)
		}
	})
}
