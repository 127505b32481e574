package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func dialWS(t *testing.T, url string, h http.Header) (*websocket.Conn, *http.Response) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(url, "http")+"/ws", h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return c, resp
}

func TestWebSocketEcho(t *testing.T) {
	t.Setenv("RUCHE_SERVICE", "web")
	t.Setenv("RUCHE_REPLICA", "2")
	t.Setenv("HELLO_VERSION", "v3")
	mux := http.NewServeMux()
	mux.Handle("GET /ws", newSockets())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, resp := dialWS(t, srv.URL, http.Header{"X-Forwarded-For": {"192.0.2.7"}})
	for _, h := range []struct{ key, want string }{
		{"X-Hello-Replica", "web.2"}, {"X-Hello-Version", "v3"}, {"X-Hello-Forwarded-For", "192.0.2.7"},
	} {
		if got := resp.Header.Get(h.key); got != h.want {
			t.Errorf("%s: got %q, want %q", h.key, got, h.want)
		}
	}
	tests := []struct {
		name string
		typ  int
		msg  []byte
	}{
		{"text", websocket.TextMessage, []byte("hello")},
		{"binary", websocket.BinaryMessage, []byte{0, 1, 2, 0xff, 0xfe}},
		{"1 MiB", websocket.BinaryMessage, bytes.Repeat([]byte{0xa5}, 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.WriteMessage(tt.typ, tt.msg); err != nil {
				t.Fatal(err)
			}
			typ, got, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if typ != tt.typ || !bytes.Equal(got, tt.msg) {
				t.Errorf("got type %d, %d bytes; want type %d, %d bytes", typ, len(got), tt.typ, len(tt.msg))
			}
		})
	}
}

// TestWebSocketShutdown: shutdown sends every open socket a close 1001
// and returns once the client answered it; a socket opened afterwards is
// closed at once.
func TestWebSocketShutdown(t *testing.T) {
	s := newSockets()
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, _ := dialWS(t, srv.URL, nil)
	// One echo so the socket is surely registered.
	c.WriteMessage(websocket.TextMessage, []byte("x"))
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		s.shutdown(context.Background())
		close(done)
	}()
	_, _, err := c.ReadMessage() // gorilla answers the close, then reports it
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("got %v, want a close %d", err, websocket.CloseGoingAway)
	}
	<-done

	c2, _ := dialWS(t, srv.URL, nil)
	_, _, err = c2.ReadMessage()
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("socket opened after shutdown: got %v, want a close %d", err, websocket.CloseGoingAway)
	}
}
