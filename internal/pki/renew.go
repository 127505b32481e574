package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// RenewFraction is how much of a node certificate's lifetime passes before
// the node asks for a new one: 2/3, so a year's certificate is renewed
// after 8 months and a node down for up to 4 months still renews.
const RenewFraction = 2.0 / 3

// NeedsRenewal reports whether c has lived frac of its lifetime at now.
func NeedsRenewal(c *x509.Certificate, now time.Time, frac float64) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return !now.Before(c.NotBefore.Add(time.Duration(float64(life) * frac)))
}

// newSuffix marks the new files of a pair being swapped (WritePair).
const newSuffix = ".new"

// WritePair replaces the certificate and key at certPath and keyPath with a
// new pair so that a crash at any point leaves a usable pair: both new
// files are written and synced first, then renamed key first; LoadPair
// finishes a swap that stopped between the two renames.
func WritePair(certPath, keyPath string, certPEM, keyPEM []byte) error {
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("write key pair: %w", err)
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{certPath + newSuffix, certPEM, 0o644}, {keyPath + newSuffix, keyPEM, 0o600}} {
		if err := writeSynced(f.path, f.data, f.mode); err != nil {
			return fmt.Errorf("write key pair: %w", err)
		}
	}
	if err := os.Rename(keyPath+newSuffix, keyPath); err != nil {
		return fmt.Errorf("write key pair: %w", err)
	}
	if err := os.Rename(certPath+newSuffix, certPath); err != nil {
		return fmt.Errorf("write key pair: %w", err)
	}
	syncDir(filepath.Dir(certPath))
	return nil
}

// LoadPair loads the pair at certPath and keyPath (with its Leaf). When the
// key no longer fits the certificate because WritePair stopped between its
// renames, the new certificate waiting beside it is taken and the swap
// finished.
func LoadPair(certPath, keyPath string) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		next, nerr := tls.LoadX509KeyPair(certPath+newSuffix, keyPath)
		if nerr != nil {
			return tls.Certificate{}, err
		}
		if rerr := os.Rename(certPath+newSuffix, certPath); rerr != nil {
			return tls.Certificate{}, fmt.Errorf("finish key pair swap: %w", rerr)
		}
		pair = next
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("parse certificate: %w", err)
		}
	}
	return pair, nil
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// ErrNoPair: a Keypair was used before it held a certificate.
var ErrNoPair = errors.New("pki: no certificate loaded")

// Keypair holds the current certificate of a node, swapped at renewal:
// tls.Configs read it through GetCertificate and GetClientCertificate, so
// new connections use the new pair without a restart.
type Keypair struct {
	cur atomic.Pointer[tls.Certificate]
}

// NewKeypair returns a Keypair holding c.
func NewKeypair(c tls.Certificate) *Keypair {
	k := &Keypair{}
	k.Set(c)
	return k
}

// Set makes c the current pair (its Leaf is parsed if missing).
func (k *Keypair) Set(c tls.Certificate) {
	if c.Leaf == nil && len(c.Certificate) > 0 {
		c.Leaf, _ = x509.ParseCertificate(c.Certificate[0])
	}
	k.cur.Store(&c)
}

// Current is the current pair (nil before Set).
func (k *Keypair) Current() *tls.Certificate { return k.cur.Load() }

// GetCertificate is a tls.Config.GetCertificate serving the current pair.
func (k *Keypair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := k.cur.Load(); c != nil {
		return c, nil
	}
	return nil, ErrNoPair
}

// GetClientCertificate is a tls.Config.GetClientCertificate sending the
// current pair.
func (k *Keypair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.GetCertificate(nil)
}
