package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestProxy returns a proxy whose idle upstream connections are
// closed at the end of the test.
func newTestProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	p := New(cfg, Deps{Log: testLog(t)})
	t.Cleanup(func() { p.closePools() })
	return p
}

// closePools closes every upstream connection the proxy keeps.
func (p *Proxy) closePools() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.states {
		s.pool.closeIdle(true)
	}
}

// backend starts an HTTP server on 127.0.0.1 and returns its address.
func backend(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// named answers its name, to tell backends apart.
func named(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", name)
		io.WriteString(w, name)
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// oneRoute is a table with one route for host to addrs (IDs t0, t1...).
func oneRoute(host, prefix string, addrs ...string) *Table {
	r := Route{Name: "p/" + strings.TrimPrefix(prefix, "/") + "web", Host: host, PathPrefix: prefix}
	for i, a := range addrs {
		r.Upstreams = append(r.Upstreams, Upstream{ID: fmt.Sprintf("t%d", i), Addr: a})
	}
	return &Table{Version: 1, Routes: []Route{r}}
}

// do sends a request through ServeHTTP and returns the recorded response.
func do(p *Proxy, method, url, body string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, url, rd)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w
}

// runProxy runs p on loopback ports until the end of the test and returns
// its addresses ("" for a listener it has not).
func runProxy(t testing.TB, p *Proxy) (httpAddr, httpsAddr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-p.Ready()
	h, s := p.Addrs()
	if h != nil {
		httpAddr = h.String()
	}
	if s != nil {
		httpsAddr = s.String()
	}
	if h == nil && s == nil {
		t.Fatal("proxy is not listening")
	}
	return httpAddr, httpsAddr
}

// memNet is an in-memory network (net.Pipe) for tests inside synctest
// bubbles, where real sockets would not let time advance.
type memNet struct {
	mu sync.Mutex
	ls map[string]*memListener
}

type memListener struct {
	addr string
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	net  *memNet
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

func (n *memNet) listen(addr string) *memListener {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ls == nil {
		n.ls = map[string]*memListener{}
	}
	l := &memListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{}), net: n}
	n.ls[addr] = l
	return l
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.net.mu.Lock()
		if l.net.ls[l.addr] == l {
			delete(l.net.ls, l.addr)
		}
		l.net.mu.Unlock()
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr(l.addr) }

func (n *memNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	l := n.ls[addr]
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	if l == nil {
		return nil, refused
	}
	a, b := net.Pipe()
	select {
	case l.ch <- b:
		return a, nil
	case <-l.done:
		return nil, refused
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// serve runs an HTTP server on a memNet address until the returned stop
// is called (stop also closes its connections).
func (n *memNet) serve(addr string, h http.Handler) (stop func()) {
	l := n.listen(addr)
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		srv.Serve(l)
		close(done)
	}()
	return func() {
		srv.Close()
		<-done
	}
}

// useMemNet makes p dial n.
func (p *Proxy) useMemNet(n *memNet) { p.dialNet = n.dial }

// waitFor polls cond (outside synctest bubbles) up to a generous bound;
// it fails the test rather than hang.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// responseRecorder is httptest.ResponseRecorder that also says whether
// anything was written.
type responseRecorder struct {
	*httptest.ResponseRecorder
	wrote bool
}

func newRecorder() *responseRecorder {
	return &responseRecorder{ResponseRecorder: httptest.NewRecorder()}
}

func (r *responseRecorder) WriteHeader(code int) {
	r.wrote = true
	r.ResponseRecorder.WriteHeader(code)
}

func (r *responseRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseRecorder.Write(b)
}

func httpRequest(method, url string) *http.Request {
	return httptest.NewRequest(method, url, nil)
}

func record(p *Proxy, method, url string) *responseRecorder {
	w := newRecorder()
	p.ServeHTTP(w, httpRequest(method, url))
	return w
}

func httptestServer(h http.Handler) *httptest.Server { return httptest.NewUnstartedServer(h) }
