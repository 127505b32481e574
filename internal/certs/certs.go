// Package certs provides the ingress proxy's TLS certificates, chosen by SNI:
// from an ACME CA (through certmagic, with its assets and locks in the cluster
// store, so one node obtains a certificate and every node serves it), from the
// cluster's own CA ("internal"), or from files the user gave ("files").
//
// See README.md for the design choices.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// Sentinel errors.
var (
	// ErrUnknownHost: no route wants a certificate for the server name.
	ErrUnknownHost = errors.New("certs: no certificate for this host")
	// ErrNotReady: the host is wanted but its certificate is not there yet
	// (ACME obtains asynchronously; files not written yet).
	ErrNotReady = errors.New("certs: certificate not ready yet")
	// ErrNoServerName: the client sent no SNI.
	ErrNoServerName = errors.New("certs: client sent no server name")
	// ErrNoCA: internal mode without a cluster CA on this node.
	ErrNoCA = errors.New("certs: no cluster CA to issue internal certificates")
	// ErrNoACME: ACME mode without an ACME directory configured.
	ErrNoACME = errors.New("certs: no ACME directory configured")
	// ErrWildcardACME: a wildcard needs the DNS-01 challenge, not supported yet.
	ErrWildcardACME = errors.New("certs: wildcard certificates need DNS-01, not supported by the ACME issuer yet")
)

// ALPNChallengeProto is the ALPN protocol of TLS-ALPN-01 validation
// (RFC 8737). The proxy's tls.Config.NextProtos must list it so that the
// ACME server's validation handshake negotiates it; such a connection is
// then closed after the handshake, never served HTTP (net/http's Server
// does that for a protocol without a TLSNextProto entry).
const ALPNChallengeProto = "acme-tls/1"

// Config configures the Manager.
type Config struct {
	// ACMEDirectory is the ACME server's directory URL, e.g.
	// https://acme-v02.api.letsencrypt.org/directory; "" disables ACME.
	ACMEDirectory string
	ACMEEmail     string
	// ACMERoots are the roots trusted to talk to the ACME server (pebble's
	// in tests); nil means the system roots.
	ACMERoots *x509.CertPool
	// RenewBefore renews an ACME certificate when less than this is left;
	// 0 means certmagic's default (the last third of its lifetime).
	RenewBefore time.Duration
	// DisableHTTP01 and DisableTLSALPN01 turn a challenge type off.
	DisableHTTP01, DisableTLSALPN01 bool
	// HTTPAddr and HTTPSAddr are the proxy's listen addresses. certmagic
	// starts a challenge listener of its own only when nothing listens on
	// its address; pointing it at the proxy's addresses (which answer
	// challenges through HandleHTTPChallenge and GetCertificate) means it
	// never binds a port. Empty: 127.0.0.1 on the standard ports 80 and 443.
	HTTPAddr, HTTPSAddr string
	// InternalLifetime is the validity of certificates from the cluster
	// CA; they are renewed at 2/3 of it. Default 30 days.
	InternalLifetime time.Duration
}

// Deps are the Manager's collaborators.
type Deps struct {
	Store store.Store
	// CA issues internal certificates; nil on a node without the CA (it
	// then serves internal certificates other nodes stored, and issues none).
	CA *pki.CA
	// Opener opens the sealed keys of FilesRecord. When it can also Seal
	// (a *secret.Box can), private keys this package writes to the store
	// (internal leaves, ACME keys) are sealed too; otherwise they are
	// stored in clear.
	Opener  interface{ Open([]byte) ([]byte, error) }
	Log     *slog.Logger
	Metrics prometheus.Registerer // may be nil
}

// Want asks for a certificate for Host (exact, or "*.example.org"), from
// the source Mode: client.TLSACME, client.TLSInternal or client.TLSFiles.
// Project and Service say who asked, for messages and for checking that a
// FilesRecord belongs to the same service.
type Want struct {
	Host             string
	Mode             string
	Project, Service string
}

type sealer interface {
	Seal([]byte) ([]byte, error)
}

// Manager provides certificates to the proxy: GetCertificate for TLS
// handshakes (TLS-ALPN-01 challenges included) and HandleHTTPChallenge for
// HTTP-01. It implements the proxy's CertSource.
type Manager struct {
	cfg    Config
	st     store.Store
	ca     *pki.CA
	opener interface{ Open([]byte) ([]byte, error) }
	sealer sealer
	log    *slog.Logger
	reg    prometheus.Registerer
	met    *metrics

	kick chan struct{} // a reconcile is due; capacity 1

	mu          sync.RWMutex
	wants       map[string]Want     // by host
	internal    map[string]*leaf    // served internal certificates, by host
	internalRev map[string]int64    // mod revision of each host's internal record in the store (0: none)
	files       map[string]*fileCrt // by host
	acme        *acmeState          // set while Run runs with ACME configured

	warnMu sync.Mutex
	warned map[string]bool

	changedMu sync.Mutex
	changed   chan struct{} // closed (and replaced) by notify
}

// New builds a Manager. It does no I/O and starts nothing; Run does.
func New(cfg Config, deps Deps) (*Manager, error) {
	if deps.Store == nil {
		return nil, errors.New("certs: a store is required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.InternalLifetime <= 0 {
		cfg.InternalLifetime = 30 * 24 * time.Hour
	}
	m := &Manager{
		cfg:         cfg,
		st:          deps.Store,
		ca:          deps.CA,
		opener:      deps.Opener,
		log:         deps.Log.With("component", "certs"),
		reg:         deps.Metrics,
		kick:        make(chan struct{}, 1),
		wants:       map[string]Want{},
		internal:    map[string]*leaf{},
		internalRev: map[string]int64{},
		files:       map[string]*fileCrt{},
		changed:     make(chan struct{}),
	}
	if s, ok := deps.Opener.(sealer); ok {
		m.sealer = s
	}
	m.met = newMetrics(m)
	return m, nil
}

// Run follows the stored certificates (files, internal), obtains and renews
// what Manage asks for, until ctx ends. It returns when its goroutines have
// ended, except ACME jobs certmagic runs on its own, which stop soon after
// since their context is cancelled.
func (m *Manager) Run(ctx context.Context) error {
	if m.reg != nil {
		if err := m.met.register(m.reg); err != nil {
			return err
		}
	}
	if m.cfg.ACMEDirectory != "" {
		a, err := m.newACME()
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.acme = a
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			m.acme = nil
			m.mu.Unlock()
			a.stop()
		}()
	}
	var wg sync.WaitGroup
	wg.Go(func() { m.follow(ctx, FilesPrefix, m.resetFiles, m.applyFiles) })
	wg.Go(func() { m.follow(ctx, InternalPrefix, m.resetInternal, m.applyInternal) })
	m.loop(ctx)
	wg.Wait()
	return nil
}

// loop reconciles on every Manage change, stored change and renewal time.
func (m *Manager) loop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-timer.C:
		}
		next := m.reconcile(ctx)
		timer.Reset(time.Until(next))
	}
}

// Manage sets the hosts to serve, from the routing view. It is idempotent
// and cheap: the work happens in Run.
func (m *Manager) Manage(ctx context.Context, wants []Want) {
	set := make(map[string]Want, len(wants))
	for _, w := range wants {
		w.Host = normalize(w.Host)
		if w.Host == "" {
			continue
		}
		if w.Mode == client.TLSAuto && m.cfg.ACMEDirectory != "" {
			w.Mode = client.TLSACME
		}
		if w.Mode != client.TLSACME && w.Mode != client.TLSInternal && w.Mode != client.TLSFiles {
			continue
		}
		if prev, ok := set[w.Host]; ok && prev.Mode != w.Mode {
			// Two routes of one host disagree; keep the first, deterministically.
			continue
		}
		if _, ok := set[w.Host]; !ok {
			set[w.Host] = w
		}
	}
	m.mu.Lock()
	same := len(set) == len(m.wants)
	if same {
		for h, w := range set {
			if m.wants[h] != w {
				same = false
				break
			}
		}
	}
	if !same {
		m.wants = set
	}
	m.mu.Unlock()
	if !same {
		m.poke()
	}
}

// Changed returns a channel that is closed the next time the certificates
// the Manager serves may have changed: one obtained, renewed, loaded from
// the store, stored or removed by any node. A caller looks again, then
// calls Changed anew.
func (m *Manager) Changed() <-chan struct{} {
	m.changedMu.Lock()
	defer m.changedMu.Unlock()
	return m.changed
}

// notify wakes the callers of Changed.
func (m *Manager) notify() {
	m.changedMu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.changedMu.Unlock()
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// reconcile brings the ACME and internal certificates in line with the
// wants; it returns when it should run again at the latest.
func (m *Manager) reconcile(ctx context.Context) time.Time {
	m.mu.RLock()
	wants := make([]Want, 0, len(m.wants))
	for _, w := range m.wants {
		wants = append(wants, w)
	}
	a := m.acme
	m.mu.RUnlock()

	next := time.Now().Add(time.Hour)
	acmeHosts := map[string]Want{}
	for _, w := range wants {
		switch w.Mode {
		case client.TLSACME:
			acmeHosts[w.Host] = w
		case client.TLSInternal:
			if t := m.ensureInternal(ctx, w); t.Before(next) {
				next = t
			}
		}
	}
	m.collectInternal(ctx)
	if a != nil {
		a.sync(ctx, acmeHosts)
	} else if len(acmeHosts) > 0 {
		m.warnOnce("no-acme", "routes want ACME certificates but no ACME directory is configured", "hosts", len(acmeHosts))
	}
	return next
}

// GetCertificate returns the certificate for the handshake's server name:
// the wanted host itself, else a wanted wildcard one level up. It answers
// TLS-ALPN-01 validation handshakes. It never waits for an ACME order.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNChallengeProto {
		m.mu.RLock()
		a := m.acme
		m.mu.RUnlock()
		if a == nil {
			return nil, ErrNoACME
		}
		return a.getCertificate(hello)
	}
	name := normalize(hello.ServerName)
	if name == "" {
		return nil, ErrNoServerName
	}
	var lastErr error
	for _, cand := range candidates(name) {
		m.mu.RLock()
		w, ok := m.wants[cand]
		m.mu.RUnlock()
		if !ok {
			continue
		}
		c, err := m.certFor(w, hello)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, ErrUnknownHost
}

func (m *Manager) certFor(w Want, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	switch w.Mode {
	case client.TLSInternal:
		return m.internalCert(w)
	case client.TLSFiles:
		m.mu.RLock()
		f := m.files[w.Host]
		m.mu.RUnlock()
		if f == nil || !f.serves(w) {
			return nil, ErrNotReady
		}
		return f.cert, nil
	case client.TLSACME:
		m.mu.RLock()
		a := m.acme
		m.mu.RUnlock()
		if a == nil {
			if m.cfg.ACMEDirectory != "" {
				return nil, ErrNotReady // Run has not started certmagic yet
			}
			return nil, ErrNoACME
		}
		return a.getCertificate(hello)
	}
	return nil, ErrUnknownHost
}

// HandleHTTPChallenge answers an ACME HTTP-01 validation request
// (/.well-known/acme-challenge/...), whichever node started the order. It
// returns false, having written nothing, for any other request.
func (m *Manager) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
		return false
	}
	m.mu.RLock()
	a := m.acme
	m.mu.RUnlock()
	if a == nil {
		return false
	}
	return a.issuer.HandleHTTPChallenge(w, r)
}

// normalize lowercases a host name and drops a trailing dot.
func normalize(host string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
}

// candidates are the names whose certificate may serve name: itself, then
// the wildcard one level up ("a.b.example.org" -> "*.b.example.org").
func candidates(name string) []string {
	if _, rest, ok := strings.Cut(name, "."); ok && strings.Contains(rest, ".") {
		return []string{name, "*." + rest}
	}
	return []string{name}
}

// warnOnce logs a warning once per key, until clearWarn(key).
func (m *Manager) warnOnce(key, msg string, args ...any) {
	m.warnMu.Lock()
	defer m.warnMu.Unlock()
	if m.warned == nil {
		m.warned = map[string]bool{}
	}
	if m.warned[key] {
		return
	}
	m.warned[key] = true
	m.log.Warn(msg, args...)
}

func (m *Manager) clearWarn(key string) {
	m.warnMu.Lock()
	delete(m.warned, key)
	m.warnMu.Unlock()
}
