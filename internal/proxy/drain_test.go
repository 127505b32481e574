package proxy

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

func TestDrainWaitsForInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		got, release := make(chan struct{}), make(chan struct{})
		defer net.serve("old:80", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(got)
			<-release
			w.Write([]byte("old"))
		}))()
		defer net.serve("new:80", named("new"))()
		p := newTestProxy(t, Config{})
		p.useMemNet(&net)
		defer p.closePools()
		p.Update(oneRoute("app.test", "", "old:80"))

		var w *responseRecorder
		reqDone := make(chan struct{})
		go func() { w = record(p, "GET", "http://app.test/"); close(reqDone) }()
		<-got

		// Drain before the table without it has arrived: it waits for it.
		drained := make(chan error, 1)
		go func() { drained <- p.Drain(context.Background(), "t0") }()
		synctest.Wait()
		select {
		case err := <-drained:
			t.Fatalf("Drain returned (%v) while the upstream is in the table", err)
		default:
		}
		tab := oneRoute("app.test", "", "new:80")
		tab.Routes[0].Upstreams[0].ID = "t1"
		p.Update(tab)
		synctest.Wait()
		select {
		case err := <-drained:
			t.Fatalf("Drain returned (%v) with a request in flight", err)
		default:
		}
		// New requests go to the new replica meanwhile.
		if w := record(p, "GET", "http://app.test/"); w.Body.String() != "new" {
			t.Errorf("new request: got %q, want new", w.Body.String())
		}
		close(release)
		<-reqDone
		if w.Code != 200 || w.Body.String() != "old" {
			t.Errorf("in-flight request: got %d %q, want 200 old", w.Code, w.Body.String())
		}
		if err := <-drained; err != nil {
			t.Errorf("Drain: %v", err)
		}
		p.mu.Lock()
		for _, s := range p.states {
			if s.id == "t0" {
				t.Errorf("state of the drained upstream kept")
			}
		}
		p.mu.Unlock()
	})
}

func TestDrainTimeoutAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestProxy(t, Config{DrainTimeout: 2 * time.Second})
		p.Update(oneRoute("app.test", "", "10.0.0.1:80"))
		start := time.Now()
		err := p.Drain(context.Background(), "t0")
		if !errors.Is(err, ErrDrainTimeout) {
			t.Errorf("got %v, want ErrDrainTimeout", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("gave up after %v, want 2s", d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := p.Drain(ctx, "t0"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller's deadline: got %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestDrainUnknownUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestProxy(t, Config{})
		p.Update(oneRoute("app.test", "", "10.0.0.1:80"))
		start := time.Now()
		if err := p.Drain(context.Background(), "never-seen"); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) != 0 {
			t.Errorf("Drain of an unknown upstream waited")
		}
	})
}

// TestAcquireAfterRemoval: a request that picked an upstream from the
// old table after Drain found it idle does not use it.
func TestAcquireAfterRemoval(t *testing.T) {
	p := newTestProxy(t, Config{})
	p.Update(oneRoute("app.test", "", "10.0.0.1:80"))
	u := p.table.Load().byID["t0"][0]
	p.Update(oneRoute("app.test", ""))
	if p.acquire(u) {
		t.Fatal("acquired a removed upstream")
	}
	if u.inflight.Load() != 0 {
		t.Errorf("in flight: got %d, want 0", u.inflight.Load())
	}
}
