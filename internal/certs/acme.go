package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// acmeState is certmagic while Run runs: its certificate cache (which owns
// the renewal maintenance), its config and the ACME issuer.
type acmeState struct {
	m       *Manager
	cache   *certmagic.Cache
	tmpl    certmagic.Config // what cfg was made from, for per-certificate configs
	cfg     *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	storage *Storage

	// managed holds the hosts handed to certmagic and the cancel of the
	// context their obtain jobs run under; only Run's loop touches it.
	managed map[string]context.CancelFunc
	ctx     context.Context // parent of the per-host contexts
	cancel  context.CancelFunc

	// cached returns the hashes of the certificates certmagic's cache
	// holds for a name (a.cachedHashes; tests replace it).
	cached func(name string) []string
}

// Following a renewal into the cache: certmagic emits "cert_obtained" for a
// renewal before it loads the renewed certificate into its cache (it
// reloads it from storage right after, with no event). Changed fires at
// the event and again once the cache holds another certificate for the
// name, polled every renewalPoll for at most renewalFollow.
const (
	renewalPoll   = 50 * time.Millisecond
	renewalFollow = time.Minute
)

// newACME builds certmagic on the cluster store. It starts certmagic's
// maintenance goroutine, so only Run calls it.
func (m *Manager) newACME() (*acmeState, error) {
	zl := zap.New(newSlogCore(m.log.With("lib", "certmagic").Handler()))
	var box interface {
		Open([]byte) ([]byte, error)
		Seal([]byte) ([]byte, error)
	}
	if b, ok := m.opener.(interface {
		Open([]byte) ([]byte, error)
		Seal([]byte) ([]byte, error)
	}); ok {
		box = b
	}
	a := &acmeState{m: m, storage: NewStorage(m.st, StoragePrefix, box), managed: map[string]context.CancelFunc{}}
	a.cached = a.cachedHashes
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.tmpl = certmagic.Config{
		Storage: a.storage,
		Logger:  zl,
		OnEvent: a.onEvent,
		// Emitting "tls_get_certificate" on every handshake costs; only
		// obtain and renew results, and certificates loaded from the
		// store (another manager obtained them), are observed.
		ShouldEmitFunc: func(ev string) bool {
			return ev == "cert_obtained" || ev == "cert_failed" || ev == "cached_managed_cert"
		},
	}
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(c certmagic.Certificate) (*certmagic.Config, error) { return a.configFor(c), nil },
		Logger:           zl,
	})
	a.cfg = certmagic.New(a.cache, a.tmpl)
	listenHost, httpPort, err := challengeAddr(m.cfg.HTTPAddr, 80)
	if err != nil {
		a.stop()
		return nil, fmt.Errorf("http addr: %w", err)
	}
	_, tlsPort, err := challengeAddr(m.cfg.HTTPSAddr, 443)
	if err != nil {
		a.stop()
		return nil, fmt.Errorf("https addr: %w", err)
	}
	a.issuer = certmagic.NewACMEIssuer(a.cfg, certmagic.ACMEIssuer{
		CA:                      m.cfg.ACMEDirectory,
		Email:                   m.cfg.ACMEEmail,
		Agreed:                  true,
		TrustedRoots:            m.cfg.ACMERoots,
		DisableHTTPChallenge:    m.cfg.DisableHTTP01,
		DisableTLSALPNChallenge: m.cfg.DisableTLSALPN01,
		ListenHost:              listenHost,
		AltHTTPPort:             httpPort,
		AltTLSALPNPort:          tlsPort,
		Logger:                  zl,
	})
	a.cfg.Issuers = []certmagic.Issuer{a.issuer}
	a.tmpl.Issuers = a.cfg.Issuers
	return a, nil
}

// challengeAddr is where certmagic would listen for a challenge: the
// proxy's own address, so that it finds it taken and leaves it to the proxy.
func challengeAddr(addr string, defPort int) (host string, port int, err error) {
	if addr == "" {
		return "127.0.0.1", defPort, nil
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		h = "127.0.0.1" // a wildcard listener also holds the loopback address
	}
	return h, port, nil
}

// configFor is the config certmagic manages certificate c with: the shared
// one, or, with RenewBefore set, one whose renewal window is RenewBefore of
// c's lifetime.
func (a *acmeState) configFor(c certmagic.Certificate) *certmagic.Config {
	rb := a.m.cfg.RenewBefore
	if rb <= 0 || c.Leaf == nil {
		return a.cfg
	}
	life := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)
	if life <= 0 {
		return a.cfg
	}
	t := a.tmpl
	t.RenewalWindowRatio = min(max(float64(rb)/float64(life), 0.01), 0.99)
	return certmagic.New(a.cache, t)
}

func (a *acmeState) onEvent(_ context.Context, event string, data map[string]any) error {
	renewal, _ := data["renewal"].(bool)
	op := "obtain"
	if renewal {
		op = "renew"
	}
	switch event {
	case "cert_obtained":
		a.m.met.acme.WithLabelValues(op, "success").Inc()
		if name, _ := data["identifier"].(string); renewal && name != "" {
			go a.followRenewal(name, a.cached(name))
		}
		a.m.notify()
	case "cached_managed_cert":
		a.m.notify()
	case "cert_failed":
		a.m.met.acme.WithLabelValues(op, "failure").Inc()
	}
	return nil
}

// cachedHashes are the hashes of the certificates the cache holds for name.
func (a *acmeState) cachedHashes(name string) []string {
	var out []string
	for _, c := range a.cache.AllMatchingCertificates(name) {
		out = append(out, c.Hash())
	}
	return out
}

// followRenewal fires Changed once the cache holds, for name, certificates
// other than before (the renewed one), or gives up after renewalFollow:
// the certificate streams to agents then look again at once instead of at
// their next periodic recheck.
func (a *acmeState) followRenewal(name string, before []string) {
	tick := time.NewTicker(renewalPoll)
	defer tick.Stop()
	deadline := time.After(renewalFollow)
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-deadline:
			a.m.log.Warn("renewed certificate not in the cache yet", "host", name, "after", renewalFollow)
			return
		case <-tick.C:
		}
		if now := a.cached(name); len(now) > 0 && !slices.Equal(now, before) {
			a.m.notify()
			return
		}
	}
}

// sync hands certmagic the ACME hosts added since last time and takes back
// the ones gone.
func (a *acmeState) sync(ctx context.Context, want map[string]Want) {
	for host, stop := range a.managed {
		if _, ok := want[host]; !ok {
			stop()
			delete(a.managed, host)
			a.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: host}})
			a.m.log.Info("acme certificate no longer managed", "host", host)
		}
	}
	for host, w := range want {
		if _, ok := a.managed[host]; ok {
			continue
		}
		if strings.HasPrefix(host, "*") {
			a.m.warnOnce("wildcard-acme/"+host, "cannot obtain certificate", "host", host, "project", w.Project, "service", w.Service, "err", ErrWildcardACME)
			continue
		}
		hctx, stop := context.WithCancel(a.ctx)
		// Loads the certificate from the store if it is there, else
		// obtains it in the background, retrying with backoff.
		if err := a.cfg.ManageAsync(hctx, []string{host}); err != nil {
			stop()
			a.m.log.Error("manage acme certificate", "host", host, "err", err)
			continue
		}
		a.managed[host] = stop
		a.m.log.Info("acme certificate managed", "host", host, "project", w.Project, "service", w.Service)
	}
}

// getCertificate serves from certmagic's cache (and TLS-ALPN-01
// challenges); it never starts an order.
func (a *acmeState) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.Conn == nil {
		// certmagic logs the connection's addresses; a synthetic hello
		// (tests, tools) has none.
		h := *hello
		h.Conn = noConn{}
		hello = &h
	}
	c, err := a.cfg.GetCertificate(hello)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", hello.ServerName, ErrNotReady, err)
	}
	return c, nil
}

// stop ends certmagic's maintenance and the obtain jobs, and releases locks.
func (a *acmeState) stop() {
	a.cancel()
	a.cache.Stop()
	a.storage.Close(context.Background())
}

// noConn stands in for the connection of a ClientHelloInfo that has none.
type noConn struct{ net.Conn }

func (noConn) LocalAddr() net.Addr  { return &net.TCPAddr{} }
func (noConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }
