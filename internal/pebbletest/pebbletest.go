// Package pebbletest runs a real ACME server for tests: Debian's pebble,
// with pebble-challtestsrv as its DNS server resolving every name to
// 127.0.0.1, so validations come back to the test's own listeners and
// nothing leaves the machine.
package pebbletest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/testports"
)

// Server is a running pebble.
type Server struct {
	// Directory is the ACME directory URL.
	Directory string
	// ServerRoots trusts pebble's own HTTPS API; ServerRootFile is the
	// same root as a PEM file (for a client's --acme-ca-root).
	ServerRoots    *x509.CertPool
	ServerRootFile string
	// IssuerRoots holds the root pebble issues certificates under, for
	// this run only; IssuerRootPEM is the same as PEM.
	IssuerRoots   *x509.CertPool
	IssuerRootPEM []byte
}

// Need skips the test when pebble is not installed, or fails it in CI
// (CI=true), where a missing real part is an error.
func Need(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"pebble", "pebble-challtestsrv"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (apt-get install -y pebble; make test installs it)", bin)
			}
			t.Skipf("%s not installed (apt-get install -y pebble)", bin)
		}
	}
}

// Start runs pebble-challtestsrv and pebble, validating HTTP-01 on
// 127.0.0.1:httpPort and TLS-ALPN-01 on 127.0.0.1:tlsPort, and stops both
// by pid when the test ends.
func Start(t testing.TB, httpPort, tlsPort int) *Server {
	t.Helper()
	Need(t)
	dir := t.TempDir()
	serverRoots, caFile, certFile, keyFile := apiTLS(t, dir)
	listen, mgmt, dns, chall := testports.Free(t), testports.Free(t), testports.FreeUDPAndTCP(t), testports.Free(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(name string, env []string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", name, out.String())
			}
		})
	}
	start("pebble-challtestsrv", nil,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dns01", dns, "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", chall)
	waitDialable(t, "pebble-challtestsrv", chall)
	start("pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", cfgFile, "-dnsserver", dns)
	waitDialable(t, "pebble", listen)
	waitDialable(t, "pebble management", mgmt)

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: serverRoots}}}
	resp, err := hc.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rootPEM, _ := io.ReadAll(resp.Body)
	roots := x509.NewCertPool()
	if resp.StatusCode != http.StatusOK || !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %s %q", resp.Status, rootPEM)
	}
	return &Server{Directory: "https://" + listen + "/dir", ServerRoots: serverRoots, ServerRootFile: caFile,
		IssuerRoots: roots, IssuerRootPEM: rootPEM}
}

// apiTLS makes a CA and a certificate for 127.0.0.1 that pebble serves its
// API with.
func apiTLS(t testing.TB, dir string) (pool *x509.CertPool, caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pebble"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{
		caFile:   {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: kder},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pool, caFile, certFile, keyFile
}

func waitDialable(t testing.TB, what, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 30s", what, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's two output streams.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
