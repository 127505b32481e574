package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// TestReachAcrossNodes: a manager (`ruche up --advertise-addr 127.0.0.1`)
// and an agent (`ruche agent`, its own ingress and node API) on loopback,
// one replica of a routed service on each (spread max_availability). Each
// node's ingress reaches both replicas (the other node's through the port
// its agent published for the route), the agent serves a TLS route with the
// certificate the managers hold, and `ruche logs` shows the output of both
// (the agent's through its node API).
// reachEnv is a manager and an agent on loopback with one replica of a
// routed service on each.
type reachEnv struct {
	p                     *platform
	a                     *agentProc
	node, proj, host      string
	agentHTTP, agentHTTPS string
	agentMetrics          string // the agent's --metrics-addr
}

// extra is more of the service's keys, as YAML lines indented by four.
func startReach(t *testing.T, extra string) *reachEnv {
	p := startPlatform(t, append([]string{"--advertise-addr", "127.0.0.1", "--node-api-addr", freePort(t)}, agentBeside...)...)
	agentHTTP, agentHTTPS, agentMetrics := freePort(t), freePort(t), freePort(t)
	a, node := joinAgent(t, p, "e2e-reach-", agentHTTP, agentHTTPS, "--metrics-addr", agentMetrics)

	proj := uniq("e2e-reach-")
	cleanupProject(t, p, proj)
	host := proj + ".ruche.test"
	file := writeCompose(t, reachCompose(host, extra, "", 1))
	// One replica first: both nodes share one Docker engine here, and two
	// agents creating the project network at once would make two networks
	// of one name; the second replica then finds it.
	p.must("deploy", "-f", file, "-p", proj)
	p.must("scale", proj+"/web=2")
	eventually(t, "one replica ready on each node", 90*time.Second, func() bool {
		web := service(t, p.project(proj), "web")
		nodes := map[string]bool{}
		for _, r := range running(web) {
			if r.Status.Ready {
				nodes[r.Node] = true
			}
		}
		return web.Ready == 2 && len(nodes) == 2
	})
	return &reachEnv{p: p, a: a, node: node, proj: proj, host: host, agentHTTP: agentHTTP, agentHTTPS: agentHTTPS, agentMetrics: agentMetrics}
}

// reachCompose is the service of startReach: extra is more of its keys
// (YAML lines indented by four), routes more of its routes (indented by
// eight).
func reachCompose(host, extra, routes string, replicas int) string {
	return strings.NewReplacer("@IMAGE@", image, "@HOST@", host, "@EXTRA@", extra, "@ROUTES@", routes, "@N@", strconv.Itoa(replicas)).Replace(`
services:
  web:
    image: @IMAGE@
@EXTRA@
    healthcheck:
      test: ["CMD", "/hello", "health"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: @N@
    x-ruche:
      spread: max_availability
      routes:
        - host: @HOST@
          port: 8080
        - host: tls.@HOST@
          port: 8080
          tls: internal
@ROUTES@
`)
}

func TestReachAcrossNodes(t *testing.T) {
	e := startReach(t, "")
	p, proj, host, agentHTTP, agentHTTPS := e.p, e.proj, e.host, e.agentHTTP, e.agentHTTPS
	for _, r := range running(service(t, p.project(proj), "web")) {
		var route []client.PortBinding
		for _, b := range r.Status.Ports {
			if b.Route {
				route = append(route, b)
			}
		}
		if len(route) != 1 || route[0].HostIP != "127.0.0.1" || route[0].Target != 8080 || route[0].Published == 0 {
			t.Errorf("replica %s on %s: route bindings %+v, want one 8080 on 127.0.0.1", r.Name(), r.Node, route)
		}
	}

	for name, addr := range map[string]string{"manager": p.httpAddr, "agent": agentHTTP} {
		port := portOf(t, addr)
		seen := map[string]bool{}
		eventually(t, "the "+name+"'s ingress reaches both replicas", 30*time.Second, func() bool {
			out, err := curl(t, "--resolve", host+":"+port+":127.0.0.1", "http://"+host+":"+port+"/")
			if err == nil && strings.HasPrefix(out, "hello from web.") {
				seen[strings.Fields(out)[2]] = true
			}
			return seen["web.1"] && seen["web.2"]
		})
	}

	// The TLS route on the agent's ingress, with the certificate the
	// managers hold (internal CA) streamed to the agent.
	ca := filepath.Join(p.dataDir, "pki", "ca.crt")
	tlsHost := "tls." + host
	port := portOf(t, agentHTTPS)
	seen := map[string]bool{}
	eventually(t, "the agent's HTTPS reaches both replicas", 60*time.Second, func() bool {
		out, err := curl(t, "--cacert", ca, "--resolve", tlsHost+":"+port+":127.0.0.1", "https://"+tlsHost+":"+port+"/")
		if err == nil && strings.HasPrefix(out, "hello from web.") {
			seen[strings.Fields(out)[2]] = true
		}
		return seen["web.1"] && seen["web.2"]
	})
	hport := portOf(t, agentHTTP)
	code, err := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "--resolve", tlsHost+":"+hport+":127.0.0.1", "http://"+tlsHost+":"+hport+"/")
	if err != nil || code != "308" {
		t.Errorf("plain HTTP to the TLS route on the agent: %q %v, want 308", code, err)
	}

	// The agent's own metrics: its ingress counted the requests above per
	// route; the managers list it as a scrape target.
	metrics, err := curl(t, "http://"+e.agentMetrics+"/metrics")
	for _, want := range []string{`ruche_proxy_requests_total{code_class="2xx",route="` + proj + `/web"}`,
		"ruche_node_cert_expiry_seconds ", "ruche_agent_container_starts_total "} {
		if err != nil || !strings.Contains(metrics, want) {
			t.Errorf("the agent's /metrics (%v) lacks %s", err, want)
		}
	}
	cfg, err := client.LoadConfig(filepath.Join(p.dataDir, "admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := c.MetricsTargets(context.Background())
	var agentListed, managerListed bool
	for _, g := range targets {
		agentListed = agentListed || (g.Labels["ruche_node"] == e.node && len(g.Targets) == 1 && g.Targets[0] == e.agentMetrics)
		managerListed = managerListed || (g.Labels["ruche_manager"] != "" && g.Labels["__scheme__"] == "https")
	}
	if err != nil || !agentListed || !managerListed {
		t.Errorf("metrics targets %+v (%v): want the agent's %s and the manager's API", targets, err, e.agentMetrics)
	}

	eventually(t, "logs of both replicas", 30*time.Second, func() bool {
		out, _, code := p.ruche("logs", proj+"/web")
		return code == 0 && strings.Contains(out, "web.1 | ") && strings.Contains(out, "web.2 | ") && !strings.Contains(out, "error:")
	})
}

// TestReachLogsFollow: `ruche logs -f` follows the replicas of both nodes,
// new ones included; when the agent goes away, its node is reported as one
// line and the stream goes on.
func TestReachLogsFollow(t *testing.T) {
	e := startReach(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rucheBin, "logs", "-f", e.proj+"/web")
	cmd.Env = append(os.Environ(), "RUCHE_CONFIG="+filepath.Join(e.p.dataDir, "admin.conf"))
	lines := startLines(t, cmd)
	defer func() { cancel(); cmd.Wait() }()
	var seen []string
	// wait returns once a line (any seen so far, in any order) matches.
	wait := func(what string, match func(string) bool) {
		t.Helper()
		for _, l := range seen {
			if match(l) {
				return
			}
		}
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("logs -f ended before %s; lines: %q", what, seen)
				}
				seen = append(seen, l)
				if match(l) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("logs -f: no %s; lines: %q", what, seen)
			}
		}
	}
	listening := func(replica string) func(string) bool {
		return func(l string) bool { return strings.HasPrefix(l, replica+" | ") && strings.Contains(l, "listening on") }
	}
	wait("web.1 starting", listening("web.1"))
	wait("web.2 starting", listening("web.2"))
	e.p.must("scale", e.proj+"/web=4")
	wait("web.3 starting", listening("web.3"))
	wait("web.4 starting", listening("web.4"))

	e.a.stop()
	wait("the agent's node reported", func(l string) bool {
		return strings.HasPrefix(l, "error: node "+e.node+": ")
	})
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("logs -f ended when one node went away; lines: %q", seen)
		}
		seen = append(seen, l)
	case <-time.After(2 * time.Second): // still streaming
	}
	// Back (its saved identity), so that the project's removal completes.
	e.a.start()
}

// TestReachNewRoutePort: a route added to a running service on a port its
// replicas did not publish yet reaches the replicas on both nodes: the
// deploy replaces them (a rolling update), and the new ones publish it.
func TestReachNewRoutePort(t *testing.T) {
	extra := "    environment:\n      HELLO_EXTRA_PORT: \"9090\""
	e := startReach(t, extra)
	p := e.p
	admin := "admin." + e.host
	route := "        - host: " + admin + "\n          port: 9090"
	out := p.must("deploy", "-f", writeCompose(t, reachCompose(e.host, extra, route, 2)), "-p", e.proj)
	if !strings.Contains(out, "new target port 9090") {
		t.Errorf("deploy output does not say why the replicas are replaced:\n%s", out)
	}
	for name, addr := range map[string]string{"manager": p.httpAddr, "agent": e.agentHTTP} {
		port := portOf(t, addr)
		seen := map[string]bool{}
		eventually(t, "the "+name+"'s ingress reaches both replicas on the new port", 90*time.Second, func() bool {
			out, err := curl(t, "--resolve", admin+":"+port+":127.0.0.1", "http://"+admin+":"+port+"/")
			if err == nil && strings.HasPrefix(out, "hello from web.") {
				seen[strings.Fields(out)[2]] = true
			}
			return seen["web.1"] && seen["web.2"]
		})
	}
}
