package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Passive ejection.
const (
	// maxFails consecutive failures (5xx, resets, header timeouts) eject
	// an upstream, unless it is the last one its route can use.
	maxFails = 5
	// An ejected upstream is skipped for ejectBase, doubled at each
	// consecutive ejection up to ejectMax. A dial error ejects at once.
	ejectBase = 2 * time.Second
	ejectMax  = time.Minute
)

// upstream is the state of one replica address, shared by every table
// (and route) that names it, so in-flight counts and ejections survive
// table updates.
type upstream struct {
	id, addr string
	// checkHost is the Host header of HTTP health checks: the first
	// exact host of a route that uses this upstream ("" = addr).
	checkHost string

	inflight     atomic.Int64
	fails        atomic.Int32 // consecutive failures
	ejections    atomic.Int32 // consecutive ejections, for the backoff
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 or past = not ejected
	dialEjected  atomic.Bool  // the current ejection came from a dial error
	down         atomic.Bool  // the last active health check failed
	// removed is set when a table without this upstream is installed.
	// A request that raced the swap sees it after counting itself in
	// flight, and picks again (see Proxy.acquire).
	removed atomic.Bool

	pool connPool

	mu       sync.Mutex
	drainers []chan struct{} // closed when inflight reaches 0
	draining atomic.Int32    // len(drainers) > 0
}

func newUpstream(u Upstream, checkHost string) *upstream {
	s := &upstream{id: u.ID, addr: u.Addr, checkHost: checkHost}
	s.pool.addr = u.Addr
	return s
}

// available reports whether the upstream may be picked at now (unix ns).
func (u *upstream) available(now int64) bool {
	return !u.down.Load() && u.ejectedUntil.Load() <= now
}

// eject takes u out of selection for a backoff period.
func (u *upstream) eject(now time.Time, dial bool) {
	n := u.ejections.Add(1)
	d := ejectBase
	for i := int32(1); i < n && d < ejectMax; i++ {
		d *= 2
	}
	d = min(d, ejectMax)
	u.dialEjected.Store(dial)
	u.ejectedUntil.Store(now.Add(d).UnixNano())
	u.fails.Store(0)
}

// succeeded records a good response: failures and the backoff reset.
func (u *upstream) succeeded() {
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
	if u.ejections.Load() != 0 {
		u.ejections.Store(0)
	}
}

// failed records a failure and reports whether u reached maxFails.
func (u *upstream) failed() bool {
	return u.fails.Add(1) >= maxFails
}

// release ends a request's use of u.
func (u *upstream) release() {
	if u.inflight.Add(-1) == 0 && u.draining.Load() > 0 {
		u.mu.Lock()
		for _, c := range u.drainers {
			close(c)
		}
		u.drainers = nil
		u.draining.Store(0)
		u.mu.Unlock()
	}
}

// idle returns a channel closed once no request is in flight to u.
func (u *upstream) idle() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := make(chan struct{})
	u.drainers = append(u.drainers, c)
	u.draining.Store(int32(len(u.drainers)))
	if u.inflight.Load() == 0 {
		for _, c := range u.drainers {
			close(c)
		}
		u.drainers = nil
		u.draining.Store(0)
	}
	return c
}

// nextExpiry is the earliest end of an ejection among ups, in unix ns,
// or 0.
func nextExpiry(ups []*upstream, now int64) int64 {
	var first int64
	for _, u := range ups {
		if e := u.ejectedUntil.Load(); e > now && (first == 0 || e < first) {
			first = e
		}
	}
	return first
}
