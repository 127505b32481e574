package pki

import (
	"crypto/x509"
	"testing"
	"testing/synctest"
	"time"
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

// A kept API certificate is replaced at a start once it has lived 2/3 of
// its lifetime, not before.
func TestServerCertRenewedAfterTwoThirds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ca, err := LoadOrCreateCA(dir, "test")
		if err != nil {
			t.Fatal(err)
		}
		hosts := []string{"127.0.0.1"}
		first, err := ca.ServerCert(dir, hosts)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			after time.Duration // since the previous step
			want  bool          // a new certificate
		}{
			{"at 7 months", 7 * 30 * 24 * time.Hour, false},
			{"at 9 months", 2 * 30 * 24 * time.Hour, true},
		} {
			time.Sleep(tc.after)
			got, err := ca.ServerCert(dir, hosts)
			if err != nil {
				t.Fatal(err)
			}
			if renewed := !got.Leaf.Equal(first.Leaf); renewed != tc.want {
				t.Errorf("%s: renewed = %v, want %v", tc.name, renewed, tc.want)
			}
		}
	})
}
