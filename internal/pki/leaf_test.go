package pki

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"
)

func TestLeaf(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		names    []string
		lifetime time.Duration
		verify   []string // hosts the leaf must verify for
		reject   []string // hosts it must not
	}{
		{"one host", []string{"app.example.org"}, 24 * time.Hour, []string{"app.example.org"}, []string{"other.example.org"}},
		{"wildcard", []string{"*.example.org"}, time.Hour, []string{"a.example.org", "b.example.org"}, []string{"a.b.example.org", "example.org"}},
		{"ip and name", []string{"10.1.2.3", "pad.internal"}, time.Hour, []string{"10.1.2.3", "pad.internal"}, []string{"10.1.2.4"}},
		{"capped at the CA's expiry", []string{"long.example.org"}, 100 * 365 * 24 * time.Hour, []string{"long.example.org"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.Leaf(tt.names, tt.lifetime)
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("key pair: %v", err)
			}
			leaf := pair.Leaf
			for _, h := range tt.verify {
				if err := leaf.VerifyHostname(h); err != nil {
					t.Errorf("hostname %s: %v", h, err)
				}
			}
			for _, h := range tt.reject {
				if err := leaf.VerifyHostname(h); err == nil {
					t.Errorf("hostname %s: got valid, want rejected", h)
				}
			}
			if err := leaf.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("not signed by the CA: %v", err)
			}
			if leaf.NotAfter.After(ca.Cert.NotAfter) {
				t.Errorf("got NotAfter %v, past the CA's %v", leaf.NotAfter, ca.Cert.NotAfter)
			}
			if want := time.Now().Add(tt.lifetime); leaf.NotAfter.After(want) {
				t.Errorf("got NotAfter %v, want at most %v", leaf.NotAfter, want)
			}
		})
	}
	if _, _, err := ca.Leaf(nil, time.Hour); !errors.Is(err, ErrNoNames) {
		t.Errorf("no names: got %v, want ErrNoNames", err)
	}
}
