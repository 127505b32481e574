package proxy

import (
	"io"
	"net"
	"net/http"
	"sync"
)

// tunnelSet holds the connections of open tunnels (WebSocket and other
// upgrades), which http.Server.Shutdown does not know about.
type tunnelSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (t *tunnelSet) add(cs ...net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.conns == nil {
		t.conns = map[net.Conn]struct{}{}
	}
	for _, c := range cs {
		t.conns[c] = struct{}{}
	}
	return true
}

func (t *tunnelSet) remove(cs ...net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range cs {
		delete(t.conns, c)
	}
}

// closeAll closes every tunnel and refuses new ones.
func (t *tunnelSet) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.conns {
		c.Close()
	}
	t.conns = nil
}

// tunnel completes a protocol upgrade: it hands the client the
// upstream's 101 response, then copies bytes both ways until one side
// closes. The request stays in flight (for Drain) while the tunnel is
// open.
func (p *Proxy) tunnel(w http.ResponseWriter, c *conn, h *respHead) outcome {
	cc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return outcome{kind: kindProtocol, err: err}
	}
	defer cc.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	for i := range h.fields {
		f := &h.fields[i]
		brw.Write(h.keyBytes(f))
		brw.WriteString(": ")
		brw.Write(h.valueBytes(f))
		brw.WriteString("\r\n")
	}
	brw.WriteString("\r\n")
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		brw.Write(b)
	}
	out := outcome{status: http.StatusSwitchingProtocols, wrote: true}
	if err := brw.Flush(); err != nil {
		out.kind, out.err = kindClient, err
		return out
	}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		if _, err := c.nc.Write(b); err != nil {
			out.kind, out.err = kindBody, err
			return out
		}
	}
	if !p.tunnels.add(cc, c.nc) {
		return out // shutting down
	}
	defer p.tunnels.remove(cc, c.nc)

	type result struct {
		n   int64
		err error
	}
	down := make(chan result, 1)
	up := make(chan error, 1)
	go func() {
		n, err := io.Copy(cc, c.nc)
		down <- result{n, err}
	}()
	go func() {
		_, err := io.Copy(c.nc, cc)
		up <- err
	}()
	// When either side ends, the tunnel ends: close both so the other
	// copy returns.
	var d result
	select {
	case d = <-down:
		cc.Close()
		c.close()
		<-up
	case <-up:
		cc.Close()
		c.close()
		d = <-down
	}
	out.bytes = d.n
	return out
}
