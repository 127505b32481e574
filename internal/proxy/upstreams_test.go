package proxy

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestEjectionBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream(Upstream{ID: "a", Addr: "x"}, "")
		now := func() int64 { return time.Now().UnixNano() }
		wantOut := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
		for i, d := range wantOut {
			u.eject(time.Now(), false)
			if u.available(now()) {
				t.Fatalf("ejection %d: available at once", i+1)
			}
			time.Sleep(d - time.Millisecond)
			if u.available(now()) {
				t.Fatalf("ejection %d: available before %v", i+1, d)
			}
			time.Sleep(time.Millisecond)
			if !u.available(now()) {
				t.Fatalf("ejection %d: not available after %v", i+1, d)
			}
		}
		u.succeeded()
		u.eject(time.Now(), false)
		time.Sleep(ejectBase)
		if !u.available(now()) {
			t.Errorf("backoff not reset by a success")
		}
	})
}

func TestFailuresEject(t *testing.T) {
	u := newUpstream(Upstream{ID: "a", Addr: "x"}, "")
	for i := 1; i < maxFails; i++ {
		if u.failed() {
			t.Fatalf("failure %d ejects, want %d", i, maxFails)
		}
	}
	u.succeeded()
	for i := 1; i < maxFails; i++ {
		u.failed()
	}
	if !u.failed() {
		t.Errorf("failure %d does not eject", maxFails)
	}
}

// counting wraps a handler and counts its requests.
func counting(n *atomic.Int64, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}
}

func TestPassiveEjectionOf5xx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		var bad, good atomic.Int64
		defer net.serve("bad:80", counting(&bad, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))()
		defer net.serve("good:80", counting(&good, named("good")))()
		p := newTestProxy(t, Config{})
		p.useMemNet(&net)
		defer p.closePools()
		p.Update(oneRoute("app.test", "", "bad:80", "good:80"))

		status := map[int]int{}
		for range 60 {
			status[do(p, "GET", "http://app.test/", "").Code]++
		}
		if status[500] != maxFails || bad.Load() != maxFails {
			t.Errorf("500s before ejection: got %d (backend saw %d), want %d", status[500], bad.Load(), maxFails)
		}
		// After the backoff it gets traffic again, and is ejected again
		// after maxFails more, for twice as long.
		time.Sleep(ejectBase)
		for range 60 {
			status[do(p, "GET", "http://app.test/", "").Code]++
		}
		if bad.Load() != 2*maxFails {
			t.Errorf("bad backend after a backoff: got %d requests, want %d", bad.Load(), 2*maxFails)
		}
		time.Sleep(ejectBase)
		do(p, "GET", "http://app.test/", "")
		if bad.Load() != 2*maxFails {
			t.Errorf("second ejection shorter than twice the first")
		}
		if status[200]+status[500] != 120 {
			t.Errorf("statuses: %v", status)
		}
	})
}

func TestLastUpstreamIsNotEjectedFor5xx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		defer net.serve("bad:80", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))()
		p := newTestProxy(t, Config{HoldTimeout: time.Second})
		p.useMemNet(&net)
		defer p.closePools()
		p.Update(oneRoute("app.test", "", "bad:80"))
		for i := range 3 * maxFails {
			if w := do(p, "GET", "http://app.test/", ""); w.Code != 503 || w.Header().Get("Retry-After") != "" {
				t.Fatalf("request %d: got %d (Retry-After %q), want the backend's own 503", i, w.Code, w.Header().Get("Retry-After"))
			}
		}
	})
}

func TestDialErrorEjectsAndHealthCheckRestores(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		var a, b atomic.Int64
		defer net.serve("b:80", counting(&b, named("b")))()
		p := newTestProxy(t, Config{HealthInterval: 500 * time.Millisecond})
		p.useMemNet(&net)
		defer p.closePools()
		p.randN = func(int) int { return 0 } // always try a first
		p.Update(oneRoute("app.test", "", "a:80", "b:80"))
		ua := p.table.Load().byID["t0"][0]

		if w := do(p, "GET", "http://app.test/", ""); w.Code != 200 || w.Body.String() != "b" {
			t.Fatalf("with a down: got %d %q, want 200 from b", w.Code, w.Body.String())
		}
		if ua.available(time.Now().UnixNano()) {
			t.Fatal("a not ejected after a dial error")
		}
		// a comes up; the next health check (before the backoff ends)
		// brings it back.
		defer net.serve("a:80", counting(&a, named("a")))()
		ctx, cancel := contextWithCancel()
		done := make(chan struct{})
		go func() { p.healthLoop(ctx); close(done) }()
		time.Sleep(600 * time.Millisecond)
		synctest.Wait()
		if !ua.available(time.Now().UnixNano()) {
			t.Fatal("a still ejected after a successful health check")
		}
		if w := do(p, "GET", "http://app.test/", ""); w.Body.String() != "a" {
			t.Errorf("after recovery: got %q, want a", w.Body.String())
		}
		cancel()
		<-done
	})
}

func TestHealthCheckTakesOutAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		defer net.serve("a:80", named("a"))()
		defer net.serve("b:80", named("b"))()
		p := newTestProxy(t, Config{HealthInterval: time.Second})
		p.useMemNet(&net)
		defer p.closePools()
		var healthy atomic.Bool
		p.check = func(u *upstream) error {
			if u.id == "t0" && !healthy.Load() {
				return errors.New("unhealthy")
			}
			return nil
		}
		p.Update(oneRoute("app.test", "", "a:80", "b:80"))
		ctx, cancel := contextWithCancel()
		done := make(chan struct{})
		go func() { p.healthLoop(ctx); close(done) }()
		time.Sleep(1100 * time.Millisecond)
		for i := range 20 {
			if w := do(p, "GET", "http://app.test/", ""); w.Body.String() != "b" {
				t.Fatalf("request %d: got %q, want b only while a fails its checks", i, w.Body.String())
			}
		}
		healthy.Store(true)
		time.Sleep(time.Second)
		seen := map[string]int{}
		for range 40 {
			seen[do(p, "GET", "http://app.test/", "").Body.String()]++
		}
		if seen["a"] == 0 || seen["b"] == 0 {
			t.Errorf("after a passes again: got %v, want both", seen)
		}
		cancel()
		<-done
	})
}

// TestAllFailingChecks: when active checks fail for every upstream of a
// route, traffic still flows (the check may be what is wrong).
func TestAllFailingChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		defer net.serve("a:80", named("a"))()
		p := newTestProxy(t, Config{HealthInterval: time.Second})
		p.useMemNet(&net)
		defer p.closePools()
		p.check = func(*upstream) error { return errors.New("wrong check") }
		p.Update(oneRoute("app.test", "", "a:80"))
		p.checkAll(t.Context())
		if !p.table.Load().byID["t0"][0].down.Load() {
			t.Fatal("check failure not recorded")
		}
		start := time.Now()
		if w := do(p, "GET", "http://app.test/", ""); w.Code != 200 || time.Since(start) != 0 {
			t.Errorf("got %d after %v, want 200 at once", w.Code, time.Since(start))
		}
	})
}

func TestDefaultHealthCheck(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	var gotHost, gotPath atomic.Value
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		gotPath.Store(r.URL.Path)
		w.WriteHeader(int(status.Load()))
	})
	tests := []struct {
		name   string
		path   string
		addr   string
		status int
		ok     bool
	}{
		{"tcp up", "", addr, 200, true},
		{"tcp down", "", deadAddr(t), 200, false},
		{"http 200", "healthz", addr, 200, true},
		{"http 302", "/healthz", addr, 302, true},
		{"http 404", "/healthz", addr, 404, true},
		{"http 500", "/healthz", addr, 500, false},
		{"http down", "/healthz", deadAddr(t), 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status.Store(int64(tt.status))
			p := newTestProxy(t, Config{HealthInterval: time.Second, HealthPath: tt.path})
			err := p.check(newUpstream(Upstream{ID: "x", Addr: tt.addr}, "app.test"))
			if (err == nil) != tt.ok {
				t.Fatalf("check: got %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && tt.path != "" {
				if gotHost.Load() != "app.test" || gotPath.Load() != "/healthz" {
					t.Errorf("request: got host %v path %v, want app.test /healthz", gotHost.Load(), gotPath.Load())
				}
			}
		})
	}
}
