package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ruche-platform/ruche/internal/agent"
)

// errNoCert: no certificate for this host on this node.
var errNoCert = errors.New("daemon: no certificate for this host on this node")

// acmeTLSProto is the ALPN protocol of TLS-ALPN-01 validations.
const acmeTLSProto = "acme-tls/1"

// agentCerts is the certificate source of an agent node's proxy: the
// certificates of the routes as the managers send them (in memory only),
// and the answers to ACME HTTP-01 and TLS-ALPN-01 validations fetched
// from the managers, since the order may have started on any node.
type agentCerts struct {
	node  string
	src   routeSource
	log   *slog.Logger
	certs atomic.Pointer[map[string]*tls.Certificate] // by host, "*.domain" for wildcards
}

// feed keeps the certificates current until ctx ends.
func (c *agentCerts) feed(ctx context.Context) {
	for set := range c.src.WatchCerts(ctx, c.node) {
		m := make(map[string]*tls.Certificate, len(set))
		for _, b := range set {
			cert, err := bundleCert(b)
			if err != nil {
				c.log.Warn("certificate from the managers skipped", "host", b.Host, "err", err)
				continue
			}
			m[strings.ToLower(b.Host)] = cert
		}
		c.certs.Store(&m)
		c.log.Debug("certificates updated", "hosts", len(m))
	}
}

func bundleCert(b agent.CertBundle) (*tls.Certificate, error) {
	if len(b.Chain) == 0 {
		return nil, errors.New("empty chain")
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	leaf, err := x509.ParseCertificate(b.Chain[0])
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return &tls.Certificate{Certificate: b.Chain, PrivateKey: key, Leaf: leaf}, nil
}

// GetCertificate serves the host's certificate, else the wildcard one
// level up.
func (c *agentCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeTLSProto {
		return c.alpnChallengeCert(hello, name)
	}
	m := c.certs.Load()
	if m == nil || name == "" {
		return nil, errNoCert
	}
	if cert, ok := (*m)[name]; ok {
		return cert, nil
	}
	if _, rest, ok := strings.Cut(name, "."); ok && strings.Contains(rest, ".") {
		if cert, ok := (*m)["*."+rest]; ok {
			return cert, nil
		}
	}
	return nil, errNoCert
}

// alpnChallengeCert is the certificate of a TLS-ALPN-01 validation
// handshake: the managers build it from the pending challenge (its key
// is a throwaway one).
func (c *agentCerts) alpnChallengeCert(hello *tls.ClientHelloInfo, name string) (*tls.Certificate, error) {
	if name == "" {
		return nil, errNoCert
	}
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := c.src.ACMEALPNCert(ctx, c.node, name)
	if err != nil {
		// Only ACME validations offer acme-tls/1 alone: a failure here is
		// why a certificate is not issued, worth a warning.
		c.log.Warn("acme tls-alpn-01 challenge not answered", "host", name, "err", err)
		return nil, fmt.Errorf("daemon: tls-alpn-01 challenge for %s: %w", name, err)
	}
	cert, err := bundleCert(b)
	if err != nil {
		return nil, fmt.Errorf("daemon: tls-alpn-01 challenge for %s: %w", name, err)
	}
	return cert, nil
}

// HandleHTTPChallenge answers /.well-known/acme-challenge/ requests with
// what the managers answer.
func (c *agentCerts) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	body, err := c.src.ACMEChallenge(ctx, c.node, host, r.URL.Path)
	if err != nil {
		c.log.Debug("acme challenge not answered", "host", host, "path", r.URL.Path, "err", err)
		http.NotFound(w, r)
		return true
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(body)
	return true
}
