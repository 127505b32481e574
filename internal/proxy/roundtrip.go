package proxy

import (
	"bufio"
	"bytes"
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
	c, err := p.conn(ctx, u, ri.retryable, ri.now)
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
func (p *Proxy) conn(ctx context.Context, u *upstream, retryable bool, now int64) (*conn, error) {
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

func (p *Proxy) startBody(c *conn, r *http.Request, length int64, stall *stallBody) *asyncBody {
	ab := &asyncBody{done: make(chan error, 1)}
	go func() {
		err := writeBody(c.bw, r.Body, length)
		if clientSide(err) {
			c.nc.Close() // do not let the upstream wait for the rest
		} else if err == nil {
			stall.finish()
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

// watchAfter: an exchange starts watching for the client leaving (which
// costs allocations) only once it has waited this long for the upstream's
// response head, or when it has to wait for more of a response body.
const watchAfter = time.Second

// watch makes the client leaving interrupt the exchange on c: an
// expired deadline ends any read or write blocked on it. It lives in the
// connection, so arming it costs no more than context.AfterFunc.
type watch struct {
	ctx  context.Context
	stop func() bool
}

func (c *conn) arm() {
	if c.watch.stop == nil && c.watch.ctx != nil {
		c.watch.stop = context.AfterFunc(c.watch.ctx, c.abortFn)
	}
}

// disarm stops watching and reports whether the client left (then the
// connection has an expired deadline and cannot be reused).
func (c *conn) disarm() bool {
	fired := c.watch.stop != nil && !c.watch.stop()
	c.watch = watch{}
	return fired
}

// exchange sends r on c and relays the response, then pools or closes
// c. stale reports a pooled connection found closed before anything came
// back, for a request that may be resent.
func (p *Proxy) exchange(w http.ResponseWriter, r *http.Request, u *upstream, c *conn, ri *reqInfo) (outcome, bool) {
	c.watch.ctx = r.Context()
	out, stale, reuse := p.roundTrip(w, r, c, ri)
	if c.disarm() {
		reuse, stale = false, false
		// net/http cancels the request when a body read fails, a
		// stalled body included: that one keeps its error (a 408).
		if (out.kind != kindNone || !out.wrote) && !errors.Is(out.err, errBodyStalled) {
			out.kind, out.err = kindClient, r.Context().Err()
		}
	}
	if reuse {
		u.pool.put(c, ri.now)
	} else {
		c.close()
	}
	return out, stale
}

// waitHead waits for the first byte of the response head within the
// header timeout, quietly for watchAfter, then watching the client. It
// returns the end of the header timeout.
func (p *Proxy) waitHead(c *conn) (deadline time.Time, err error) {
	now := time.Now()
	deadline = now.Add(p.cfg.UpstreamHeaderTimeout)
	quick := now.Add(min(watchAfter, p.cfg.UpstreamHeaderTimeout))
	c.nc.SetReadDeadline(quick)
	_, err = c.br.Peek(1)
	if err != nil && isTimeout(err) && quick.Before(deadline) {
		c.arm()
		c.nc.SetReadDeadline(deadline)
		_, err = c.br.Peek(1)
	}
	switch {
	case err == nil:
		if !headBuffered(c.br) {
			c.nc.SetReadDeadline(deadline) // the rest of the head may take a while
		}
		return deadline, nil
	case isTimeout(err):
		return deadline, fmt.Errorf("%w: %w", errHeaderTimeout, err)
	}
	return deadline, fmt.Errorf("%w: %w", errResetBefore, err)
}

// headBuffered reports whether a whole response head is in br's buffer.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, crlf2) || bytes.Contains(b, lf2)
}

var crlf2, lf2 = []byte("\r\n\r\n"), []byte("\n\n")

// roundTrip does the exchange; reuse reports c can serve another request.
func (p *Proxy) roundTrip(w http.ResponseWriter, r *http.Request, c *conn, ri *reqInfo) (out outcome, stale, reuse bool) {
	// No write deadline: a request head and a body up to syncBodyMax
	// fit in the socket buffers; the client leaving or the header
	// timeout that follows end a stuck exchange.
	length := ri.bodyLen
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
		ri.stall.finish()
	default:
		// The header timeout starts once the body is sent (startBody).
		c.nc.SetReadDeadline(time.Time{})
		c.arm()
		ab = p.startBody(c, r, length, ri.stall)
	}

	h := &c.head
	var deadline time.Time // of the header timeout; zero with ab
	for first := true; ; first = false {
		var err error
		if first && ab == nil {
			deadline, err = p.waitHead(c)
		}
		if err == nil {
			err = readHead(c.br, h)
		}
		if err != nil {
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
		// 100 Continue, 103 Early Hints: not relayed. The final head may
		// take the rest of the header timeout, not a new one: an
		// upstream sending 1xx responses forever would hold the request
		// forever. (With ab, startBody set the deadline.)
		if ab == nil {
			c.arm()
			c.nc.SetReadDeadline(deadline)
		}
	}
	if ab != nil {
		ab.headRead()
	}

	if h.status == http.StatusSwitchingProtocols {
		if !ri.upgrade || ab != nil {
			return outcome{kind: kindProtocol, err: fmt.Errorf("%w: 101 to a request without upgrade", errProtocol)}, false, false
		}
		c.nc.SetReadDeadline(time.Time{})
		return p.tunnel(w, c, h), false, false
	}

	body := h.hasBody(r.Method)
	if !body {
		h.noBody()
	}
	if body && (h.chunked || h.untilClose || int64(c.br.Buffered()) < h.contentLength) {
		// More to read, for as long as it takes. (Otherwise the
		// connection keeps its passed deadline until its next use sets
		// another: one timer operation less per request.)
		c.nc.SetReadDeadline(time.Time{})
	}
	h.publish(w.Header())
	w.WriteHeader(h.status)
	out = outcome{status: h.status, wrote: true}
	if body {
		bc := bodyCopier{w: w, br: c.br, c: c}
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
