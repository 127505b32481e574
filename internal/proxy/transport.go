package proxy

import (
	"bufio"
	"context"
	"net"
	"sync"
	"syscall"
	"time"
)

// The upstream client is ruche's own HTTP/1.1 client: net/http's
// Transport costs about 40 allocations and two goroutine hand-offs per
// request, which alone would exceed the proxy's budget. See README.md.
const (
	dialTimeout = 2 * time.Second
	// maxIdlePerUpstream keep-alive connections are kept per upstream.
	maxIdlePerUpstream = 256
	// idleConnTimeout: a pooled connection unused this long is closed
	// (most servers close theirs after 60 to 120 s; Node's after 5 s,
	// which the liveness probe and the retry of stale connections cover).
	idleConnTimeout = 90 * time.Second
	readBufSize     = 16 << 10 // also the response body copy buffer
	writeBufSize    = 4 << 10
)

// conn is one keep-alive connection to an upstream, with its buffers: the
// read buffer doubles as the buffer response bodies are copied through,
// so no request needs a copy buffer of its own.
type conn struct {
	nc        net.Conn
	rc        syscall.RawConn // nil if the conn has none
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince int64 // unix ns
	reused    bool  // it served a request before this one

	head    respHead // scratch for the response head
	scratch [24]byte // number formatting

	abortFn func() // c.abort, bound once
	watch   watch  // of the request being served

	// liveness probe state, see alive.
	probeFn  func(fd uintptr) bool
	probeBuf [1]byte
	probeOK  bool
}

func (c *conn) close() { c.nc.Close() }

// abort interrupts any read or write blocked on c.
func (c *conn) abort() { c.nc.SetDeadline(aLongTimeAgo) }

// connPool holds the idle connections to one upstream address, most
// recently used first.
type connPool struct {
	addr   string
	mu     sync.Mutex
	idle   []*conn
	closed bool
}

// get returns an idle connection, or nil.
func (p *connPool) get(now int64) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if now-c.idleSince > int64(idleConnTimeout) {
			c.close()
			continue
		}
		c.reused = true
		return c
	}
	return nil
}

// put returns c to the pool after a complete exchange.
func (p *connPool) put(c *conn, now int64) {
	c.idleSince = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerUpstream {
		p.mu.Unlock()
		c.close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// closeIdle closes the idle connections; with final, connections put
// back later are closed too.
func (p *connPool) closeIdle(final bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if final {
		p.closed = true
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// reap closes connections idle since before cutoff (unix ns).
func (p *connPool) reap(cutoff int64) {
	p.mu.Lock()
	var old []*conn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if c.idleSince < cutoff {
			old = append(old, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, c := range old {
		c.close()
	}
}

// dialFunc opens a connection; net.Dialer.DialContext, or an in-memory
// network in tests.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func dialUpstream(ctx context.Context, dial dialFunc, addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newConn(nc), nil
}

func newConn(nc net.Conn) *conn {
	c := &conn{
		nc: nc,
		br: bufio.NewReaderSize(nc, readBufSize),
		bw: bufio.NewWriterSize(nc, writeBufSize),
	}
	c.abortFn = c.abort
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.probeFn = c.probe
		}
	}
	return c
}

// alive reports whether a pooled connection still looks open: a
// non-blocking read finds neither EOF nor unexpected data. Used before
// sending a request that could not be retried if the upstream had closed
// the connection while it was idle.
func (c *conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false // bytes nobody asked for
	}
	if c.rc == nil {
		return true
	}
	// A pooled connection may keep the passed deadline of its last
	// response, which would fail the probe.
	c.nc.SetReadDeadline(time.Time{})
	c.probeOK = false
	if err := c.rc.Read(c.probeFn); err != nil {
		return false
	}
	return c.probeOK
}

// reopen lets a pool closed by closeIdle(true) keep connections again
// (its upstream came back into the table).
func (p *connPool) reopen() {
	p.mu.Lock()
	p.closed = false
	p.mu.Unlock()
}
