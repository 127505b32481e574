package daemon

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/certs"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/proxy"
	"github.com/ruche-platform/ruche/internal/routing"
	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
)

// IngressConfig is the ingress part of `ruche up`.
type IngressConfig struct {
	HTTPAddr, HTTPSAddr string // "" turns that listener off
	ACMEDirectory       string // "" with ACMEEmail set means Let's Encrypt
	ACMEEmail           string
	ACMERootFile        string   // PEM of extra roots to trust the ACME server (a private or test CA)
	ACMEChallenges      []string // challenge types to use: ACMEHTTP01, ACMETLSALPN01; empty means both
	TrustedProxies      []string
	RateLimit           float64
	RateBurst           int
	MaxBodyBytes        int64
	HoldTimeout         time.Duration
	DrainTimeout        time.Duration
	AccessLog           bool // JSON access log on stderr
}

// LetsEncrypt is the ACME directory used when only an e-mail is given.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// The ACME challenge types --acme-challenges takes.
const (
	ACMEHTTP01    = "http-01"
	ACMETLSALPN01 = "tls-alpn-01"
)

// ACMEChallengesOff tells which challenge types ACMEChallenges leaves out;
// an unknown type, or none left, is an error.
func (c IngressConfig) ACMEChallengesOff() (noHTTP01, noTLSALPN01 bool, err error) {
	if len(c.ACMEChallenges) == 0 {
		return false, false, nil
	}
	noHTTP01, noTLSALPN01 = true, true
	for _, ch := range c.ACMEChallenges {
		switch strings.ToLower(strings.TrimSpace(ch)) {
		case ACMEHTTP01:
			noHTTP01 = false
		case ACMETLSALPN01:
			noTLSALPN01 = false
		default:
			return false, false, fmt.Errorf("--acme-challenges: unknown challenge type %q (known: %s, %s)", ch, ACMEHTTP01, ACMETLSALPN01)
		}
	}
	return noHTTP01, noTLSALPN01, nil
}

// acmeOn reports whether routes get ACME certificates by default.
func (c IngressConfig) acmeOn() bool { return c.ACMEDirectory != "" || c.ACMEEmail != "" }

// ingress is the proxy, the certificate manager and the routing view of
// this node, wired together.
type ingress struct {
	ctx     context.Context // the run's, for certificate orders; set by run
	proxy   *proxy.Proxy
	certs   *certs.Manager
	routing *routing.Watcher
}

func newIngress(cfg IngressConfig, nodeID string, st store.Store, ca *pki.CA, box *secret.Box, log *slog.Logger, reg prometheus.Registerer) (*ingress, error) {
	pcfg, err := proxyConfig(cfg)
	if err != nil {
		return nil, err
	}
	ccfg := certs.Config{ACMEDirectory: cfg.ACMEDirectory, ACMEEmail: cfg.ACMEEmail, HTTPAddr: cfg.HTTPAddr, HTTPSAddr: cfg.HTTPSAddr}
	if ccfg.DisableHTTP01, ccfg.DisableTLSALPN01, err = cfg.ACMEChallengesOff(); err != nil {
		return nil, err
	}
	if ccfg.ACMEDirectory == "" && cfg.ACMEEmail != "" {
		ccfg.ACMEDirectory = LetsEncrypt
	}
	if cfg.ACMERootFile != "" {
		pem, err := os.ReadFile(cfg.ACMERootFile)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-root: %w", err)
		}
		ccfg.ACMERoots = x509.NewCertPool()
		if !ccfg.ACMERoots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--acme-ca-root %s: no PEM certificate in it", cfg.ACMERootFile)
		}
	}
	mgr, err := certs.New(ccfg, certs.Deps{Store: st, CA: ca, Opener: box, Log: log, Metrics: reg})
	if err != nil {
		return nil, err
	}
	in := &ingress{certs: mgr}
	in.proxy = proxy.New(pcfg, proxy.Deps{Log: log, Metrics: reg, Certs: mgr})
	defaultTLS := client.TLSNone
	if cfg.acmeOn() {
		defaultTLS = client.TLSACME
	}
	var version uint64
	in.routing = routing.New(routing.Config{LocalNode: nodeID, DefaultTLS: defaultTLS}, routing.Deps{
		Store: st, Log: log,
		OnChange: func(t *routing.Table) {
			version++
			in.proxy.Update(proxyTable(t, version))
			in.certs.Manage(in.ctx, wants(t))
		},
	})
	return in, nil
}

// run starts the ingress's parts with run and returns at once.
func (in *ingress) run(ctx context.Context, run func(name string, fn func() error)) {
	in.ctx = ctx
	run("certificates", func() error { return in.certs.Run(ctx) })
	run("proxy", func() error { return in.proxy.Run(ctx) })
	run("routing", func() error { return in.routing.Run(ctx) })
}

// proxyTable keeps, of each route, the replicas that can take traffic.
func proxyTable(t *routing.Table, version uint64) *proxy.Table {
	out := &proxy.Table{Version: version, Routes: make([]proxy.Route, 0, len(t.Routes))}
	for _, r := range t.Routes {
		pr := proxy.Route{Name: r.Project + "/" + r.Service, Host: r.Host, PathPrefix: r.PathPrefix, TLS: r.TLS != client.TLSNone}
		for _, b := range r.Backends {
			if b.Ready && b.Addr != "" {
				pr.Upstreams = append(pr.Upstreams, proxy.Upstream{ID: b.TaskID, Addr: b.Addr})
			}
		}
		out.Routes = append(out.Routes, pr)
	}
	return out
}

// wants lists the certificates the table needs.
func wants(t *routing.Table) []certs.Want {
	var out []certs.Want
	for _, r := range t.Routes {
		if r.TLS != client.TLSNone {
			out = append(out, certs.Want{Host: r.Host, Mode: r.TLS, Project: r.Project, Service: r.Service})
		}
	}
	return out
}
