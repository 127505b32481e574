package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/testbed"
)

// meshRange is the cluster's --private-range in the testbed: its
// addresses exist only inside the testbed's namespaces, which have no
// route out.
const meshRange = "10.213.96.0/21"

const meshCompose = `
services:
  web:
    image: @IMAGE@
    environment:
      HELLO_FETCH: "1"
    x-ruche:
      routes:
        - host: web.@HOST@
          port: 8080
          tls: none
    deploy:
      placement:
        constraints: ["node.labels.zone == a"]
  db:
    image: @IMAGE@
    healthcheck:
      test: ["CMD", "/hello", "health"]
      interval: 1s
      timeout: 2s
      retries: 2
    x-ruche:
      routes:
        - host: db.@HOST@
          port: 8080
          tls: none
    deploy:
      placement:
        constraints: ["node.labels.zone == b"]
`

// TestMeshNetworks: `--networks ruche` on two nodes (each a namespace of
// the testbed with its own dockerd, joined over the testbed's bridge).
// Each node gets a WireGuard interface of ruche's (userspace here: this
// kernel has no WireGuard module), the managers give each network a
// subnet per node, and a project's replicas on two nodes reach each other
// by name over the mesh; another project reaches neither; the ingress of
// each node reaches the replicas of the other at their private addresses.
func TestMeshNetworks(t *testing.T) {
	needDocker(t)
	needRoot(t, "the mesh test needs root (network namespaces, WireGuard, iptables)")
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is missing (make test installs it)")
		}
		t.Skip("curl is missing")
	}
	netArgs := []string{"--networks", "ruche", "--private-range", meshRange, "--dns-upstream", freePort(t)}
	m := startCluster(t, 2, testbed.ClusterConfig{
		Labels:      map[string][]string{"node1": {"zone=a"}, "node2": {"zone=b"}},
		ManagerArgs: netArgs, AgentArgs: netArgs})
	tb := m.tb
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	a, b := uniq("e2e-mesha-"), uniq("e2e-meshb-")
	hostA, hostB := a+".ruche.test", b+".ruche.test"
	for _, pr := range []struct{ name, host string }{{a, hostA}, {b, hostB}} {
		f := writeCompose(t, strings.NewReplacer("@IMAGE@", image, "@HOST@", pr.host).Replace(meshCompose))
		m.must(t, "deploy", "-f", f, "-p", pr.name)
	}
	node1, node2 := tb.Node("node1").Addr().String(), tb.Node("node2").Addr().String()
	// ask GETs path through the ingress of the node at addr.
	ask := func(addr, host, path string) string {
		out, _ := exec.Command("curl", "-sS", "--max-time", "5", "-H", "Host: "+host, "http://"+addr+path).CombinedOutput()
		return string(out)
	}

	// The mesh: a WireGuard interface of ruche's in each node.
	for _, n := range tb.Nodes() {
		out, err := n.Exec(ctx, "ip", "-o", "link", "show")
		if err != nil || !strings.Contains(string(out), "ruchewg") {
			t.Fatalf("%s has no mesh interface (%v):\n%s", n.Name(), err, out)
		}
	}

	// web (node1) reaches db (node2) by name, over the mesh.
	eventually(t, "web of "+a+" on node1 fetching http://db:8080/ on node2", 60*time.Second, func() bool {
		return strings.HasPrefix(ask(node1, "web."+hostA, "/fetch?url=http://db:8080/"), "200 hello from db.1")
	})
	dbA := strings.Fields(ask(node1, "web."+hostA, "/resolve?name=db"))
	webA := strings.Fields(ask(node1, "web."+hostA, "/resolve?name=web"))
	if len(dbA) != 1 || len(webA) != 1 {
		t.Fatalf("db resolves to %v and web to %v in %s, want one address each", dbA, webA, a)
	}
	dbAddr, webAddr := netip.MustParseAddr(dbA[0]), netip.MustParseAddr(webA[0])
	if !netip.MustParsePrefix(meshRange).Contains(dbAddr) || netip.PrefixFrom(dbAddr, 24).Masked() == netip.PrefixFrom(webAddr, 24).Masked() {
		t.Errorf("db at %s and web at %s: want two subnets of %s (one per node)", dbAddr, webAddr, meshRange)
	}

	// The ingress of each node reaches the replica of the other node at
	// its private address.
	if out := ask(node1, "db."+hostA, "/"); !strings.Contains(out, "hello from db.1") {
		t.Errorf("node1's ingress to db on node2: %q", out)
	}
	if out := ask(node2, "web."+hostA, "/"); !strings.Contains(out, "hello from web.1") {
		t.Errorf("node2's ingress to web on node1: %q", out)
	}

	// Apart: b's web, on node1 too, reaches neither a's db on node2 nor
	// its name.
	eventually(t, "web of "+b+" answering", 60*time.Second, func() bool {
		return strings.HasPrefix(ask(node1, "web."+hostB, "/fetch?url=http://db:8080/"), "200 hello from db.1")
	})
	if out := ask(node1, "web."+hostB, "/fetch?url=http://"+dbAddr.String()+":8080/"); !strings.Contains(out, "fetch:") {
		t.Errorf("%s reaching %s's db on the other node at %s: %q, want a failure", b, a, dbAddr, out)
	}
	if out := ask(node1, "web."+hostB, "/resolve?name=db."+a+".internal"); !strings.Contains(out, "resolve:") {
		t.Errorf("%s resolving %s's db: %q, want a failure", b, a, out)
	}
	// Nor does a's web reach node2 itself through the mesh (its ingress
	// listens on every address, the gateway of a's network there too):
	// only its project's addresses.
	if out := ask(node1, "web."+hostA, fmt.Sprintf("/fetch?url=http://%s:80/", gatewayOf(dbAddr))); !strings.Contains(out, "fetch:") {
		t.Errorf("%s reaching node2's gateway %s over the mesh: %q, want a failure", a, gatewayOf(dbAddr), out)
	}

	// node2's ruche killed and started again: its WireGuard interface
	// (userspace here: it went with the process) comes back with the same
	// key, and so do its peers, routes and rules; web reaches db again.
	if err := tb.Kill("node2"); err != nil {
		t.Fatal(err)
	}
	if err := m.c.Restart("node2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web on node1 fetching db on node2 after node2's ruche restarted", 90*time.Second, func() bool {
		return strings.HasPrefix(ask(node1, "web."+hostA, "/fetch?url=http://db:8080/"), "200 hello from db.1")
	})
	if out := ask(node1, "web."+hostB, "/fetch?url=http://"+dbAddr.String()+":8080/"); !strings.Contains(out, "fetch:") {
		t.Errorf("after the restart, %s reaching %s's db at %s: %q, want a failure", b, a, dbAddr, out)
	}

	// Removed: the networks go from both nodes.
	m.must(t, "rm", a)
	m.must(t, "rm", b)
	for _, n := range tb.Nodes() {
		eventually(t, "no bridge of ruche's left on "+n.Name(), 60*time.Second, func() bool {
			out, err := n.Exec(ctx, "ip", "-o", "link", "show")
			return err == nil && !strings.Contains(string(out), "ruchbr")
		})
	}
}

// gatewayOf is the gateway of an address's /24: the node's own address
// on that network.
func gatewayOf(a netip.Addr) netip.Addr {
	return netip.PrefixFrom(a, 24).Masked().Addr().Next()
}

// TestMeshServerIngress: a manager without an agent (`ruche server`, no
// replica of its own) is on the mesh too, so its ingress reaches a
// replica on another node at its private address (no host port is
// published for routes on ruche's networks).
func TestMeshServerIngress(t *testing.T) {
	needDocker(t)
	needRoot(t, "the mesh test needs root (network namespaces, WireGuard, iptables)")
	netArgs := []string{"--networks", "ruche", "--private-range", meshRange, "--dns-upstream", freePort(t)}
	m := startCluster(t, 2, testbed.ClusterConfig{Server: true,
		Labels:      map[string][]string{"node2": {"zone=b"}},
		ManagerArgs: netArgs, AgentArgs: netArgs})
	p := uniq("e2e-meshs-")
	host := p + ".ruche.test"
	compose := `
services:
  db:
    image: @IMAGE@
    x-ruche:
      routes:
        - host: db.@HOST@
          port: 8080
          tls: none
`
	m.must(t, "deploy", "-f", writeCompose(t, strings.NewReplacer("@IMAGE@", image, "@HOST@", host).Replace(compose)), "-p", p)
	server := m.tb.Node("node1").Addr().String()
	eventually(t, "the server's ingress to db on node2", 60*time.Second, func() bool {
		out, _ := exec.Command("curl", "-sS", "--max-time", "5", "-H", "Host: db."+host, "http://"+server+"/").CombinedOutput()
		return strings.Contains(string(out), "hello from db.1 on node2")
	})
	m.must(t, "rm", p)
}
