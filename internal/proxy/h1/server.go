// Package h1 is a lean HTTP/1.1 server for the ingress proxy's plain
// listener.
//
// net/http's server costs the proxy about a fifth of its CPU per request
// (measured: internal/proxy/README.md), most of it in what it does
// around every request: a cancellable context, a goroutine reading the
// connection in the background while the handler runs, and the timers
// that go with them. This server parses requests with net/http's own
// parser (http.ReadRequest) and serves an http.Handler, so the proxy's
// handler is the same behind both servers; what it saves is that
// per-request machinery: a request's context starts watching the client
// only when a handler asks for it (Done or context.AfterFunc), which the
// proxy does only for a request that waits.
//
// What it does as net/http's server does: the version check, the Host
// rules, header name and value validation, MaxHeaderBytes (431),
// ReadHeaderTimeout and IdleTimeout, Expect: 100-continue (417 for any
// other expectation), HTTP/1.0 keep-alive, Connection: close, HEAD,
// bodiless statuses, Content-Length for a handler that finishes within
// its first 2 KiB and chunked encoding otherwise, trailers (through
// http.TrailerPrefix), an unread request body discarded up to 256 KiB,
// http.Flusher, http.Hijacker, read and write deadlines through
// http.ResponseController, http.ErrAbortHandler, graceful Shutdown.
//
// What it does not do: HTTP/2 (h2c included), TLS handshakes (a caller
// that wants HTTP/1.1 over TLS hands over *tls.Conn connections after
// the handshake, with ServeConn; their requests get the connection's
// TLS state), Content-Type sniffing (a proxy forwards what the upstream
// sent), and net/http's ConnState and ConnContext hooks.
package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.x requests to Handler. Set its fields before
// Serve; do not change them after.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds the reading of a request head, from the
	// connection's start or the request's first byte; 0: no bound.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept
	// connection; 0: ReadHeaderTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head (431 beyond);
	// 0: http.DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// ErrorLog receives handler panics and accept errors; nil:
	// slog.Default().
	ErrorLog *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   atomic.Bool
}

// Connection states.
const (
	stateIdle     int32 = iota // waiting for a request's first byte
	stateActive                // reading a head, running a handler, writing
	stateClosed                // closed by Shutdown or Close
	stateHijacked              // the handler owns it
)

// Serve accepts connections on ln and serves each in its own goroutine
// until Shutdown or Close, which make it return http.ErrServerClosed.
// Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln) {
		ln.Close()
		return http.ErrServerClosed
	}
	defer s.untrack(ln)
	return AcceptLoop(ln, s.closing.Load, s.log(), s.ServeConn)
}

// AcceptLoop accepts connections on ln and hands each to serve, until ln
// fails for good: it returns http.ErrServerClosed once closed reports
// true, and the error of a listener closed otherwise. Other accept
// errors (out of file descriptors and the like) are logged and waited
// out, with a backoff up to a second.
func AcceptLoop(ln net.Listener, closed func() bool, log *slog.Logger, serve func(net.Conn)) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if closed() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("accept failed, retrying", "err", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		serve(nc)
	}
}

// ServeConn serves nc in a goroutine of its own, as Serve does an
// accepted connection; nc may be a TLS connection whose handshake chose
// HTTP/1.1. During Shutdown it closes nc at once.
func (s *Server) ServeConn(nc net.Conn) {
	c := newConn(s, nc)
	if !s.add(c) {
		nc.Close()
		return
	}
	go c.serve()
}

// Shutdown stops accepting, closes idle connections, and waits until
// every other one has finished its request and closed, or ctx ends
// (then it returns ctx's error; Close ends the rest). Hijacked
// connections are the handler's, as with net/http.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.closeListeners()
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		if s.closeIdle() {
			return nil
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.Swap(stateClosed) != stateHijacked {
			c.nc.Close()
		}
		delete(s.conns, c)
	}
	return nil
}

func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
	ln.Close()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		ln.Close()
	}
}

func (s *Server) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// closeIdle closes the idle connections and reports whether none is
// left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
			delete(s.conns, c)
		}
	}
	return len(s.conns) == 0
}

func (s *Server) log() *slog.Logger {
	if s.ErrorLog != nil {
		return s.ErrorLog
	}
	return slog.Default()
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return s.ReadHeaderTimeout
}
