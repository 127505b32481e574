package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNeedsRenewal(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &x509.Certificate{NotBefore: start, NotAfter: start.Add(300 * time.Hour)}
	for _, tc := range []struct {
		name string
		at   time.Duration
		want bool
	}{
		{"fresh", 0, false},
		{"just before 2/3", 199 * time.Hour, false},
		{"at 2/3", 200 * time.Hour, true},
		{"expired", 400 * time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NeedsRenewal(c, start.Add(tc.at), RenewFraction); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// nodePair signs a node certificate for a new key.
func nodePair(t *testing.T, ca *CA, node string) (certPEM, keyPEM []byte) {
	t.Helper()
	csr, keyPEM, err := NewNodeKey(node)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err = ca.SignNode(csr, NodeRequest{ID: node, Role: RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func serialOf(t *testing.T, c tls.Certificate) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.Text(16)
}

func TestWritePairAndLoadPair(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	oldCert, oldKey := nodePair(t, ca, "n1")
	newCert, newKey := nodePair(t, ca, "n1")
	oldPair, _ := tls.X509KeyPair(oldCert, oldKey)
	newPair, _ := tls.X509KeyPair(newCert, newKey)

	for _, tc := range []struct {
		name  string
		setup func(certPath, keyPath string)
		want  tls.Certificate
	}{
		{"swap done", func(c, k string) {
			if err := WritePair(c, k, newCert, newKey); err != nil {
				t.Fatal(err)
			}
		}, newPair},
		{"crash before the renames", func(c, k string) {
			os.WriteFile(c+newSuffix, newCert, 0o644)
			os.WriteFile(k+newSuffix, newKey, 0o600)
		}, oldPair},
		{"crash between the renames", func(c, k string) {
			os.WriteFile(c+newSuffix, newCert, 0o644)
			os.WriteFile(k, newKey, 0o600)
		}, newPair},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			certPath, keyPath := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
			os.WriteFile(certPath, oldCert, 0o644)
			os.WriteFile(keyPath, oldKey, 0o600)
			tc.setup(certPath, keyPath)
			got, err := LoadPair(certPath, keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if got.Leaf == nil {
				t.Fatal("no leaf")
			}
			if g, w := serialOf(t, got), serialOf(t, tc.want); g != w {
				t.Fatalf("got serial %s, want %s", g, w)
			}
			if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("key file: %v %v, want mode 0600", fi.Mode(), err)
			}
			// Loading again gives the same pair: the swap is finished.
			again, err := LoadPair(certPath, keyPath)
			if err != nil || serialOf(t, again) != serialOf(t, got) {
				t.Errorf("second load: %v", err)
			}
		})
	}

	t.Run("a mismatched pair is not written", func(t *testing.T) {
		dir := t.TempDir()
		if err := WritePair(filepath.Join(dir, "c"), filepath.Join(dir, "k"), newCert, oldKey); err == nil {
			t.Fatal("got no error")
		}
	})
}

func TestKeypair(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	var k Keypair
	if _, err := k.GetClientCertificate(nil); err != ErrNoPair {
		t.Fatalf("empty: got %v, want ErrNoPair", err)
	}
	for range 2 {
		c, key := nodePair(t, ca, "n1")
		pair, _ := tls.X509KeyPair(c, key)
		pair.Leaf = nil
		k.Set(pair)
		got, err := k.GetCertificate(nil)
		if err != nil || got.Leaf == nil || serialOf(t, *got) != serialOf(t, pair) {
			t.Fatalf("got %v %v, want the pair just set", got, err)
		}
	}
}
