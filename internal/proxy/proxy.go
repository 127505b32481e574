// Package proxy is the ingress proxy of a node: it routes HTTP requests by
// host and path prefix to the ready replicas of services, over HTTP/1.1,
// HTTP/2 (TLS) and WebSocket, and never fails a request because a replica
// goes away during a rollout. See README.md for the design.
package proxy

import (
	"crypto/tls"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config is the proxy's configuration. Zero durations take defaults.
type Config struct {
	HTTPAddr, HTTPSAddr string         // either may be empty
	TrustedProxies      []netip.Prefix // whose X-Forwarded-For / Forwarded is believed
	RateLimit           float64        // requests/s per client IP; 0 = off
	RateBurst           int            // default: RateLimit rounded up
	MaxBodyBytes        int64          // 413 beyond; 0 = no limit
	MaxHeaderBytes      int            // 431 beyond (net/http); default 1 MiB

	ReadHeaderTimeout     time.Duration // default 10s
	IdleTimeout           time.Duration // client keep-alive; default 2m
	UpstreamHeaderTimeout time.Duration // default 60s
	BodyReadTimeout       time.Duration // a request body that sends nothing this long gets a 408; default 60s
	HoldTimeout           time.Duration // no ready replica: wait this long before 503; default 5s
	DrainTimeout          time.Duration // Drain gives up after this; default 30s

	HealthInterval time.Duration // active health checks; 0 = off
	HealthPath     string        // "" = TCP connect, else HTTP GET of this path

	AccessLog io.Writer // JSON lines; nil = off
}

// Defaults.
const (
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultIdleTimeout           = 2 * time.Minute
	DefaultUpstreamHeaderTimeout = time.Minute
	DefaultBodyReadTimeout       = time.Minute
	DefaultHoldTimeout           = 5 * time.Second
	DefaultDrainTimeout          = 30 * time.Second
	DefaultMaxHeaderBytes        = 1 << 20
)

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.UpstreamHeaderTimeout, DefaultUpstreamHeaderTimeout)
	def(&c.BodyReadTimeout, DefaultBodyReadTimeout)
	def(&c.HoldTimeout, DefaultHoldTimeout)
	def(&c.DrainTimeout, DefaultDrainTimeout)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.HealthPath != "" && c.HealthPath[0] != '/' {
		c.HealthPath = "/" + c.HealthPath
	}
}

// CertSource provides the TLS certificates (internal/certs).
type CertSource interface {
	// GetCertificate also answers TLS-ALPN-01 challenges (acme-tls/1).
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// HandleHTTPChallenge answers an ACME HTTP-01 challenge on the HTTP
	// listener and reports whether r was one.
	HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool
}

// Deps are the proxy's collaborators.
type Deps struct {
	Log     *slog.Logger
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	Certs   CertSource            // nil: no TLS
}

// Proxy is the ingress proxy. Its zero value is not usable; call New.
type Proxy struct {
	cfg   Config
	log   *slog.Logger
	certs CertSource
	m     *metrics

	table   atomic.Pointer[table]
	changed atomic.Pointer[chan struct{}] // closed and replaced on every change

	mu           sync.Mutex // serialises Update; guards states and routeMetrics
	states       map[string]*upstream
	routeMetrics map[string]*routeMetrics
	lastBad      string // the routes the last Update ignored

	limiter *limiter
	access  *accessLog
	dialNet dialFunc

	// randN picks in [0, n); replaced by a seeded source in tests.
	randN func(int) int
	// check runs one active health check; replaced in tests.
	check func(u *upstream) error

	// Set by Run.
	running   atomic.Bool
	httpsPort string // for redirects; "" = default port
	ready     chan struct{}
	addrs     [2]net.Addr
	tunnels   tunnelSet
}

// New returns a proxy with an empty table. It does no I/O.
func New(cfg Config, deps Deps) *Proxy {
	cfg.setDefaults()
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		cfg:          cfg,
		log:          log.With("component", "proxy"),
		certs:        deps.Certs,
		m:            newMetrics(),
		states:       map[string]*upstream{},
		routeMetrics: map[string]*routeMetrics{},
		limiter:      newLimiter(cfg.RateLimit, cfg.RateBurst),
		randN:        rand.IntN,
		dialNet:      (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		ready:        make(chan struct{}),
	}
	if cfg.AccessLog != nil {
		p.access = &accessLog{w: cfg.AccessLog}
	}
	if deps.Metrics != nil {
		if err := p.m.register(deps.Metrics); err != nil {
			p.log.Warn("metrics not registered", "err", err)
		}
	}
	p.check = p.defaultCheck
	ch := make(chan struct{})
	p.changed.Store(&ch)
	p.table.Store(&table{})
	return p
}

// wait returns a channel closed at the next change (table update or an
// upstream coming back).
func (p *Proxy) wait() <-chan struct{} { return *p.changed.Load() }

func (p *Proxy) broadcast() {
	ch := make(chan struct{})
	close(*p.changed.Swap(&ch))
}

// httpsEnabled reports whether plain HTTP requests to TLS routes are
// redirected: the proxy has certificates and an HTTPS address.
func (p *Proxy) httpsEnabled() bool { return p.certs != nil && p.cfg.HTTPSAddr != "" }

// Update installs t. Requests in flight finish with the upstream they
// have; new ones see t. Upstream state (in-flight counts, ejections,
// connections) carries over for the upstreams t keeps.
func (p *Proxy) Update(t *Table) {
	p.mu.Lock()
	defer p.mu.Unlock()
	used := map[*upstream]bool{}
	names := map[string]bool{}
	ct, bad := compile(t, func(u Upstream, checkHost string) *upstream {
		k := u.ID + "\x00" + u.Addr
		s := p.states[k]
		if s == nil {
			s = newUpstream(u, checkHost)
			p.states[k] = s
		}
		used[s] = true
		return s
	}, func(name string) *routeMetrics {
		names[name] = true
		rm := p.routeMetrics[name]
		if rm == nil {
			rm = p.m.forRoute(name)
			p.routeMetrics[name] = rm
		}
		return rm
	})
	var sig strings.Builder
	for _, r := range bad {
		sig.WriteString(r.Name + "\x00" + r.Host + "\x00" + r.PathPrefix + "\x00")
	}
	if sig.String() != p.lastBad { // once per change, not per table
		for _, r := range bad {
			p.log.Warn("route ignored: invalid host or duplicate host and path prefix", "route", r.Name, "host", r.Host, "path_prefix", r.PathPrefix)
		}
		p.lastBad = sig.String()
	}
	// Mark the upstreams that leave before the swap, so a request that
	// picked one from the old table notices (see acquire).
	for k, s := range p.states {
		if used[s] {
			if s.removed.Load() {
				s.removed.Store(false)
				s.pool.reopen()
			}
			continue
		}
		s.removed.Store(true)
		s.pool.closeIdle(true)
		if s.inflight.Load() == 0 && s.draining.Load() == 0 {
			delete(p.states, k)
		}
	}
	for name := range p.routeMetrics {
		if !names[name] {
			p.m.forget(name)
			delete(p.routeMetrics, name)
		}
	}
	p.table.Store(ct)
	p.broadcast()
}

// clientAddrs applies the configured trusted proxies.
func (p *Proxy) clientAddrs(r *http.Request) (peer, client netip.Addr, trusted bool) {
	return clientAddrs(r, p.cfg.TrustedProxies)
}
