package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// answer is what a fake server does with the n-th request it reads (n
// counts over all its connections, from 0; connReq counts on this
// connection).
type answer struct {
	delay  time.Duration
	status int
	body   string // default: the request body (echo), else /bytes/<n> filler
	hangup bool   // close the connection without answering
}

// pipeServer returns a dial function whose connections are net.Pipes to an
// HTTP/1.1 server running handle, inside the caller's synctest bubble.
func pipeServer(t *testing.T, handle func(n, connReq int, r *http.Request, body string) answer) (dial func(context.Context) (net.Conn, error), wait func()) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	dial = func(context.Context) (net.Conn, error) {
		c, s := net.Pipe()
		wg.Go(func() {
			defer s.Close()
			br := bufio.NewReader(s)
			for connReq := 0; ; connReq++ {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				b, _ := io.ReadAll(req.Body)
				mu.Lock()
				i := n
				n++
				mu.Unlock()
				a := handle(i, connReq, req, string(b))
				time.Sleep(a.delay)
				if a.hangup {
					return
				}
				if a.status == 0 {
					a.status = 200
				}
				body := a.body
				if body == "" {
					body = string(b)
					if strings.HasPrefix(req.URL.Path, "/bytes/") {
						var size int
						fmt.Sscanf(req.URL.Path, "/bytes/%d", &size)
						body = strings.Repeat("x", size)
					}
				}
				fmt.Fprintf(s, "HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s", a.status, len(body), body)
			}
		})
		return c, nil
	}
	return dial, wg.Wait
}

func mustRequest(t *testing.T, s string) request {
	t.Helper()
	r, err := parseRequest(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLoadConstantRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dial, wait := pipeServer(t, func(int, int, *http.Request, string) answer { return answer{delay: 5 * time.Millisecond} })
		res, err := runLoad(t.Context(), loadConfig{
			rate: 100, warmup: time.Second, duration: 2 * time.Second, conns: 4, timeout: time.Second,
			host: "bench.ruche.test", mix: []request{mustRequest(t, "GET /bytes/1024"), mustRequest(t, "POST /echo")},
			dial: dial, maxErrorEvents: 10,
		})
		if err != nil {
			t.Fatal(err)
		}
		wait()
		if res.sent != 200 || res.ok != 200 || res.failed != 0 || res.warmupFailed != 0 {
			t.Errorf("sent %d ok %d failed %d warmup failed %d, want 200 200 0 0 (errors %v)", res.sent, res.ok, res.failed, res.warmupFailed, res.errs)
		}
		// Fake time: every answer takes exactly the server's 5 ms.
		for _, q := range []float64{0.5, 0.99, 1} {
			if got := percentile(res.lat, q); got != 5*time.Millisecond {
				t.Errorf("p%v = %v, want 5ms", q*100, got)
			}
		}
		if res.late != 0 || res.dials < 1 || res.dials > 4 || res.retries != 0 {
			t.Errorf("late %d dials %d retries %d, want 0, 1 to 4, 0", res.late, res.dials, res.retries)
		}
	})
}

// TestLoadNoCoordinatedOmission: one connection, 100 req/s, the server
// stalls 1 s on one request. Measured from the scheduled send time, every
// request that queued behind the stall is slow too: 56 of them over
// 500 ms (a closed-loop client would report one).
func TestLoadNoCoordinatedOmission(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dial, wait := pipeServer(t, func(n, _ int, _ *http.Request, _ string) answer {
			if n == 50 {
				return answer{delay: time.Second}
			}
			return answer{delay: time.Millisecond}
		})
		res, err := runLoad(t.Context(), loadConfig{
			rate: 100, duration: 2 * time.Second, conns: 1, timeout: 5 * time.Second,
			host: "h", mix: []request{mustRequest(t, "GET /")}, dial: dial,
		})
		if err != nil {
			t.Fatal(err)
		}
		wait()
		slow := 0
		for _, l := range res.lat {
			if l > 500*time.Millisecond {
				slow++
			}
		}
		if slow != 56 {
			t.Errorf("%d requests over 500ms, want 56 (the stalled one and the 55 queued behind it)", slow)
		}
		if got, want := percentile(res.lat, 1), time.Second; got != want {
			t.Errorf("max = %v, want %v", got, want)
		}
		if res.ok != 200 {
			t.Errorf("ok = %d, want 200", res.ok)
		}
	})
}

func TestLoadCountsFailures(t *testing.T) {
	tests := []struct {
		name   string
		req    string
		answer func(n int) answer
		want   map[string]int
	}{
		{"5xx", "GET /", func(n int) answer {
			if n%10 == 0 {
				return answer{status: 502}
			}
			return answer{}
		}, map[string]int{"unexpected status 502": 20}},
		{"short body", "GET /bytes/1024", func(n int) answer {
			if n%20 == 0 {
				return answer{body: "tiny"}
			}
			return answer{}
		}, map[string]int{"unexpected body: 4 bytes, want 1024": 10}},
		{"wrong echo", "POST /echo", func(n int) answer {
			if n%40 == 0 {
				return answer{body: "someone else's body\n"}
			}
			return answer{}
		}, map[string]int{"unexpected body: the echo differs from the request body": 5}},
		{"timeout", "GET /", func(n int) answer {
			if n == 7 {
				return answer{delay: 3 * time.Second}
			}
			return answer{}
		}, map[string]int{"read response: timeout": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dial, wait := pipeServer(t, func(n, _ int, _ *http.Request, _ string) answer { return tt.answer(n) })
				res, err := runLoad(t.Context(), loadConfig{
					rate: 100, duration: 2 * time.Second, conns: 8, timeout: time.Second,
					host: "h", mix: []request{mustRequest(t, tt.req)}, dial: dial, maxErrorEvents: 3,
				})
				if err != nil {
					t.Fatal(err)
				}
				wait()
				want := 0
				for _, n := range tt.want {
					want += n
				}
				if res.failed != want || res.ok != 200-want {
					t.Errorf("failed %d ok %d, want %d %d", res.failed, res.ok, want, 200-want)
				}
				if fmt.Sprint(res.errs) != fmt.Sprint(tt.want) {
					t.Errorf("errors %v, want %v", res.errs, tt.want)
				}
				if len(res.events) != min(3, want) {
					t.Errorf("%d error events kept, want %d", len(res.events), min(3, want))
				}
			})
		})
	}
}

// TestRetryRules: the server answers the first request of each connection
// and hangs up on the second after reading it. A GET is sent again on a
// new connection (no byte of the answer came); a POST is not (it was
// written whole), as net/http's Transport does.
func TestRetryRules(t *testing.T) {
	tests := []struct {
		req                        string
		ok, failed, dials, retries int
	}{
		{"GET /", 10, 0, 10, 9},
		{"POST /echo", 5, 5, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.req, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dial, wait := pipeServer(t, func(_, connReq int, _ *http.Request, _ string) answer {
					return answer{hangup: connReq > 0}
				})
				res, err := runLoad(t.Context(), loadConfig{
					rate: 10, duration: time.Second, conns: 1, timeout: time.Second,
					host: "h", mix: []request{mustRequest(t, tt.req)}, dial: dial, maxErrorEvents: 10,
				})
				if err != nil {
					t.Fatal(err)
				}
				wait()
				got := []int{res.ok, res.failed, res.dials, res.retries}
				want := []int{tt.ok, tt.failed, tt.dials, tt.retries}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("ok, failed, dials, retries = %v, want %v (errors %v)", got, want, res.errs)
				}
			})
		})
	}
}

// TestIdleAliveTCP: a kept connection that the server closed while idle is
// noticed before the next request is written (real loopback socket).
func TestIdleAliveTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	hc := &httpConn{conn: &countConn{Conn: nc}}
	hc.br = bufio.NewReader(hc.conn)
	defer hc.close()
	srv := <-accepted
	if !hc.idleAlive() {
		t.Fatal("open idle connection reported closed")
	}
	if !hc.idleAlive() {
		t.Fatal("the probe changed the connection")
	}
	srv.Close()
	// The FIN crosses loopback at once; allow the kernel a moment anyway.
	for i := 0; hc.idleAlive(); i++ {
		if i == 1000 {
			t.Fatal("connection closed by the server still reported open")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 1000; i++ {
		v = append(v, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Millisecond},
		{0.9, 900 * time.Millisecond},
		{0.99, 990 * time.Millisecond},
		{0.999, 999 * time.Millisecond},
		{1, 1000 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(v, tt.q); got != tt.want {
			t.Errorf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := percentile(nil, 0.99); got != 0 {
		t.Errorf("percentile of nothing = %v, want 0", got)
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		in      string
		want    request
		wantErr bool
	}{
		{"GET /bytes/1024", request{"GET", "/bytes/1024", 1024}, false},
		{"POST /echo", request{"POST", "/echo", -1}, false},
		{"GET /", request{"GET", "/", -1}, false},
		{"DELETE /x", request{}, true},
		{"GET x", request{}, true},
		{"GET", request{}, true},
	}
	for _, tt := range tests {
		got, err := parseRequest(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseRequest(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
