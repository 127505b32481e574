package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/ruche-platform/ruche/internal/proxy/h1"
)

// rawBackend is an HTTP/1.1 server that answers every request with the
// same 1 KiB response and allocates nothing per request, so a benchmark
// counts the proxy's allocations only.
func rawBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	resp := append([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 1024\r\n\r\n"), bytes.Repeat([]byte("x"), 1024)...)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// discardWriter is a ResponseWriter that keeps nothing; Header returns a
// fresh map per request, as net/http's server does.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }
func (d *discardWriter) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }
func (d *discardWriter) Flush()                      {}

// BenchmarkProxyHotPath measures ServeHTTP for a keep-alive GET with a
// 1 KiB response: routing, selection, the upstream exchange, header and
// body relay, metrics and the access log. The net/http server's own
// parsing of the client request is not included (see
// BenchmarkProxyEndToEnd).
func BenchmarkProxyHotPath(b *testing.B) {
	addr := rawBackend(b)
	p := New(Config{AccessLog: io.Discard}, Deps{})
	p.Update(&Table{Routes: []Route{{Name: "p/web", Host: "app.example.org", Upstreams: []Upstream{{ID: "t1", Addr: addr}}}}})
	r := httptest.NewRequest("GET", "http://app.example.org/index.html", nil)
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Accept", "*/*")
	w := &discardWriter{}
	b.ReportAllocs()
	for b.Loop() {
		// As net/http's server does: a fresh header map and a fresh
		// cancelable context per request (2 of the allocations counted;
		// the proxy watches the context, which costs it 2 more).
		w.h = make(http.Header)
		w.n = 0
		ctx, cancel := context.WithCancel(context.Background())
		*r = *r.WithContext(ctx)
		p.ServeHTTP(w, r)
		cancel()
		if w.status != 200 || w.n != 1024 {
			b.Fatalf("status %d, %d bytes", w.status, w.n)
		}
	}
}

// BenchmarkProxyEndToEnd is a whole request through real sockets: client,
// the proxy's net/http server, ServeHTTP, the backend. Every allocation
// of the process counts, the client's included.
// BenchmarkProxyEndToEnd: a net/http client, the proxy behind net/http's
// server, a raw backend; all allocations of the three count.
func BenchmarkProxyEndToEnd(b *testing.B) {
	p := benchProxy(b)
	srv := httptest.NewServer(p)
	defer srv.Close()
	benchEndToEnd(b, srv.URL)
}

// BenchmarkProxyEndToEndH1 is BenchmarkProxyEndToEnd with the proxy
// behind h1, the server of its plain listener: the difference between
// the two is the server's.
func BenchmarkProxyEndToEndH1(b *testing.B) {
	p := benchProxy(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &h1.Server{Handler: p}
	go srv.Serve(ln)
	defer srv.Close()
	benchEndToEnd(b, "http://"+ln.Addr().String())
}

func benchProxy(b *testing.B) *Proxy {
	addr := rawBackend(b)
	p := New(Config{}, Deps{})
	p.Update(&Table{Routes: []Route{{Name: "p/web", Host: "app.example.org", Upstreams: []Upstream{{ID: "t1", Addr: addr}}}}})
	return p
}

func benchEndToEnd(b *testing.B, url string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", url+"/index.html", nil)
	req.Host = "app.example.org"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != 1024 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}
