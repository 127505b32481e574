package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawExchange sends raw bytes to addr and returns everything the server
// sends back until it closes the connection (bounded, so a broken proxy
// fails the test instead of hanging it).
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func statusOf(resp string) string {
	line, _, _ := strings.Cut(resp, "\r\n")
	return line
}

func TestRequestLimits(t *testing.T) {
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		io.WriteString(w, "read "+http.StatusText(200)+" "+strings.Repeat("x", int(n%2)))
	})
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0", MaxBodyBytes: 1000, MaxHeaderBytes: 4096})
	p.Update(oneRoute("app.test", "", addr))
	proxyAddr, _ := runProxy(t, p)

	chunked := func(n int) string {
		var b strings.Builder
		b.WriteString("POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
		for n > 0 {
			k := min(n, 300)
			b.WriteString(strings.ToUpper(strconvHex(k)) + "\r\n" + strings.Repeat("a", k) + "\r\n")
			n -= k
		}
		b.WriteString("0\r\n\r\n")
		return b.String()
	}
	tests := []struct {
		name, req, want string
	}{
		{"ok", "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK"},
		{"body at the limit", "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n" + strings.Repeat("a", 1000), "HTTP/1.1 200 OK"},
		{"body too large", "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1001\r\nConnection: close\r\n\r\n" + strings.Repeat("a", 1001), "HTTP/1.1 413 Request Entity Too Large"},
		{"chunked body at the limit", chunked(1000), "HTTP/1.1 200 OK"},
		{"chunked body too large", chunked(1001), "HTTP/1.1 413 Request Entity Too Large"},
		{"chunked body far too large", chunked(200000), "HTTP/1.1 413 Request Entity Too Large"},
		{"headers too large", "GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"malformed request line", "GET / HTTP/1.1 extra\r\nHost: app.test\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"malformed header", "GET / HTTP/1.1\r\nHost: app.test\r\nNo colon here\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"conflicting framing", "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400 Bad Request"},
		{"unknown host", "GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n", "HTTP/1.1 404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusOf(rawExchange(t, proxyAddr, tt.req)); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func strconvHex(n int) string {
	const digits = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n >>= 4 {
		b = append([]byte{digits[n&15]}, b...)
	}
	return string(b)
}

// TestSlowClients: a client that never finishes its headers, or stays
// idle, loses its connection.
func TestSlowClients(t *testing.T) {
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0", ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	p.Update(oneRoute("app.test", "", backend(t, named("web"))))
	addr, _ := runProxy(t, p)

	t.Run("slow headers", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ")
		// Keep trickling: the timeout is for the whole head.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := io.WriteString(c, "a"); err != nil {
						return
					}
				}
			}
		}()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection still open 20s later")
		}
		if strings.Contains(string(b), "200 OK") {
			t.Errorf("got a response: %q", b)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("idle connection: got %v, want EOF (closed by the proxy)", err)
		}
	})
}

// TestStalledRequestBody: a client that stops in the middle of its
// request body gets a 408 and its connection closed after BodyReadTimeout
// without a byte; a slow body that keeps coming, and an upstream slower
// than the timeout once the body is in, are not cut.
func TestStalledRequestBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var waiting atomic.Int32 // upstream handlers in progress
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		waiting.Add(1)
		defer waiting.Add(-1)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if r.URL.Path == "/slow-answer" {
			time.Sleep(3 * timeout)
		}
		w.Write(b)
	})
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0", BodyReadTimeout: timeout})
	p.Update(oneRoute("app.test", "", be))
	addr, _ := runProxy(t, p)
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c, bufio.NewReader(c)
	}

	t.Run("stalled", func(t *testing.T) {
		c, br := dial(t)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nabc")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response to a stalled body: %v", err)
		}
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("status %d %q, want 408", resp.StatusCode, rb)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("after the 408: got %v, want the connection closed", err)
		}
		// The upstream got nothing (a small body is sent whole or not
		// at all) or saw its connection close: none waits for the rest.
		waitFor(t, "no upstream handler waiting for the rest of the body", func() bool { return waiting.Load() == 0 })
	})
	t.Run("stalled large body", func(t *testing.T) {
		c, br := dial(t)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 200000\r\n\r\n")
		c.Write(make([]byte, 100000)) // sent to the upstream as it comes
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response to a stalled body: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("status %d, want 408", resp.StatusCode)
		}
		waitFor(t, "the upstream handler to see its connection closed", func() bool { return waiting.Load() == 0 })
	})
	for _, path := range []string{"/", "/slow-answer"} {
		t.Run("trickling to "+path, func(t *testing.T) {
			c, br := dial(t)
			io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: app.test\r\nContent-Length: 8\r\n\r\n")
			for _, b := range "trickled" { // 8 bytes over more than twice the timeout
				time.Sleep(timeout / 4)
				io.WriteString(c, string(b))
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(b) != "trickled" {
				t.Errorf("got %d %q, want 200 \"trickled\"", resp.StatusCode, b)
			}
		})
	}
}

// TestStalledRequestBodyHTTP2: the same over HTTP/2, where the read
// deadline is the stream's.
func TestStalledRequestBodyHTTP2(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ca := newTestCA(t, "app.test")
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	tab := oneRoute("app.test", "", be)
	tab.Routes[0].TLS = true
	_, _, httpsAddr := tlsProxyWith(t, ca, tab, Config{BodyReadTimeout: timeout})
	c := h2Client(t, ca, httpsAddr, 20*time.Second)
	pr, pw := io.Pipe()
	defer pw.Close()
	go io.WriteString(pw, "abc") // then nothing
	req, _ := http.NewRequest("POST", "https://app.test/", pr)
	req.ContentLength = 10
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("no response to a stalled body: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("got %s %d, want HTTP/2 408", resp.Proto, resp.StatusCode)
	}
}
