package main

import (
	"context"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// maxMessage bounds one WebSocket message (tests send 1 MiB).
const maxMessage = 4 << 20

// sockets is the WebSocket echo endpoint (GET /ws): every message comes
// back as it came (text or binary). The 101 response says who answered
// (X-Hello-Replica, X-Hello-Version) and which X-Forwarded-For reached it
// (X-Hello-Forwarded-For). On shutdown every open socket gets a close
// 1001 (going away) and the program waits for the closing handshakes.
type sockets struct {
	up    websocket.Upgrader
	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
	down  bool
	wg    sync.WaitGroup
}

func newSockets() *sockets {
	return &sockets{conns: map[*websocket.Conn]struct{}{}}
}

func (s *sockets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := http.Header{}
	h.Set("X-Hello-Replica", os.Getenv("RUCHE_SERVICE")+"."+os.Getenv("RUCHE_REPLICA"))
	h.Set("X-Hello-Version", os.Getenv("HELLO_VERSION"))
	h.Set("X-Hello-Forwarded-For", r.Header.Get("X-Forwarded-For"))
	c, err := s.up.Upgrade(w, r, h)
	if err != nil {
		return // the upgrader answered with an error status
	}
	defer c.Close()
	if !s.add(c) {
		c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutting down"),
			time.Now().Add(time.Second))
		return
	}
	defer s.remove(c)
	c.SetReadLimit(maxMessage)
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return // a close (answered by gorilla's close handler) or a broken connection
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

func (s *sockets) add(c *websocket.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *sockets) remove(c *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.wg.Done()
}

// goingAway sends every open socket a close 1001 and refuses new ones;
// each socket ends when the client answers the close (or its
// connection breaks).
func (s *sockets) goingAway() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = true
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
	for c := range s.conns {
		c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	}
}

// shutdown is goingAway, then a wait until every socket ended or ctx
// ends (then they are cut).
func (s *sockets) shutdown(ctx context.Context) {
	s.goingAway()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.NetConn().Close()
		}
		s.mu.Unlock()
	}
}
