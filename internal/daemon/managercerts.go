package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/ruche-platform/ruche/internal/nodeapi"
	"github.com/ruche-platform/ruche/internal/pki"
)

// managerCert is one certificate a manager renews itself: leaf reads the
// one in use, renew signs a new one and puts it in use.
type managerCert struct {
	name  string
	leaf  func() (*x509.Certificate, error)
	renew func() (*x509.Certificate, error)
}

// managerCertRenewer re-signs a manager's own certificates (it holds the
// CA key) once they have lived pki.RenewFraction of their lifetime: checked
// at once, then every hour (nodeCertRetry after a failure), like an agent's
// nodeCertRenewer but without asking anyone.
type managerCertRenewer struct {
	certs []managerCert
	log   *slog.Logger
	renewTiming
}

// managerCerts lists what a manager renews: the API certificate (served
// through api), its own node certificate (sent through node), and, when
// the embedded store has peer TLS, the etcd peer pair in pki/ (etcd reads
// the files at every handshake).
func managerCerts(ca *pki.CA, dataDir string, hosts []string, api *pki.Keypair, nodeID string, node *pki.Keypair, peerAdvertise string) []managerCert {
	pkiDir := filepath.Join(dataDir, "pki")
	certs := []managerCert{
		{name: "api", leaf: keypairLeaf(api), renew: func() (*x509.Certificate, error) {
			c, err := ca.NewServerCert(pkiDir, hosts)
			if err != nil {
				return nil, err
			}
			api.Set(c)
			return api.Current().Leaf, nil
		}},
		{name: "node", leaf: keypairLeaf(node), renew: func() (*x509.Certificate, error) {
			c, err := nodeapi.ManagerCert(ca, nodeID)
			if err != nil {
				return nil, err
			}
			node.Set(c)
			return node.Current().Leaf, nil
		}},
	}
	if peerAdvertise != "" {
		peerLeaf := func() (*x509.Certificate, error) {
			c, err := pki.LoadPair(filepath.Join(pkiDir, peerCertFile), filepath.Join(pkiDir, peerKeyFile))
			if err != nil {
				return nil, err
			}
			return c.Leaf, nil
		}
		certs = append(certs, managerCert{name: "store_peer", leaf: peerLeaf, renew: func() (*x509.Certificate, error) {
			if err := writePeerCert(ca, pkiDir, peerAdvertise); err != nil {
				return nil, err
			}
			return peerLeaf()
		}})
	}
	return certs
}

func keypairLeaf(k *pki.Keypair) func() (*x509.Certificate, error) {
	return func() (*x509.Certificate, error) {
		c := k.Current()
		if c == nil || c.Leaf == nil {
			return nil, pki.ErrNoPair
		}
		return c.Leaf, nil
	}
}

func (r *managerCertRenewer) defaults() {
	r.renewTiming.defaults()
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
}

// run checks at once, then every r.every (r.retry after a failure), until
// ctx ends. A failure is logged, never returned: the certificates in use
// stay valid for months.
func (r *managerCertRenewer) run(ctx context.Context) error {
	r.defaults()
	r.loop(ctx, func() error {
		_, err := r.check()
		if err != nil {
			r.log.Warn("manager certificates not renewed; retrying", "err", err, "retry_in", r.retry)
		}
		return err
	})
	return nil
}

// check renews every certificate that is due and reports which were.
func (r *managerCertRenewer) check() (renewed []string, err error) {
	r.defaults()
	var errs []error
	var attrs []any
	for _, c := range r.certs {
		leaf, err := c.leaf()
		if err == nil && !pki.NeedsRenewal(leaf, r.now(), r.frac) {
			continue
		}
		// A certificate that cannot be read is signed afresh too.
		if leaf, err = c.renew(); err != nil {
			errs = append(errs, fmt.Errorf("%s certificate: %w", c.name, err))
			continue
		}
		renewed = append(renewed, c.name)
		attrs = append(attrs, c.name+"_expires", leaf.NotAfter)
	}
	if len(renewed) > 0 {
		r.log.Info("manager certificates renewed", attrs...)
	}
	return renewed, errors.Join(errs...)
}
