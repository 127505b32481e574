package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// outcome is what one exchange with an upstream (or an error page) did.
type outcome struct {
	kind   errKind
	err    error
	status int   // status sent to the client; 499 if the client left first
	wrote  bool  // the upstream's response headers went to the client
	bytes  int64 // body bytes sent to the client
	up     *upstream
}

// maxBodyWriteWait is how long a connection whose response is complete
// waits for its request body writer to finish before it is given up
// (net/http's Transport waits as long).
const maxBodyWriteWait = 50 * time.Millisecond

// aLongTimeAgo is a deadline that has passed: setting it interrupts
// blocked reads and writes.
var aLongTimeAgo = time.Unix(1, 0)

// attempt sends r to u and relays the response to w.
func (p *Proxy) attempt(w http.ResponseWriter, r *http.Request, u *upstream, ri *reqInfo) outcome {
	ctx := r.Context()
	c, err := p.conn(ctx, u, ri.retryable)
	if err != nil {
		if ctx.Err() != nil {
			return outcome{kind: kindClient, err: err}
		}
		return outcome{kind: kindDial, err: err}
	}
	out, stale := p.exchange(w, r, u, c, ri)
	if stale {
		// A pooled connection the upstream had closed while idle: the
		// request was not processed; send it on a fresh one.
		if c, err = p.dial(ctx, u.addr); err != nil {
			return outcome{kind: kindDial, err: err}
		}
		out, _ = p.exchange(w, r, u, c, ri)
	}
	return out
}

// conn returns a pooled connection to u or a new one. A request that
// could not be resent gets a pooled connection only after a probe found
// it open.
func (p *Proxy) conn(ctx context.Context, u *upstream, retryable bool) (*conn, error) {
	now := time.Now().UnixNano()
	for {
		c := u.pool.get(now)
		if c == nil {
			break
		}
		if retryable || c.alive() {
			return c, nil
		}
		c.close()
	}
	return p.dial(ctx, u.addr)
}

func (p *Proxy) dial(ctx context.Context, addr string) (*conn, error) {
	c, err := dialUpstream(ctx, p.dialNet, addr)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errDial, addr, err)
	}
	return c, nil
}

// asyncBody writes a request body from its own goroutine. It starts the
// response header timeout once the body is sent, as the header timeout
// is about the upstream's answer, not the client's upload.
type asyncBody struct {
	done chan error
	mu   sync.Mutex
	head bool // the response head was read: leave the deadline alone
}

func (p *Proxy) startBody(c *conn, r *http.Request, length int64) *asyncBody {
	ab := &asyncBody{done: make(chan error, 1)}
	go func() {
		err := writeBody(c.bw, r.Body, length)
		if clientSide(err) {
			c.nc.Close() // do not let the upstream wait for the rest
		} else if err == nil {
			ab.mu.Lock()
			if !ab.head {
				c.nc.SetReadDeadline(time.Now().Add(p.cfg.UpstreamHeaderTimeout))
			}
			ab.mu.Unlock()
		}
		ab.done <- err
	}()
	return ab
}

func (ab *asyncBody) headRead() {
	ab.mu.Lock()
	ab.head = true
	ab.mu.Unlock()
}

// exchange sends r on c and relays the response, then pools or closes
// c. stale reports a pooled connection found closed before anything came
// back, for a request that may be resent.
func (p *Proxy) exchange(w http.ResponseWriter, r *http.Request, u *upstream, c *conn, ri *reqInfo) (outcome, bool) {
	ctx := r.Context()
	// The client leaving interrupts whatever waits on the upstream.
	stop := context.AfterFunc(ctx, c.abortFn)
	out, stale, reuse := p.roundTrip(w, r, c, ri)
	if !stop() {
		reuse, stale = false, false
		if out.kind != kindNone || !out.wrote {
			out.kind, out.err = kindClient, ctx.Err()
		}
	}
	if reuse {
		u.pool.put(c, time.Now().UnixNano())
	} else {
		c.close()
	}
	return out, stale
}

// roundTrip does the exchange; reuse reports c can serve another request.
func (p *Proxy) roundTrip(w http.ResponseWriter, r *http.Request, c *conn, ri *reqInfo) (out outcome, stale, reuse bool) {
	length := ri.bodyLen
	c.nc.SetDeadline(time.Now().Add(p.cfg.UpstreamHeaderTimeout))
	writeRequestHead(c.bw, r, ri, length, c.scratch[:])
	var ab *asyncBody
	switch {
	case length == 0:
		if err := c.bw.Flush(); err != nil {
			return outcome{kind: kindReset, err: fmt.Errorf("%w: %w", errResetBefore, err)}, c.reused && ri.retryable, false
		}
	case length > 0 && length <= syncBodyMax:
		if err := writeBody(c.bw, r.Body, length); err != nil {
			return bodyFailed(err), false, false
		}
	default:
		c.nc.SetDeadline(time.Time{})
		ab = p.startBody(c, r, length)
	}

	h := &c.head
	for {
		if err := readHead(c.br, h); err != nil {
			if ab != nil {
				c.close()
				if werr := <-ab.done; clientSide(werr) {
					return bodyFailed(werr), false, false
				}
			}
			kind := kindProtocol
			switch {
			case errors.Is(err, errResetBefore):
				kind = kindReset
			case errors.Is(err, errHeaderTimeout):
				kind = kindTimeout
			}
			return outcome{kind: kind, err: err}, kind == kindReset && c.reused && ri.retryable, false
		}
		if h.status >= 200 || h.status == http.StatusSwitchingProtocols {
			break
		}
		// 100 Continue, 103 Early Hints: not relayed.
	}
	if ab != nil {
		ab.headRead()
	}
	c.nc.SetDeadline(time.Time{})

	if h.status == http.StatusSwitchingProtocols {
		if !ri.upgrade || ab != nil {
			return outcome{kind: kindProtocol, err: fmt.Errorf("%w: 101 to a request without upgrade", errProtocol)}, false, false
		}
		return p.tunnel(w, c, h), false, false
	}

	body := h.hasBody(r.Method)
	if !body {
		h.noBody()
	}
	h.publish(w.Header())
	w.WriteHeader(h.status)
	out = outcome{status: h.status, wrote: true}
	if body {
		bc := bodyCopier{w: w, br: c.br}
		bc.flusher, _ = w.(http.Flusher)
		var err error
		switch {
		case h.chunked:
			err = bc.copyChunked(h)
		case h.untilClose:
			err = bc.copyUntilEOF()
		default:
			err = bc.copyN(h.contentLength)
		}
		out.bytes = bc.n
		if err != nil {
			if ab != nil {
				c.close()
				<-ab.done
			}
			out.kind, out.err = kindBody, err
			if clientSide(err) {
				out.kind = kindClient
			}
			return out, false, false
		}
	}
	reuse = !h.close && c.br.Buffered() == 0
	if ab != nil {
		t := time.NewTimer(maxBodyWriteWait)
		select {
		case err := <-ab.done:
			reuse = reuse && err == nil
		case <-t.C:
			// The upstream answered without reading the whole body.
			c.close()
			<-ab.done
			reuse = false
		}
		t.Stop()
	}
	return out, false, reuse
}

// bodyFailed is the outcome of a request body that could not be sent.
func bodyFailed(err error) outcome {
	switch {
	case errors.Is(err, errBodyTooLarge):
		return outcome{kind: kindTooLarge, err: err}
	case clientSide(err):
		return outcome{kind: kindClient, err: err}
	}
	return outcome{kind: kindReset, err: fmt.Errorf("%w: %w", errResetBefore, err)}
}
