package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ruche-platform/ruche/internal/proxy/h1"
)

// tlsFront accepts the HTTPS listener's connections and does their TLS
// handshakes, then hands each to the server of the protocol it chose:
// HTTP/1.1 to h1 (as the plain listener), h2 to net/http's HTTP/2 server
// (through a listener of handed-over connections), and an ACME
// TLS-ALPN-01 validation, which only needs the handshake, to nobody.
type tlsFront struct {
	ln      net.Listener
	cfg     *tls.Config
	timeout time.Duration // of a handshake
	h1      *h1.Server
	h2      *handoff
	log     *slog.Logger
	closing atomic.Bool
}

// defaultHandshakeTimeout bounds a handshake when the proxy has no
// ReadHeaderTimeout.
const defaultHandshakeTimeout = 10 * time.Second

// serve accepts until the listener closes; it returns
// http.ErrServerClosed after Shutdown or Close.
func (f *tlsFront) serve() error {
	return h1.AcceptLoop(f.ln, f.closing.Load, f.log, func(nc net.Conn) { go f.handshake(nc) })
}

func (f *tlsFront) handshake(nc net.Conn) {
	tc := tls.Server(nc, f.cfg)
	tc.SetDeadline(time.Now().Add(f.timeout))
	if err := tc.Handshake(); err != nil {
		f.log.Debug("TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		nc.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	switch tc.ConnectionState().NegotiatedProtocol {
	case "h2":
		f.h2.deliver(tc)
	case acmeTLSALPN:
		tc.Close()
	default:
		f.h1.ServeConn(tc)
	}
}

// Shutdown and Close stop accepting; the servers behind shut down on
// their own.
func (f *tlsFront) Shutdown(context.Context) error { return f.Close() }

func (f *tlsFront) Close() error {
	f.closing.Store(true)
	return f.ln.Close()
}

// handoff is a net.Listener whose connections are handed over by the
// front, for net/http's server.
type handoff struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }

// deliver hands c over, or closes it once the listener is closed.
func (h *handoff) deliver(c net.Conn) {
	select {
	case h.ch <- c:
	case <-h.done:
		c.Close()
	}
}
