package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// TestACMETLSALPNOnAgent: ACME validations reach an agent-only node
// (`ruche agent`), and only over TLS-ALPN-01 (the manager runs with
// --acme-challenges tls-alpn-01, as behind a router that keeps port 80
// closed; pebble's HTTP-01 port has nothing listening anyway): the
// agent's ingress answers the acme-tls/1 handshake with the challenge
// certificate a manager builds from the pending challenge, the
// certificate is issued, and the agent serves it.
func TestACMETLSALPNOnAgent(t *testing.T) {
	needDocker(t)
	agentHTTP, agentHTTPS := freePort(t), freePort(t)
	pb, root := startPebble(t, freePort(t), agentHTTPS)
	p := startPlatform(t, append(append([]string{"--advertise-addr", "127.0.0.1", "--node-api-addr", freePort(t), "--acme-challenges", "tls-alpn-01"}, agentBeside...), acmeFlags(pb)...)...)

	joinAgent(t, p, "e2e-alpn-", agentHTTP, agentHTTPS)

	proj := uniq("e2e-alpn-")
	cleanupProject(t, p, proj)
	host := proj + ".ruche.test"
	p.must("deploy", "-f", writeCompose(t, strings.ReplaceAll(`
services:
  web:
    image: @IMAGE@
    x-ruche:
      routes:
        - host: @HOST@
          port: 8080
          tls: acme
`, "@HOST@", host)), "-p", proj)

	out := curlACME(t, root, host, agentHTTPS, "ACME certificate (TLS-ALPN-01 on the agent) served by the agent", 150*time.Second)
	if !strings.Contains(out, "hello from web.1") {
		t.Fatalf("HTTPS on the agent with the ACME certificate: %q", out)
	}
}

// joinAgent joins an agent-only node (`ruche agent`, name prefix, its
// ingress on httpAddr and httpsAddr, advertised on 127.0.0.1, extra
// flags) to p and waits until both nodes are ready. It returns the agent
// and its node name.
func joinAgent(t *testing.T, p *platform, prefix, httpAddr, httpsAddr string, extra ...string) (*agentProc, string) {
	t.Helper()
	var jt client.JoinToken
	if err := json.Unmarshal([]byte(p.must("token", "create", "--ttl", "10m", "-o", "json")), &jt); err != nil {
		t.Fatal(err)
	}
	node := uniq(prefix)
	dataDir := t.TempDir()
	a := &agentProc{t: t, logPath: filepath.Join(dataDir, "agent.log"), args: []string{"agent",
		"--join", jt.Managers[0], "--token", jt.Token, "--ca-hash", jt.CAHash, "--data-dir", dataDir, "--node-name", node,
		"--advertise-addr", "127.0.0.1", "--node-api-addr", freePort(t), "--http-addr", httpAddr, "--https-addr", httpsAddr,
		"--log-level", "debug"}}
	a.args = append(a.args, extra...)
	a.start()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			b, _ := os.ReadFile(a.logPath)
			t.Logf("ruche agent log:\n%s", failedLog(string(b), 60))
		}
	})
	eventually(t, "two nodes ready", 60*time.Second, func() bool {
		ready := 0
		for _, n := range p.nodes() {
			if n.Status == "ready" {
				ready++
			}
		}
		return ready == 2
	})
	// A node is ready from its first heartbeat; its ingress must have
	// bound its own ports too (not found them taken).
	eventually(t, "the agent's ingress to listen on "+httpAddr+" and "+httpsAddr, 30*time.Second, func() bool {
		b, _ := os.ReadFile(a.logPath)
		return strings.Contains(string(b), `msg="serving HTTP" component=agent-ingress component=proxy addr=`+httpAddr) &&
			strings.Contains(string(b), `msg="serving HTTPS" component=agent-ingress component=proxy addr=`+httpsAddr)
	})
	return a, node
}
