package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// closingBackend answers one request per connection with a keep-alive
// response, then closes the connection, and reports each close: the
// proxy finds these connections dead in its pool.
func closingBackend(t *testing.T) (string, <-chan struct{}, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	closed := make(chan struct{}, 100)
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err == nil {
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
			c.Close()
			closed <- struct{}{}
		}
	}()
	return ln.Addr().String(), closed, &conns
}

func TestStaleKeepAliveConnections(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			addr, closed, conns := closingBackend(t)
			p := newTestProxy(t, Config{})
			p.Update(oneRoute("app.test", "", addr))
			for i := range 5 {
				if w := do(p, method, "http://app.test/", "body"); w.Code != 200 {
					t.Fatalf("request %d: got %d, want 200", i, w.Code)
				}
				<-closed
			}
			// GET: each pooled connection was tried and found closed;
			// POST: the probe found them closed before sending.
			want := int64(5)
			if conns.Load() != want {
				t.Errorf("connections: got %d, want %d", conns.Load(), want)
			}
		})
	}
}

func TestUpstreamHeaderTimeout(t *testing.T) {
	wantHeaderTimeout(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the proxy gave up and closed the connection
	})
}

// TestInformationalResponsesDoNotExtendTheTimeout: an upstream that
// sends 1xx responses (102 Processing, 103 Early Hints) every second
// does not hold the request past the header timeout: the final head is
// due within it, counted from the request.
func TestInformationalResponsesDoNotExtendTheTimeout(t *testing.T) {
	wantHeaderTimeout(t, func(w http.ResponseWriter, r *http.Request) {
		for range 60 {
			w.WriteHeader(http.StatusProcessing)
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
			}
		}
		io.WriteString(w, "late")
	})
}

// wantHeaderTimeout checks that a request to upstream h gets a 504 once
// the header timeout (7 s) has passed, not before, not later.
func wantHeaderTimeout(t *testing.T, h http.HandlerFunc) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		defer net.serve("slow:80", h)()
		p := newTestProxy(t, Config{UpstreamHeaderTimeout: 7 * time.Second})
		p.useMemNet(&net)
		defer p.closePools()
		p.Update(oneRoute("app.test", "", "slow:80"))
		start := time.Now()
		w := do(p, "GET", "http://app.test/", "")
		if w.Code != http.StatusGatewayTimeout {
			t.Errorf("got %d, want 504", w.Code)
		}
		if d := time.Since(start); d != 7*time.Second {
			t.Errorf("after %v, want 7s", d)
		}
	})
}

func TestClientLeavesWhileUpstreamThinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net memNet
		upstreamDone := make(chan error, 1)
		defer net.serve("slow:80", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // the proxy closed the connection
			upstreamDone <- r.Context().Err()
		}))()
		p := newTestProxy(t, Config{})
		p.useMemNet(&net)
		defer p.closePools()
		p.Update(oneRoute("app.test", "", "slow:80"))
		ctx, cancel := contextWithCancel()
		r := httpRequest("GET", "http://app.test/").WithContext(ctx)
		w := newRecorder()
		done := make(chan struct{})
		go func() { p.ServeHTTP(w, r); close(done) }()
		time.Sleep(3 * time.Second)
		cancel()
		<-done
		if w.wrote {
			t.Errorf("wrote %d to a client that left", w.Code)
		}
		if err := <-upstreamDone; err == nil {
			t.Error("upstream request not ended")
		}
		if n := p.table.Load().byID["t0"][0].inflight.Load(); n != 0 {
			t.Errorf("in flight: %d", n)
		}
	})
}

func TestConnPool(t *testing.T) {
	var p connPool
	mk := func() *conn { a, _ := net.Pipe(); return newConn(a) }
	c1, c2 := mk(), mk()
	now := time.Now().UnixNano()
	p.put(c1, now)
	p.put(c2, now+1)
	if got := p.get(now + 2); got != c2 || !got.reused {
		t.Error("not most recently used first")
	}
	if got := p.get(now + 2 + int64(idleConnTimeout) + 1); got != nil {
		t.Error("got a connection idle for too long")
	}
	p.put(mk(), now)
	p.put(mk(), now+int64(time.Minute))
	p.reap(now + 1)
	if len(p.idle) != 1 {
		t.Errorf("after reap: %d idle, want 1", len(p.idle))
	}
	p.closeIdle(true)
	c := mk()
	p.put(c, now)
	if len(p.idle) != 0 {
		t.Error("closed pool kept a connection")
	}
	p.reopen()
	p.put(c, now)
	if len(p.idle) != 1 {
		t.Error("reopened pool refused a connection")
	}
	var _ = strings.NewReader
}
