package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestIngressACME: with an ACME server configured (a real one: Debian's
// pebble, on loopback), a route gets its certificate by itself and the
// proxy serves it; the certificate chains to pebble's root, which the test
// trusts for this run only.
func TestIngressACME(t *testing.T) {
	needDocker(t)
	httpAddr, httpsAddr := freePort(t), freePort(t)
	pb, root := startPebble(t, httpAddr, httpsAddr)
	p := startPlatform(t, append([]string{"--http-addr", httpAddr, "--https-addr", httpsAddr}, acmeFlags(pb)...)...)
	proj := uniq("e2e-acme-")
	cleanupProject(t, p, proj)
	host := proj + ".ruche.test"
	// tls: acme explicitly for web; the Traefik-labelled one gets the
	// platform default, which is ACME too now.
	p.must("deploy", "-f", routedFile(t, "1", host, "acme"), "-p", proj)

	out := curlACME(t, root, host, httpsAddr, "ACME certificate served", 90*time.Second)
	if !strings.Contains(out, "hello from web.") {
		t.Fatalf("HTTPS with the ACME certificate: %q", out)
	}
	routes := p.must("routes")
	if !strings.Contains(routes, host) || !strings.Contains(routes, "acme") {
		t.Fatalf("ruche routes does not show the ACME route:\n%s", routes)
	}
}
