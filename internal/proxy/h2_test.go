package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Request sends one HTTP/2 request made of the given header fields
// (pseudo-headers included, unchecked, as any client may send them) to a
// TLS listener, and returns the response's :status, or "RST" when the
// server resets the stream.
func h2Request(t *testing.T, addr string, ca *testCA, fields [][2]string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "app.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the response: %v", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				return f.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return "RST"
			}
		}
	}
}

// TestHTTP2RequestHead: Go's HTTP/2 server does not check :method and
// :authority the way its HTTP/1 server checks the request line and Host
// (only CR, LF and NUL are refused): a method with a space in it would
// be written into the upstream's request line as is.
func TestHTTP2RequestHead(t *testing.T) {
	ca := newTestCA(t, "app.test")
	heads := make(chan string, 10)
	tab := oneRoute("app.test", "", rawResponderSeeing(t, heads, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false))
	tab.Routes = append(tab.Routes, Route{Name: "p/any", Host: "*.app.test", Upstreams: tab.Routes[0].Upstreams})
	_, _, httpsAddr := tlsProxy(t, ca, tab)

	req := func(method, authority, path string) [][2]string {
		return [][2]string{{":method", method}, {":scheme", "https"}, {":authority", authority}, {":path", path}}
	}
	tests := []struct {
		name   string
		fields [][2]string
		want   string
	}{
		{"plain", req("GET", "app.test", "/"), "200"},
		{"extension method", req("PROPFIND", "app.test", "/"), "200"},
		{"space in method", req("GET /admin HTTP/1.1\tX", "app.test", "/public"), "400"},
		{"tab in method", req("GET\t/admin", "app.test", "/public"), "400"},
		{"separator in method", req("GET/", "app.test", "/"), "400"},
		{"space in authority", req("GET", "x y.app.test", "/"), "400"},
		{"quote in authority", req("GET", `x".app.test`, "/"), "400"},
		{"ip literal authority", req("GET", "[::1]:8443", "/"), "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h2Request(t, httpsAddr, ca, tt.fields); got != tt.want {
				t.Errorf("status: got %s, want %s", got, tt.want)
			}
			select {
			case head := <-heads:
				if tt.want != "200" {
					t.Errorf("the upstream got %q", head)
				}
			default:
				if tt.want == "200" {
					t.Error("the upstream got nothing")
				}
			}
		})
	}
}

// TestConnectIsRefused: CONNECT asks for a tunnel, which an ingress does
// not open. It used to be forwarded as "CONNECT / HTTP/1.1" (a request
// target CONNECT cannot have), and an upstream that answered it with a
// 2xx would turn a pooled connection into a tunnel (RFC 9112 section
// 6.3: a 2xx to CONNECT has no body, whatever its headers say).
func TestConnectIsRefused(t *testing.T) {
	ca := newTestCA(t, "app.test")
	heads := make(chan string, 10)
	tab := oneRoute("app.test", "", rawResponderSeeing(t, heads, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false))
	_, httpAddr, httpsAddr := tlsProxy(t, ca, tab)

	t.Run("http/1.1", func(t *testing.T) {
		resp := rawExchange(t, httpAddr, "CONNECT app.test:80 HTTP/1.1\r\nHost: app.test:80\r\nConnection: close\r\n\r\n")
		if got, want := statusOf(resp), "HTTP/1.1 501 Not Implemented"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("http/2", func(t *testing.T) {
		if got := h2Request(t, httpsAddr, ca, [][2]string{{":method", "CONNECT"}, {":authority", "app.test:443"}}); got != "501" {
			t.Errorf("status: got %s, want 501", got)
		}
	})
	select {
	case head := <-heads:
		t.Errorf("the upstream got %q", head)
	default:
	}
}
