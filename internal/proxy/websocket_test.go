package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsEcho is a WebSocket echo backend.
func wsEcho(t *testing.T, opened chan<- struct{}) string {
	up := websocket.Upgrader{}
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, http.Header{"X-Backend": {"echo"}})
		if err != nil {
			return
		}
		defer c.Close()
		if opened != nil {
			opened <- struct{}{}
		}
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
}

func TestWebSocketEcho(t *testing.T) {
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0"})
	p.Update(oneRoute("chat.test", "", wsEcho(t, nil)))
	addr, _ := runProxy(t, p)

	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
	c, resp, err := d.Dial("ws://"+addr+"/socket", http.Header{"Host": {"chat.test"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if resp.StatusCode != 101 || resp.Header.Get("X-Backend") != "echo" {
		t.Errorf("handshake: got %d, X-Backend %q", resp.StatusCode, resp.Header.Get("X-Backend"))
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for _, msg := range []string{"hello", strings.Repeat("big ", 20000), "bye"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Fatalf("got %d bytes, want %d", len(got), len("echo: "+msg))
		}
	}
	// Open WebSockets count as requests in flight.
	if n := p.table.Load().byID["t0"][0].inflight.Load(); n != 1 {
		t.Errorf("in flight while open: got %d, want 1", n)
	}
}

func TestDrainWaitsForWebSocket(t *testing.T) {
	opened := make(chan struct{}, 1)
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0"})
	p.Update(oneRoute("chat.test", "", wsEcho(t, opened)))
	addr, _ := runProxy(t, p)
	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
	c, _, err := d.Dial("ws://"+addr+"/", http.Header{"Host": {"chat.test"}})
	if err != nil {
		t.Fatal(err)
	}
	<-opened
	p.Update(oneRoute("chat.test", ""))
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(context.Background(), "t0") }()
	// Still open: the socket works and Drain waits.
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	c.WriteMessage(websocket.TextMessage, []byte("still here"))
	if _, got, err := c.ReadMessage(); err != nil || string(got) != "echo: still here" {
		t.Fatalf("after removal: got %q, %v", got, err)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a WebSocket is open", err)
	default:
	}
	c.Close()
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("Drain: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Drain still waiting 20s after the WebSocket closed")
	}
}

// TestUpgradeWithEarlyBytes: bytes the client sends right behind its
// upgrade request, and bytes the upstream sends right behind its 101,
// are not lost in either side's buffers.
func TestUpgradeWithEarlyBytes(t *testing.T) {
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "no upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nwelcome;")
		brw.Flush()
		io.Copy(c, brw) // echo, starting with what is buffered
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
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly;")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" {
		t.Fatalf("got %d, Upgrade %q", resp.StatusCode, resp.Header.Get("Upgrade"))
	}
	io.WriteString(c, "late;")
	want := "welcome;early;late;"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("got %q, %v, want %q", got, err, want)
	}
}
