package pki

import (
	"crypto/x509"
	"testing"
)

func TestCAAndServerCert(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir, "test")
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("reload gave another CA (%v)", err)
	}
	pair, err := ca.ServerCert(dir, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host}); err != nil {
			t.Errorf("verify %s: %v", host, err)
		}
	}
	same, _ := ca.ServerCert(dir, []string{"localhost"})
	if string(same.Certificate[0]) != string(pair.Certificate[0]) {
		t.Error("a covering certificate was not reused")
	}
	other, _ := ca.ServerCert(dir, []string{"10.9.9.9"})
	leaf2, _ := x509.ParseCertificate(other.Certificate[0])
	if _, err := leaf2.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "10.9.9.9"}); err != nil {
		t.Errorf("new host not covered: %v", err)
	}
}
