package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/pebbletest"
)

// TestIngressACME: with an ACME server configured (a real one: Debian's
// pebble, on loopback), a route gets its certificate by itself and the
// proxy serves it; the certificate chains to pebble's root, which the test
// trusts for this run only.
func TestIngressACME(t *testing.T) {
	needDocker(t)
	httpAddr, httpsAddr := freePort(t), freePort(t)
	hp, _ := strconv.Atoi(portOf(t, httpAddr))
	sp, _ := strconv.Atoi(portOf(t, httpsAddr))
	pb := pebbletest.Start(t, hp, sp)
	p := startPlatform(t, "--http-addr", httpAddr, "--https-addr", httpsAddr,
		"--acme-ca", pb.Directory, "--acme-ca-root", pb.ServerRootFile, "--acme-email", "ops@ruche.test")
	proj := uniq("e2e-acme-")
	cleanupProject(t, p, proj)
	host := proj + ".ruche.test"
	// tls: acme explicitly for web; the Traefik-labelled one gets the
	// platform default, which is ACME too now.
	p.must("deploy", "-f", routedFile(t, "1", host, "acme"), "-p", proj)

	root := filepath.Join(t.TempDir(), "pebble-root.pem")
	if err := os.WriteFile(root, pb.IssuerRootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	port := portOf(t, httpsAddr)
	var out string
	var err error
	eventually(t, "ACME certificate served", 90*time.Second, func() bool {
		out, err = curl(t, "--cacert", root, "--resolve", host+":"+port+":127.0.0.1", "https://"+host+":"+port+"/")
		return err == nil
	})
	if !strings.Contains(out, "hello from web.") {
		t.Fatalf("HTTPS with the ACME certificate: %q", out)
	}
	routes := p.must("routes")
	if !strings.Contains(routes, host) || !strings.Contains(routes, "acme") {
		t.Fatalf("ruche routes does not show the ACME route:\n%s", routes)
	}
}
