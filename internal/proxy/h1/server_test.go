package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// start serves h on a loopback port and returns its address; the
// server is closed at the end of the test.
func start(t testing.TB, s *Server, h http.Handler) string {
	t.Helper()
	if s == nil {
		s = &Server{}
	}
	s.Handler = h
	if s.ErrorLog == nil {
		s.ErrorLog = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// client is one raw connection to the server.
type client struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// response reads one response to a request of method and its whole
// body.
func (c *client) response(method string) (*http.Response, string) {
	c.t.Helper()
	res, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

// closed reports whether the server closed the connection within 2 s,
// after whatever it sent.
func (c *client) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	return err == nil || !isTimeout(err)
}

const simpleGet = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"

func TestFraming(t *testing.T) {
	big := strings.Repeat("x", 3*pendingMax)
	addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "hello")
		case "/big":
			w.Header()[http.TrailerPrefix+"X-Sum"] = nil
			io.WriteString(w, big)
			w.Header().Set(http.TrailerPrefix+"X-Sum", "42")
		case "/trailer":
			// Declared trailers make a small body chunked too.
			io.WriteString(w, "hi")
			w.Header().Set(http.TrailerPrefix+"X-Sum", "7")
		case "/length":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hel")
			io.WriteString(w, "lo")
		case "/flush":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "x"); err != http.ErrBodyNotAllowed {
				t.Errorf("204 body write: %v, want ErrBodyNotAllowed", err)
			}
		}
	}))
	c := dial(t, addr)
	for _, tc := range []struct {
		path, method, body string
		length             int64
		chunked            bool
	}{
		{"/small", "GET", "hello", 5, false},
		{"/big", "GET", big, -1, true},
		{"/length", "GET", "hello", 5, false},
		{"/trailer", "GET", "hi", -1, true},
		{"/flush", "GET", "ab", -1, true},
		{"/nocontent", "GET", "", 0, false},
		{"/small", "HEAD", "", 5, false},
		{"/big", "HEAD", "", -1, false},
	} {
		c.send(tc.method + " " + tc.path + " HTTP/1.1\r\nHost: a\r\n\r\n")
		res, body := c.response(tc.method)
		if body != tc.body || res.ContentLength != tc.length || (len(res.TransferEncoding) > 0) != tc.chunked {
			t.Errorf("%s %s: body %d bytes, length %d, TE %v; want %d bytes, length %d, chunked %v",
				tc.method, tc.path, len(body), res.ContentLength, res.TransferEncoding, len(tc.body), tc.length, tc.chunked)
		}
		if want := map[string]string{"/big": "42", "/trailer": "7"}[tc.path]; tc.method == "GET" && res.Trailer.Get("X-Sum") != want {
			t.Errorf("%s: trailer X-Sum = %q, want %q", tc.path, res.Trailer.Get("X-Sum"), want)
		}
		if res.Header.Get("Date") == "" {
			t.Errorf("%s: no Date", tc.path)
		}
	}
	if c.closed() {
		t.Error("the connection was not kept")
	}
}

func TestShortAndLongBodies(t *testing.T) {
	addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
		if r.URL.Path == "/long" {
			if _, err := io.WriteString(w, "678901"); err != http.ErrContentLength {
				t.Errorf("write past the length: %v, want ErrContentLength", err)
			}
		}
	}))
	c := dial(t, addr)
	c.send(simpleGet)
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(res.Body); err != io.ErrUnexpectedEOF || string(b) != "12345" {
		t.Errorf("short body: %q, %v; want the 5 bytes, then unexpected EOF (the server closes)", b, err)
	}
}

func TestClientGoneCancelsWaitingRequest(t *testing.T) {
	for _, how := range []string{"done", "afterfunc", "body"} {
		t.Run(how, func(t *testing.T) {
			cancelled := make(chan error, 1)
			addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctx := r.Context()
				if how == "body" {
					io.ReadAll(r.Body)
				}
				if how == "afterfunc" {
					fired := make(chan struct{})
					context.AfterFunc(ctx, func() { close(fired) })
					select {
					case <-fired:
					case <-time.After(5 * time.Second):
					}
				} else {
					select {
					case <-ctx.Done():
					case <-time.After(5 * time.Second):
					}
				}
				cancelled <- ctx.Err()
			}))
			c := dial(t, addr)
			if how == "body" {
				c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
			} else {
				c.send(simpleGet)
			}
			time.Sleep(50 * time.Millisecond)
			c.nc.Close()
			if err := <-cancelled; !errors.Is(err, context.Canceled) {
				t.Errorf("ctx.Err() = %v once the client left, want context.Canceled", err)
			}
		})
	}
}

func TestContextNotCancelledWhileClientStays(t *testing.T) {
	errs := make(chan error, 2)
	addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(200 * time.Millisecond):
		}
		errs <- r.Context().Err()
		io.WriteString(w, "ok")
	}))
	c := dial(t, addr)
	// The second request arrives while the first handler waits: the
	// background read takes its first byte, and it must not be lost.
	c.send(simpleGet)
	time.Sleep(50 * time.Millisecond)
	c.send(simpleGet)
	for i := range 2 {
		if _, body := c.response("GET"); body != "ok" {
			t.Fatalf("response %d: %q", i, body)
		}
		if err := <-errs; err != nil {
			t.Errorf("request %d: ctx.Err() = %v while the client stayed", i, err)
		}
	}
}

func TestAbortHandlerCutsResponse(t *testing.T) {
	for _, v := range []any{http.ErrAbortHandler, "boom"} {
		addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ok" {
				io.WriteString(w, "fine")
				return
			}
			w.(http.Flusher).Flush()
			io.WriteString(w, "partial")
			panic(v)
		}))
		c := dial(t, addr)
		c.send(simpleGet)
		res, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(res.Body); err == nil {
			t.Errorf("panic(%v): body %q read whole; want it cut", v, b)
		}
		// The server goes on.
		c2 := dial(t, addr)
		c2.send("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, body := c2.response("GET"); body != "fine" {
			t.Errorf("after panic(%v): %q", v, body)
		}
	}
}

func TestHijack(t *testing.T) {
	addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer nc.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	}))
	c := dial(t, addr)
	// The tunnel's first bytes come with the request.
	c.send("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhi\n")
	res, err := http.ReadResponse(c.br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	if line, _ := c.br.ReadString('\n'); line != "echo hi\n" {
		t.Errorf("tunnel: %q", line)
	}
}

func TestShutdownLeavesHijacked(t *testing.T) {
	hijacked := make(chan net.Conn, 1)
	release := make(chan struct{})
	defer close(release)
	s := &Server{}
	addr := start(t, s, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		hijacked <- nc
		<-release // the handler still runs: a tunnel
	}))
	c := dial(t, addr)
	c.send(simpleGet)
	nc := <-hijacked
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with a hijacked connection open: %v", err)
	}
	// The handler's connection is still its own.
	if _, err := io.WriteString(nc, "still mine"); err != nil {
		t.Errorf("write on the hijacked connection after Shutdown: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s := &Server{}
	addr := start(t, s, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}))
	idle := dial(t, addr)
	idle.send(simpleGet)
	idle.response("GET")
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Error("Shutdown left an idle connection open")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("Shutdown left the listener open")
	}
	close(release)
	res, body := busy.response("GET")
	if body != "done" || !res.Close {
		t.Errorf("request in flight: %q, Connection: close %v; want done, true", body, res.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	addr := start(t, &Server{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	half := dial(t, addr)
	half.send("GET / HTTP/1.1\r\nHo")
	if !half.closed() {
		t.Error("a half-sent head kept its connection past ReadHeaderTimeout")
	}
	idle := dial(t, addr)
	idle.send(simpleGet)
	idle.response("GET")
	if !idle.closed() {
		t.Error("an idle connection outlived IdleTimeout")
	}
}

func TestRequestBodies(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/read" {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			seen = append(seen, string(b))
			mu.Unlock()
		}
		io.WriteString(w, "ok")
	}))

	// 100-continue: the body is asked for only when the handler reads.
	c := dial(t, addr)
	c.send("POST /read HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	if line, _ := c.br.ReadString('\n'); line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim: %q", line)
	}
	c.br.ReadString('\n')
	c.send("body")
	if _, body := c.response("POST"); body != "ok" {
		t.Fatalf("100-continue: %q", body)
	}
	// Not read by the handler: a small rest is read and dropped, the
	// connection stays; a rest over maxDiscard closes it.
	c.send("POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + simpleGet)
	c.response("POST")
	if res, _ := c.response("GET"); res.Close {
		t.Error("a small unread body closed the connection")
	}
	big := dial(t, addr)
	go big.send("POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + strings.Repeat("x", 1000000))
	if res, _ := big.response("POST"); !res.Close {
		t.Error("a large unread body kept the connection")
	}
	// Expect: 100-continue not asked for (the handler does not read):
	// answered, then closed.
	e := dial(t, addr)
	e.send("POST /ignore HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	if res, _ := e.response("POST"); !res.Close {
		t.Error("an unread 100-continue body kept the connection")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "body" {
		t.Errorf("bodies read: %q", seen)
	}
}

func TestBackgroundReadKeepsPipelinedByte(t *testing.T) {
	// A handler that asks for Done while the next request is on its way:
	// the byte the background read took is the next request's first.
	addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.Context().Done()
		time.Sleep(100 * time.Millisecond)
		io.WriteString(w, r.URL.Path)
	}))
	c := dial(t, addr)
	c.send("GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(30 * time.Millisecond)
	c.send("GET /two HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/one", "/two"} {
		if _, body := c.response("GET"); body != want {
			t.Errorf("got %q, want %q", body, want)
		}
	}
}

func BenchmarkServe(b *testing.B) {
	body := []byte(strings.Repeat("x", 1024))
	addr := start(b, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{"1024"}
		w.Header()["Content-Type"] = []string{"text/plain"}
		w.Write(body)
	}))
	c := dial(b, addr)
	c.nc.SetDeadline(time.Time{})
	req := []byte("GET /bytes/1024 HTTP/1.1\r\nHost: bench.ruche.test\r\nUser-Agent: wrk\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		c.nc.Write(req)
		res, err := http.ReadResponse(c.br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
	}
}

// testWriter sends the server's log to the test's.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestHandlerDeadlineDoesNotOutliveRequest(t *testing.T) {
	// No server timeouts: the wait for the next request sets no deadline
	// of its own, so it must lift the one the handler left.
	addr := start(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		}
		io.WriteString(w, "ok")
	}))
	c := dial(t, addr)
	c.send("GET /set HTTP/1.1\r\nHost: a\r\n\r\n")
	c.response("GET")
	time.Sleep(100 * time.Millisecond)
	c.send(simpleGet)
	if _, body := c.response("GET"); body != "ok" {
		t.Errorf("the request after a handler's deadline: %q", body)
	}
}
