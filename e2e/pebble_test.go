package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/pebbletest"
)

// startPebble starts pebble (a real ACME server, on loopback) validating
// HTTP-01 on httpAddr's port and TLS-ALPN-01 on httpsAddr's, and writes
// its issuer root to a file the test's clients trust for this run only.
func startPebble(t *testing.T, httpAddr, httpsAddr string) (pb *pebbletest.Server, rootFile string) {
	t.Helper()
	hp, _ := strconv.Atoi(portOf(t, httpAddr))
	sp, _ := strconv.Atoi(portOf(t, httpsAddr))
	pb = pebbletest.Start(t, hp, sp)
	rootFile = filepath.Join(t.TempDir(), "pebble-root.pem")
	if err := os.WriteFile(rootFile, pb.IssuerRootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return pb, rootFile
}

// acmeFlags are the flags of a manager using pb as its ACME server.
func acmeFlags(pb *pebbletest.Server) []string {
	return []string{"--acme-ca", pb.Directory, "--acme-ca-root", pb.ServerRootFile, "--acme-email", "ops@ruche.test"}
}

// curlACME waits (up to within) until https://host on httpsAddr's port of
// 127.0.0.1 answers with a certificate chaining to rootFile, and returns
// the body.
func curlACME(t *testing.T, rootFile, host, httpsAddr, what string, within time.Duration) string {
	t.Helper()
	port := portOf(t, httpsAddr)
	var out string
	eventually(t, what, within, func() bool {
		var err error
		out, err = curl(t, "--cacert", rootFile, "--resolve", host+":"+port+":127.0.0.1", "https://"+host+":"+port+"/")
		return err == nil
	})
	return out
}
