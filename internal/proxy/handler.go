package proxy

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Retry bounds. A request causes at most maxAttempts exchanges that
// reached an upstream (the first and two retries). Dial errors cost the
// upstream nothing and eject it, so they are retried on the others up to
// maxDials times, within the hold deadline.
const (
	maxAttempts = 3
	maxDials    = 8
)

// ServeHTTP routes and forwards one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var ri reqInfo
	ri.peer, ri.client, ri.trusted = p.clientAddrs(r)
	ri.https = r.TLS != nil
	e := logEntry{start: start}
	rt, out, retries := p.serve(w, r, &ri, start)

	d := time.Since(start)
	status := out.status
	if rt != nil {
		rt.m.request(status, d.Seconds())
	}
	if out.kind != kindNone && out.kind != kindTooLarge && out.kind != kindClient {
		p.log.Debug("upstream failed", "host", r.Host, "path", r.URL.Path, "kind", kindNames[out.kind], "err", out.err)
	}
	if p.access != nil {
		e.duration = d
		e.client = ri.client
		e.method = r.Method
		e.host = r.Host
		e.path = r.URL.Path
		e.proto = r.Proto
		e.status = status
		e.bytes = out.bytes
		e.retries = retries
		e.err = kindNames[out.kind]
		if rt != nil {
			e.route = rt.name
		}
		if out.up != nil {
			e.upstream = out.up.id
		}
		p.access.write(&e)
	}
	if out.kind == kindBody && out.wrote {
		// The upstream died mid-response: abort the response so the
		// client sees a truncated body, never a complete-looking one
		// (net/http closes the connection, or resets the HTTP/2 stream).
		panic(http.ErrAbortHandler)
	}
}

// serve does the work of ServeHTTP and says what happened.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, ri *reqInfo, start time.Time) (*route, outcome, int) {
	if !validHead(r) {
		return nil, p.fail(w, http.StatusBadRequest), 0
	}
	if r.Method == http.MethodConnect {
		// A tunnel to r.Host: not what an ingress does (see README).
		return nil, p.fail(w, http.StatusNotImplemented), 0
	}
	if hasDotSegment(r.URL.Path) {
		return nil, p.fail(w, http.StatusBadRequest), 0
	}
	if r.TLS == nil && p.certs != nil && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
		if p.certs.HandleHTTPChallenge(w, r) {
			return nil, outcome{status: http.StatusOK}, 0
		}
	}
	if p.limiter != nil {
		if ok, wait := p.limiter.allow(ri.client, start); !ok {
			p.m.limited.Inc()
			secs := max(1, int((wait+time.Second-1)/time.Second))
			w.Header()["Retry-After"] = []string{strconv.Itoa(secs)}
			return nil, p.fail(w, http.StatusTooManyRequests), 0
		}
	}
	rt := p.table.Load().lookup(r.Host, r.URL.Path)
	if rt == nil {
		p.m.unrouted.Inc()
		return nil, p.fail(w, http.StatusNotFound), 0
	}
	if rt.tls && r.TLS == nil && p.httpsEnabled() && !viaTrustedHTTPS(r, ri) {
		p.redirect(w, r)
		return rt, outcome{status: http.StatusPermanentRedirect}, 0
	}
	if p.cfg.MaxBodyBytes > 0 {
		if r.ContentLength > p.cfg.MaxBodyBytes {
			return rt, p.fail(w, http.StatusRequestEntityTooLarge), 0
		}
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			r.Body = &limitedBody{r: r.Body, max: p.cfg.MaxBodyBytes}
		}
	}
	ri.bodyLen = r.ContentLength
	if r.Body == nil || r.Body == http.NoBody {
		ri.bodyLen = 0
	}
	ri.retryable = ri.bodyLen == 0 && idempotent(r.Method)
	ri.upgrade = r.ProtoMajor == 1 && len(r.Header["Upgrade"]) > 0 && r.Header["Upgrade"][0] != "" &&
		hasToken(r.Header["Connection"], "upgrade")
	if ri.bodyLen != 0 && !ri.upgrade {
		ri.stall = &stallBody{r: r.Body, rc: http.NewResponseController(w), timeout: p.cfg.BodyReadTimeout}
		r.Body = ri.stall
	}

	rt.m.inflight.Inc()
	defer rt.m.inflight.Dec()
	return p.forward(w, r, ri, rt, start)
}

// viaTrustedHTTPS reports whether a trusted proxy in front received r
// over HTTPS (then redirecting it to HTTPS would loop).
func viaTrustedHTTPS(r *http.Request, ri *reqInfo) bool {
	v := r.Header["X-Forwarded-Proto"]
	return ri.trusted && len(v) > 0 && strings.EqualFold(strings.TrimSpace(v[0]), "https")
}

// forward runs the attempt loop: pick an upstream, exchange, and retry
// what may be retried; hold while no upstream is available. It returns
// the route, the outcome and the number of retries.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, ri *reqInfo, rt *route, start time.Time) (*route, outcome, int) {
	holdUntil := start.Add(p.cfg.HoldTimeout)
	var tr tried
	attempts, dials := 0, 0
	var last outcome
	for {
		now := time.Now()
		u := pick(rt.ups, now.UnixNano(), &tr, p.randN)
		if u == nil {
			next, gone := p.hold(r, holdUntil)
			if gone {
				last.kind, last.status = kindClient, statusClientClosed
				return rt, last, max(0, attempts+dials-1)
			}
			if next == nil {
				out := p.unavailable(w)
				out.up = last.up
				return rt, out, max(0, attempts+dials-1)
			}
			rt = next
			continue
		}
		if !p.acquire(u) {
			// The table changed between the load and the pick: pick
			// again from the new one (once it is installed).
			runtime.Gosched()
			if next := p.table.Load().lookup(r.Host, r.URL.Path); next != nil {
				rt = next
			} else {
				rt = &route{name: rt.name, prefix: rt.prefix, tls: rt.tls, m: rt.m}
			}
			continue
		}
		ri.now = now.UnixNano()
		out := p.attempt(w, r, u, ri)
		u.release()
		out.up = u
		last = out
		if out.kind == kindDial {
			dials++
		} else {
			attempts++
		}
		retries := attempts + dials - 1
		retry := p.judge(rt, u, &out, ri)
		if out.kind == kindDial {
			retry = retry && dials < maxDials && time.Now().Before(holdUntil)
		} else {
			retry = retry && attempts < maxAttempts
		}
		if !retry || r.Context().Err() != nil {
			if !out.wrote && out.kind != kindNone {
				return rt, p.failAfter(w, r, out), retries
			}
			return rt, out, retries
		}
		tr.add(u)
	}
}

// acquire counts a request in flight to u, unless u has left the table
// meanwhile: then Drain may have seen it idle already.
func (p *Proxy) acquire(u *upstream) bool {
	u.inflight.Add(1)
	if u.removed.Load() {
		u.release()
		return false
	}
	return true
}

// judge updates u's passive health from an attempt's outcome, counts
// upstream errors, and reports whether the request may be retried.
func (p *Proxy) judge(rt *route, u *upstream, out *outcome, ri *reqInfo) bool {
	switch out.kind {
	case kindNone:
		if out.status >= 500 {
			if u.failed() {
				p.ejectIfSpare(rt, u, time.Now(), false)
			}
		} else {
			u.succeeded()
		}
		return false
	case kindDial:
		rt.m.upstreamError(kindDial)
		u.eject(time.Now(), true)
		rt.m.ejections.Inc()
		p.log.Info("upstream ejected: cannot connect", "route", rt.name, "upstream", u.id, "addr", u.addr, "err", out.err)
		return true
	case kindReset, kindTimeout, kindProtocol, kindBody:
		rt.m.upstreamError(out.kind)
		if u.failed() {
			p.ejectIfSpare(rt, u, time.Now(), false)
		}
		return out.kind == kindReset && ri.retryable && !out.wrote
	}
	return false
}

// ejectIfSpare ejects u after repeated failures, unless no other
// upstream of the route is available: a service answering errors still
// answers better than a 503.
func (p *Proxy) ejectIfSpare(rt *route, u *upstream, now time.Time, dial bool) {
	n := now.UnixNano()
	for _, o := range rt.ups {
		if o != u && o.available(n) {
			u.eject(now, dial)
			rt.m.ejections.Inc()
			p.log.Info("upstream ejected: repeated failures", "route", rt.name, "upstream", u.id, "addr", u.addr)
			return
		}
	}
	u.fails.Store(0)
}

// hold waits until the route of r has an available upstream (then
// returns it), until, or until the client leaves (gone).
func (p *Proxy) hold(r *http.Request, until time.Time) (rt *route, gone bool) {
	for {
		ch := p.wait()
		now := time.Now()
		n := now.UnixNano()
		var next int64
		if rt := p.table.Load().lookup(r.Host, r.URL.Path); rt != nil {
			if canPick(rt.ups, n) {
				return rt, false
			}
			next = nextExpiry(rt.ups, n)
		}
		d := until.Sub(now)
		if d <= 0 {
			return nil, false
		}
		if next > 0 && time.Duration(next-n) < d {
			d = time.Duration(next - n)
		}
		t := time.NewTimer(d)
		select {
		case <-ch:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return nil, true
		}
		t.Stop()
	}
}
