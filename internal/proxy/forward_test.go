package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestRetryOnDialError(t *testing.T) {
	good := backend(t, named("good"))
	for _, method := range []string{"GET", "POST", "PATCH"} {
		t.Run(method, func(t *testing.T) {
			p := newTestProxy(t, Config{})
			p.randN = func(int) int { return 0 } // the dead one first
			p.Update(oneRoute("app.test", "", deadAddr(t), good))
			w := do(p, method, "http://app.test/", "payload")
			if w.Code != 200 || w.Body.String() != "good" {
				t.Fatalf("got %d %q, want 200 from the live backend", w.Code, w.Body.String())
			}
		})
	}
}

// resetBackend reads a request head and closes the connection (with a
// reset) before answering.
func resetBackend(t *testing.T) (addr string, hits *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits = new(atomic.Int64)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			hits.Add(1)
			c.(*net.TCPConn).SetLinger(0) // RST
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), hits
}

func TestRetryOnResetBeforeHeaders(t *testing.T) {
	tests := []struct {
		method, body string
		want         int
	}{
		{"GET", "", 200},
		{"HEAD", "", 200},
		{"PUT", "", 200},
		{"DELETE", "", 200},
		{"OPTIONS", "", 200},
		{"POST", "", 502},
		{"POST", "data", 502},
		{"PATCH", "", 502},
		{"PUT", "data", 502}, // a body that cannot be replayed
	}
	good := backend(t, named("good"))
	for _, tt := range tests {
		t.Run(tt.method+"/"+tt.body, func(t *testing.T) {
			reset, hits := resetBackend(t)
			p := newTestProxy(t, Config{})
			p.randN = func(int) int { return 0 } // the resetting one first
			p.Update(oneRoute("app.test", "", reset, good))
			w := do(p, tt.method, "http://app.test/", tt.body)
			if w.Code != tt.want {
				t.Fatalf("got %d, want %d", w.Code, tt.want)
			}
			if hits.Load() != 1 {
				t.Errorf("resetting backend saw %d requests, want 1", hits.Load())
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	var addrs []string
	var all []*atomic.Int64
	for range 5 {
		a, h := resetBackend(t)
		addrs = append(addrs, a)
		all = append(all, h)
	}
	p := newTestProxy(t, Config{})
	p.Update(oneRoute("app.test", "", addrs...))
	if w := do(p, "GET", "http://app.test/", ""); w.Code != 502 {
		t.Fatalf("got %d, want 502", w.Code)
	}
	var n int64
	for _, h := range all {
		n += h.Load()
	}
	if n != maxAttempts {
		t.Errorf("attempts: got %d, want %d", n, maxAttempts)
	}
}

func TestHoldThen503(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestProxy(t, Config{HoldTimeout: 3 * time.Second})
		p.Update(oneRoute("app.test", "")) // no ready replica
		start := time.Now()
		w := do(p, "GET", "http://app.test/", "")
		if w.Code != 503 {
			t.Fatalf("got %d, want 503", w.Code)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("held %v, want 3s", got)
		}
		if got := w.Header().Get("Retry-After"); got != "3" {
			t.Errorf("Retry-After: got %q, want 3", got)
		}
	})
}

func TestHoldThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		defer net.serve("new:80", named("new"))()
		p := newTestProxy(t, Config{HoldTimeout: 5 * time.Second})
		p.useMemNet(&net)
		defer p.closePools()
		p.Update(oneRoute("app.test", ""))
		var w *responseRecorder
		done := make(chan struct{})
		start := time.Now()
		go func() {
			w = record(p, "GET", "http://app.test/")
			close(done)
		}()
		time.Sleep(2 * time.Second)
		synctest.Wait() // the request is holding
		p.Update(oneRoute("app.test", "", "new:80"))
		<-done
		if w.Code != 200 || w.Body.String() != "new" {
			t.Fatalf("got %d %q, want 200 from the new replica", w.Code, w.Body.String())
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("answered after %v, want 2s (as soon as the table had a replica)", got)
		}
	})
}

func TestHoldWhileAllEjected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		p := newTestProxy(t, Config{HoldTimeout: 5 * time.Second})
		p.useMemNet(&net)
		defer p.closePools()
		p.Update(oneRoute("app.test", "", "a:80"))
		// a is down: the dial error ejects it, the request holds; a
		// comes up, the ejection ends after ejectBase and the request is
		// retried there.
		var w *responseRecorder
		done := make(chan struct{})
		start := time.Now()
		go func() {
			w = record(p, "GET", "http://app.test/")
			close(done)
		}()
		synctest.Wait()
		defer net.serve("a:80", named("a"))()
		<-done
		if w.Code != 200 {
			t.Fatalf("got %d, want 200", w.Code)
		}
		if got := time.Since(start); got != ejectBase {
			t.Errorf("answered after %v, want %v", got, ejectBase)
		}
	})
}

func TestHoldEndsWhenClientLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestProxy(t, Config{HoldTimeout: time.Minute})
		p.Update(oneRoute("app.test", ""))
		ctx, cancel := contextWithCancel()
		r := httpRequest("GET", "http://app.test/").WithContext(ctx)
		w := newRecorder()
		done := make(chan struct{})
		go func() { p.ServeHTTP(w, r); close(done) }()
		time.Sleep(time.Second)
		cancel()
		<-done
		if w.wrote {
			t.Errorf("wrote a response (%d) to a client that left", w.Code)
		}
	})
}

func TestPreservesHostAndTarget(t *testing.T) {
	var got atomic.Value
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Host + " " + r.RequestURI)
	})
	p := newTestProxy(t, Config{})
	p.Update(oneRoute("app.test", "", addr))
	for _, target := range []string{"/", "/a%2Fb?x=1&y=%20", "/caf%C3%A9/"} {
		r := httpRequest("GET", "http://App.Test:8080"+target)
		p.ServeHTTP(newRecorder(), r)
		want := "App.Test:8080 " + target
		if got.Load() != want {
			t.Errorf("upstream saw %q, want %q", got.Load(), want)
		}
	}
}

// TestDialRetriesReachTheLiveOne: dial errors are retried on every other
// upstream, beyond the bound on other retries.
func TestDialRetriesReachTheLiveOne(t *testing.T) {
	addrs := []string{deadAddr(t), deadAddr(t), deadAddr(t), deadAddr(t), deadAddr(t), backend(t, named("live"))}
	p := newTestProxy(t, Config{})
	p.randN = func(int) int { return 0 } // the dead ones first
	p.Update(oneRoute("app.test", "", addrs...))
	if w := do(p, "POST", "http://app.test/", "x"); w.Code != 200 || w.Body.String() != "live" {
		t.Fatalf("got %d %q, want 200 from the live backend", w.Code, w.Body.String())
	}
}

// TestUnreachableReplicaThen503: the only replica cannot be reached:
// the request holds, retries when the ejection ends, then gets a 503.
func TestUnreachableReplicaThen503(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		p := newTestProxy(t, Config{HoldTimeout: 5 * time.Second})
		p.useMemNet(&mn)
		var dials atomic.Int64
		p.dialNet = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return mn.dial(ctx, network, addr)
		}
		p.Update(oneRoute("app.test", "", "gone:80"))
		start := time.Now()
		w := record(p, "GET", "http://app.test/")
		if w.Code != 503 || w.Header().Get("Retry-After") == "" {
			t.Fatalf("got %d (Retry-After %q), want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("answered after %v, want the hold timeout", d)
		}
		// Dialled at 0s, again at 2s (first ejection over), not at 6s.
		if n := dials.Load(); n != 2 {
			t.Errorf("dials: got %d, want 2", n)
		}
	})
}
