package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
)

// ErrNodeRemoved: `ruche agent` stops because the managers removed its node.
var ErrNodeRemoved = errors.New("this node was removed from the cluster (ruche node rm): the agent stopped; " +
	"its containers are left as they are (remove them with docker if they are no longer wanted); to join again, use a new token and an empty --data-dir")

// ErrNodeReplaced: `ruche agent` stops because a new join took its node's
// name, so the managers no longer accept its certificate.
var ErrNodeReplaced = errors.New("this node's name was taken by a new join (its certificate was replaced): the agent stopped; " +
	"its containers are left as they are (remove them with docker if they are no longer wanted); to run it again, " +
	"remove " + identityFile + " from its --data-dir and join with a new token and another --node-name")

// Timing of node certificate renewal.
const (
	nodeCertCheckEvery = time.Hour       // how often the certificate's age is checked
	nodeCertRetry      = 5 * time.Minute // after a failed renewal
)

// nodeCertRenewer renews a node's certificate once it has lived
// pki.RenewFraction of its lifetime: a new key, a request signed by the
// managers over mutual TLS with the current certificate, the pair written
// atomically to the data dir and swapped in pair (so new connections use
// it without a restart).
type nodeCertRenewer struct {
	certPath, keyPath string
	pair              *pki.Keypair
	roots             *x509.CertPool // the cluster CA: the new certificate must chain to it
	renew             func(ctx context.Context, csrPEM []byte) ([]byte, error)
	onRenew           func() // after the swap
	expiry            prometheus.Gauge
	log               *slog.Logger
	renewTiming
}

// renewTiming is when a certificate renewer checks (shared by agents'
// nodeCertRenewer and managers' managerCertRenewer); zero fields take the
// defaults.
type renewTiming struct {
	now   func() time.Time // default time.Now
	every time.Duration    // default nodeCertCheckEvery
	retry time.Duration    // default nodeCertRetry
	frac  float64          // default pki.RenewFraction
}

func (t *renewTiming) defaults() {
	if t.now == nil {
		t.now = time.Now
	}
	if t.every <= 0 {
		t.every = nodeCertCheckEvery
	}
	if t.retry <= 0 {
		t.retry = nodeCertRetry
	}
	if t.frac <= 0 {
		t.frac = pki.RenewFraction
	}
}

// loop calls check at once, then every t.every (t.retry after it failed),
// until ctx ends.
func (t *renewTiming) loop(ctx context.Context, check func() error) {
	t.defaults()
	for {
		wait := t.every
		if err := check(); err != nil {
			wait = t.retry
		}
		tm := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
	}
}

// newNodeExpiryGauge registers ruche_node_cert_expiry_seconds in reg.
func newNodeExpiryGauge(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ruche_node_cert_expiry_seconds",
		Help: "When this node's certificate expires (Unix time); it is renewed after 2/3 of its lifetime."})
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector.(prometheus.Gauge)
		}
	}
	return g
}

func (r *nodeCertRenewer) defaults() {
	r.renewTiming.defaults()
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
}

// run checks at once, then every r.every (r.retry after a failure), until
// ctx ends.
func (r *nodeCertRenewer) run(ctx context.Context) error {
	r.defaults()
	r.loop(ctx, func() error {
		_, err := r.check(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("node certificate not renewed; retrying", "err", err, "retry_in", r.retry,
				"expires", r.pair.Current().Leaf.NotAfter)
		}
		return err
	})
	return nil
}

// check renews the certificate if it is due; renewed reports whether it was.
func (r *nodeCertRenewer) check(ctx context.Context) (renewed bool, err error) {
	r.defaults()
	leaf := r.pair.Current().Leaf
	r.setExpiry(leaf)
	if !pki.NeedsRenewal(leaf, r.now(), r.frac) {
		return false, nil
	}
	id, err := pki.CertIdentity(leaf)
	if err != nil {
		return false, err
	}
	csr, keyPEM, err := pki.NewNodeKey(id.NodeID)
	if err != nil {
		return false, err
	}
	certPEM, err := r.renew(ctx, csr)
	if err != nil {
		return false, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("renewed certificate: %w", err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return false, fmt.Errorf("renewed certificate: %w", err)
		}
	}
	nid, err := pki.CertIdentity(pair.Leaf)
	if err != nil {
		return false, fmt.Errorf("renewed certificate: %w", err)
	}
	if nid.NodeID != id.NodeID || nid.Role != id.Role {
		return false, fmt.Errorf("renewed certificate names %s/%s, not %s/%s", nid.NodeID, nid.Role, id.NodeID, id.Role)
	}
	if r.roots != nil {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: r.roots, CurrentTime: r.now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return false, fmt.Errorf("renewed certificate: %w", err)
		}
	}
	if err := pki.WritePair(r.certPath, r.keyPath, certPEM, keyPEM); err != nil {
		return false, err
	}
	r.pair.Set(pair)
	r.setExpiry(pair.Leaf)
	r.log.Info("node certificate renewed", "expires", pair.Leaf.NotAfter, "serial", nid.Serial)
	if r.onRenew != nil {
		r.onRenew()
	}
	return true, nil
}

func (r *nodeCertRenewer) setExpiry(leaf *x509.Certificate) {
	if r.expiry != nil {
		r.expiry.Set(float64(leaf.NotAfter.Unix()))
	}
}

// removedSource tells when the managers have removed this node, or a new
// join took its name, and which (agent.RemoteConn).
type removedSource interface {
	Removed() <-chan struct{}
	Verdict() error
}

// stopWhenRemoved returns ErrNodeRemoved or ErrNodeReplaced, after logging
// it once, when src says the node was removed or replaced; nil when ctx
// ends first.
func stopWhenRemoved(ctx context.Context, src removedSource, log *slog.Logger) error {
	select {
	case <-ctx.Done():
		return nil
	case <-src.Removed():
	}
	if errors.Is(src.Verdict(), agent.ErrNodeReplaced) {
		log.Error("this node's name was taken by a new join (its certificate was replaced); stopping. Its containers are left as they are; " +
			"to run it again, remove " + identityFile + " from its --data-dir and join with a new token and another --node-name")
		return ErrNodeReplaced
	}
	log.Error("this node was removed from the cluster (ruche node rm); stopping. Its containers are left as they are")
	return ErrNodeRemoved
}

// runNodeAPI serves the node API with the current node certificate,
// starting it again with the new one after each renewal (renewed), until
// ctx ends. Without it `ruche logs` of this node is lost, and other nodes'
// drains wait a fixed time for its proxy instead of asking it: the
// replicas keep running, so a failure is logged, not returned.
func runNodeAPI(ctx context.Context, addr string, pair *pki.Keypair, pool *x509.CertPool, ag *agent.Agent, drainer agent.Drainer, renewed <-chan struct{}, log *slog.Logger) {
	for {
		nctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		napi := newNodeAPI(addr, *pair.Current(), pool, ag, drainer, log)
		go func() { errc <- napi.Run(nctx) }()
		select {
		case err := <-errc:
			cancel()
			if err != nil {
				log.Error("node api stopped; the managers cannot show this node's logs", "err", err)
			}
			return
		case <-renewed:
			cancel()
			<-errc // then again, with the new certificate
		case <-ctx.Done():
			cancel()
			<-errc
			return
		}
	}
}
