package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// proxyClient runs p and returns a client that sends every request to
// it, whatever the URL's host.
func proxyClient(t *testing.T, p *Proxy) *http.Client {
	t.Helper()
	addr, _ := runProxy(t, p)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestUpstreamDiesMidResponse(t *testing.T) {
	tests := []struct {
		name   string
		length bool // Content-Length framing, else chunked
	}{
		{"content-length", true},
		{"chunked", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.length {
					w.Header().Set("Content-Length", "100000")
				}
				w.WriteHeader(200)
				w.Write(bytes.Repeat([]byte("x"), 5000))
				w.(http.Flusher).Flush()
				c, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					c.Close()
				}
			})
			p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0"})
			p.Update(oneRoute("app.test", "", addr))
			c := proxyClient(t, p)
			resp, err := c.Get("http://app.test/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil {
				t.Fatalf("body read without error (%d bytes): a truncated response looks complete", n)
			}
			if n < 5000 {
				t.Errorf("got %d bytes before the error, want the 5000 sent", n)
			}
			// The proxy still serves.
			p.Update(oneRoute("app.test", "", backend(t, named("ok"))))
			resp2, err := c.Get("http://app.test/")
			if err != nil {
				t.Fatal(err)
			}
			resp2.Body.Close()
			if resp2.StatusCode != 200 {
				t.Errorf("next request: %d", resp2.StatusCode)
			}
		})
	}
}

func TestChunkedTrailers(t *testing.T) {
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(200)
		io.WriteString(w, "part one,")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two")
		w.Header().Set("X-Checksum", "abc123")
	})
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0"})
	p.Update(oneRoute("app.test", "", addr))
	resp, err := proxyClient(t, p).Get("http://app.test/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "part one,part two" {
		t.Errorf("body: got %q", b)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "abc123" {
		t.Errorf("trailer: got %q, want abc123", got)
	}
}

func TestStreamingIsNotBuffered(t *testing.T) {
	release := make(chan struct{})
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: second\n\n")
	})
	defer close(release)
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0"})
	p.Update(oneRoute("app.test", "", addr))
	resp, err := proxyClient(t, p).Get("http://app.test/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first event arrives while the backend still holds the second.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("got %q, %v", line, err)
	}
}

func TestBodies(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write(big)
		case "/sum":
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			w.Header().Set("X-Length", strconv.FormatInt(n, 10))
			w.Write(h.Sum(nil))
		case "/nocontent":
			w.WriteHeader(204)
		case "/notmodified":
			w.Header().Set("Etag", `"v1"`)
			w.WriteHeader(304)
		case "/hints":
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(103)
			io.WriteString(w, "after hints")
		case "/continue":
			io.WriteString(w, "continued")
		default:
			io.WriteString(w, "hello")
		}
	})
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0"})
	p.Update(oneRoute("app.test", "", srv))
	c := proxyClient(t, p)
	sum := func(b []byte) string { s := sha256.Sum256(b); return string(s[:]) }

	tests := []struct {
		name, method, path string
		body               io.Reader
		length             int64
		wantStatus         int
		wantBody           string
	}{
		{"get", "GET", "/", nil, 0, 200, "hello"},
		{"head", "HEAD", "/", nil, 0, 200, ""},
		{"big response", "GET", "/big", nil, 0, 200, string(big)},
		{"small post", "POST", "/sum", strings.NewReader("abc"), 3, 200, sum([]byte("abc"))},
		{"big post", "POST", "/sum", bytes.NewReader(big), int64(len(big)), 200, sum(big)},
		{"chunked post", "POST", "/sum", io.MultiReader(bytes.NewReader(big)), -1, 200, sum(big)},
		{"empty post", "POST", "/sum", nil, 0, 200, sum(nil)},
		{"204", "GET", "/nocontent", nil, 0, 204, ""},
		{"304", "GET", "/notmodified", nil, 0, 304, ""},
		{"103 then 200", "GET", "/hints", nil, 0, 200, "after hints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://app.test"+tt.path, tt.body)
			if tt.body != nil {
				req.ContentLength = tt.length
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus || string(b) != tt.wantBody {
				t.Errorf("got %d and %d bytes, want %d and %d bytes", resp.StatusCode, len(b), tt.wantStatus, len(tt.wantBody))
			}
		})
	}
}

func TestKeepAliveToUpstream(t *testing.T) {
	var conns atomic.Int64
	srv := newCountingServer(t, &conns, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/nocontent" {
			w.WriteHeader(204)
			return
		}
		w.Write(b)
	})
	p := newTestProxy(t, Config{})
	p.Update(oneRoute("app.test", "", srv))
	for i := range 30 {
		method, path, body := "GET", "/", ""
		switch i % 3 {
		case 1:
			method, body = "POST", strings.Repeat("b", i*100)
		case 2:
			path = "/nocontent"
		}
		if w := do(p, method, "http://app.test"+path, body); w.Code >= 300 || w.Body.String() != body {
			t.Fatalf("request %d: got %d %q", i, w.Code, w.Body.String())
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the proxy opened %d connections to the backend, want 1 (keep-alive)", n)
	}
}

func TestExpectContinue(t *testing.T) {
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0"})
	p.Update(oneRoute("app.test", "", addr))
	proxyAddr, _ := runProxy(t, p)
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("got %q %v, want 100 Continue", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "hello" {
		t.Errorf("got %d %q", resp.StatusCode, b)
	}
}

// rawResponder answers every request on a connection with resp, then
// closes the connection if closeAfter.
func rawResponder(t *testing.T, resp string, closeAfter bool) string {
	t.Helper()
	return rawResponderSeeing(t, nil, resp, closeAfter)
}

// rawResponderSeeing is rawResponder that also sends each request head
// it reads (up to the empty line) to heads, unless heads is nil.
func rawResponderSeeing(t *testing.T, heads chan<- string, resp string, closeAfter bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					if heads != nil {
						heads <- head.String()
					}
					io.WriteString(c, resp)
					if closeAfter {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestUpstreamResponses(t *testing.T) {
	tests := []struct {
		name, resp string
		close      bool
		wantStatus int
		wantBody   string
		wantHeader map[string]string
	}{
		{"until close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", true, 200, "all of it", nil},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold", false, 200, "old", nil},
		{"lower-case names", "HTTP/1.1 201 Created\r\ncontent-length: 2\r\nx-custom-thing: v\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n\r\nok", false, 201, "ok",
			map[string]string{"X-Custom-Thing": "v", "Set-Cookie": "a=1 b=2"}},
		{"hop-by-hop dropped", "HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: p\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n", false, 200, "",
			map[string]string{"X-Private": "", "Keep-Alive": "", "Connection": ""}},
		{"chunk extensions", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\n", false, 200, "abc", nil},
		{"bad status line", "HTTP/1.1 2x0 OK\r\n\r\n", false, 502, "", nil},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", false, 502, "", nil},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nabc", false, 502, "", nil},
		{"folded header", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n", false, 502, "", nil},
		{"nul in a value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", false, 502, "", nil},
		{"not http", "SSH-2.0-OpenSSH_9.2\r\n\r\n", true, 502, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProxy(t, Config{})
			p.Update(oneRoute("app.test", "", rawResponder(t, tt.resp, tt.close)))
			w := do(p, "GET", "http://app.test/", "")
			if w.Code != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", w.Code, tt.wantStatus)
			}
			if tt.wantStatus < 500 && w.Body.String() != tt.wantBody {
				t.Errorf("body: got %q, want %q", w.Body.String(), tt.wantBody)
			}
			for k, want := range tt.wantHeader {
				if got := strings.Join(w.Header()[k], " "); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
		})
	}
}

// newCountingServer is backend that counts the connections it accepts.
func newCountingServer(t *testing.T, n *atomic.Int64, h http.HandlerFunc) string {
	t.Helper()
	srv := httptestServer(h)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
