package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/internal/proxy/h1"
)

// shutdownTimeout bounds the graceful end of Run: requests in flight get
// this long to finish once ctx ends.
const shutdownTimeout = 10 * time.Second

// Ready is closed once Run is listening (or has failed to).
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Addrs returns the addresses Run listens on (nil when not listening),
// valid once Ready is closed.
func (p *Proxy) Addrs() (httpAddr, httpsAddr net.Addr) { return p.addrs[0], p.addrs[1] }

// Run serves HTTPAddr and HTTPSAddr until ctx ends, then shuts down
// gracefully: listeners close, requests in flight get shutdownTimeout to
// finish, tunnels are closed. HTTPSAddr is served only with Deps.Certs.
// Run is called once.
func (p *Proxy) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	var lns [2]net.Listener
	closeAll := func() {
		for _, ln := range lns {
			if ln != nil {
				ln.Close()
			}
		}
	}
	var err error
	if p.cfg.HTTPAddr != "" {
		if lns[0], err = net.Listen("tcp", p.cfg.HTTPAddr); err != nil {
			close(p.ready)
			return fmt.Errorf("proxy: listen http: %w", err)
		}
	}
	if p.cfg.HTTPSAddr != "" {
		if p.certs == nil {
			p.log.Warn("no certificate source: HTTPS listener not started", "addr", p.cfg.HTTPSAddr)
		} else if lns[1], err = net.Listen("tcp", p.cfg.HTTPSAddr); err != nil {
			closeAll()
			close(p.ready)
			return fmt.Errorf("proxy: listen https: %w", err)
		}
	}
	if lns[0] == nil && lns[1] == nil {
		// An ingress switched off: nothing to serve, but Drain and Update
		// keep working for the agent.
		p.log.Info("no HTTP or HTTPS address: the ingress serves nothing on this node")
		close(p.ready)
		<-ctx.Done()
		return nil
	}
	if lns[1] != nil {
		_, port, _ := net.SplitHostPort(lns[1].Addr().String())
		p.httpsPort = port
	}
	for i, ln := range lns {
		if ln != nil {
			p.addrs[i] = ln.Addr()
		}
	}
	close(p.ready)

	var srvs []server
	errc := make(chan error, 3)
	newH1 := func() *h1.Server {
		// ruche's own lean HTTP/1.1 server (package h1), the same handler.
		return &h1.Server{
			Handler:           p,
			ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
			IdleTimeout:       p.cfg.IdleTimeout,
			MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
			ErrorLog:          p.log,
		}
	}
	if ln := lns[0]; ln != nil {
		srv := newH1()
		srvs = append(srvs, srv)
		p.log.Info("serving HTTP", "addr", ln.Addr().String())
		go func() { errc <- srv.Serve(ln) }()
	}
	if ln := lns[1]; ln != nil {
		// HTTPS: the front does the handshakes, h1 serves HTTP/1.1 and
		// net/http's server HTTP/2.
		front := &tlsFront{
			ln: ln,
			cfg: &tls.Config{
				GetCertificate: p.certs.GetCertificate,
				MinVersion:     tls.VersionTLS12,
				NextProtos:     []string{"h2", "http/1.1", acmeTLSALPN},
			},
			timeout: cmp.Or(p.cfg.ReadHeaderTimeout, defaultHandshakeTimeout),
			h1:      newH1(),
			h2:      newHandoff(ln.Addr()),
			log:     p.log,
		}
		h2 := &http.Server{
			Handler:           p,
			ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
			IdleTimeout:       p.cfg.IdleTimeout,
			MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
			// No TLSConfig: its connections come handshaken (and without
			// one, Serve sets up HTTP/2 for them).
		}
		var protos http.Protocols
		protos.SetHTTP1(true)
		protos.SetHTTP2(true)
		h2.Protocols = &protos
		srvs = append(srvs, front, front.h1, h2)
		p.log.Info("serving HTTPS", "addr", ln.Addr().String())
		go func() { errc <- h2.Serve(front.h2) }()
		go func() { errc <- front.serve() }()
	}

	var bg sync.WaitGroup
	bgCtx, stopBg := context.WithCancel(ctx)
	bg.Go(func() { p.housekeeping(bgCtx) })
	if p.cfg.HealthInterval > 0 {
		bg.Go(func() { p.healthLoop(bgCtx) })
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		if errors.Is(serveErr, http.ErrServerClosed) {
			serveErr = nil
		}
	}
	stopBg()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range srvs {
		wg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
		})
	}
	p.tunnels.closeAll()
	wg.Wait()
	bg.Wait()
	p.mu.Lock()
	for _, s := range p.states {
		s.pool.closeIdle(true)
	}
	p.mu.Unlock()
	if serveErr != nil {
		return fmt.Errorf("proxy: serve: %w", serveErr)
	}
	return nil
}

const acmeTLSALPN = "acme-tls/1"

// server is what Run needs of net/http's server and of h1's.
type server interface {
	Shutdown(context.Context) error
	Close() error
}

// housekeeping forgets idle rate-limit buckets and closes upstream
// connections idle for too long.
func (p *Proxy) housekeeping(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if p.limiter != nil {
				p.limiter.sweep(now)
			}
			cutoff := now.Add(-idleConnTimeout).UnixNano()
			p.mu.Lock()
			for _, s := range p.states {
				s.pool.reap(cutoff)
			}
			p.mu.Unlock()
		}
	}
}
