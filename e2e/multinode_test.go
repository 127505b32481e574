package e2e

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/testbed"
)

// TestMultiNode runs the real binary on a 3-node testbed (network
// namespaces, a dockerd each; see internal/testbed): node1 runs `ruche up`,
// node2 and node3 `ruche agent --join`. One cluster for every step, in
// order; the faults come last. Labels: node1 and node2 zone=a, node3 zone=b.
func TestMultiNode(t *testing.T) {
	m := startMultiNode(t)

	t.Run("join", func(t *testing.T) {
		nodes := m.nodes(t)
		if len(nodes) != 3 {
			t.Fatalf("got %d nodes, want 3: %+v", len(nodes), nodes)
		}
		want := map[string]string{"node1": "a", "node2": "a", "node3": "b"}
		for _, n := range nodes {
			if n.Status != client.NodeReady || n.Labels["zone"] != want[n.ID] {
				t.Errorf("node %s: status %q zone %q, want ready, zone %q", n.ID, n.Status, n.Labels["zone"], want[n.ID])
			}
			if n.ID != "node1" && n.Addr != m.tb.Node(n.ID).Addr().String() {
				t.Errorf("node %s: addr %q, want %s", n.ID, n.Addr, m.tb.Node(n.ID).Addr())
			}
		}
		out := m.must(t, "node", "ls")
		for _, n := range []string{"node1", "node2", "node3"} {
			if !strings.Contains(out, n) {
				t.Errorf("node ls does not list %s:\n%s", n, out)
			}
		}
	})

	const proj = "mn"
	m.must(t, "deploy", "-f", writeCompose(t, multiCompose), "-p", proj)

	t.Run("placement", func(t *testing.T) {
		// 3 replicas, 3 nodes: one on each.
		got := m.waitPlaced(t, proj, "web", 3, nil)
		if nodes := nodesOf(got); !slices.Equal(nodes, []string{"node1", "node2", "node3"}) {
			t.Errorf("web runs on %v, want one replica on each node", nodes)
		}
	})

	t.Run("constraint and spread", func(t *testing.T) {
		if nodes := nodesOf(m.waitPlaced(t, proj, "zoneb", 2, nil)); !slices.Equal(nodes, []string{"node3", "node3"}) {
			t.Errorf("zoneb (node.labels.zone == b) runs on %v, want node3 only", nodes)
		}
		if nodes := nodesOf(m.waitPlaced(t, proj, "spread", 2, nil)); !slices.Equal(nodes, []string{"node1", "node2"}) {
			t.Errorf("spread (zone a, max_availability) runs on %v, want node1 and node2", nodes)
		}
	})

	t.Run("ps and logs across nodes", func(t *testing.T) {
		out := m.must(t, "ps", proj)
		for _, n := range []string{"node1", "node2", "node3"} {
			if !strings.Contains(out, n) {
				t.Errorf("ps does not show a replica on %s:\n%s", n, out)
			}
		}
		// hello logs "listening on :8080" when it starts, on every node.
		eventually(t, "logs of web.1..3", 30*time.Second, func() bool {
			out, _, err := m.c.Ruche(context.Background(), "logs", proj+"/web")
			if err != nil {
				return false
			}
			for _, r := range []string{"web.1", "web.2", "web.3"} {
				if !strings.Contains(out, r) {
					return false
				}
			}
			return strings.Count(out, "listening on") >= 3
		})
	})

	t.Run("ingress of node1 reaches a replica on node3", func(t *testing.T) {
		m.waitPlaced(t, proj, "routed", 1, nil)
		url := fmt.Sprintf("http://%s/", m.tb.Node("node1").Addr())
		eventually(t, "GET through node1's ingress", 30*time.Second, func() bool {
			out, err := exec.Command("curl", "-sS", "--max-time", "5", "-H", "Host: routed.mn.test", url).Output()
			return err == nil && strings.Contains(string(out), "hello from routed.1")
		})

		// `ruche logs -f` follows the replica on node3: the request shows up.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		follow := exec.CommandContext(ctx, rucheBin, "logs", "-f", proj+"/routed")
		follow.Env = append(os.Environ(), "RUCHE_CONFIG="+m.c.AdminConf())
		var out syncBuffer
		follow.Stdout, follow.Stderr = &out, &out
		if err := follow.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); follow.Wait() }()
		path := "/" + uniq("follow-")
		eventually(t, "the request in ruche logs -f", 30*time.Second, func() bool {
			exec.Command("curl", "-sS", "-o", "/dev/null", "--max-time", "5", "-H", "Host: routed.mn.test", url+path[1:]).Run()
			return strings.Contains(out.String(), path)
		})
	})

	t.Run("drain", func(t *testing.T) {
		m.needCommand(t, "node", "drain")
		m.needCommand(t, "node", "activate")
		m.must(t, "node", "drain", "node3")
		got := m.waitPlaced(t, proj, "web", 3, func(r client.Replica) bool { return r.Node != "node3" })
		if slices.Contains(nodesOf(got), "node3") {
			t.Errorf("web still on node3 after drain: %v", nodesOf(got))
		}
		eventually(t, "node3's web container stopped", 60*time.Second, func() bool {
			return m.containers(t, "node3", proj, "web") == 0
		})
		m.must(t, "node", "activate", "node3")
	})

	t.Run("node killed, then back", func(t *testing.T) {
		if m.replicasOn(t, proj, "web", "node2") == 0 {
			t.Fatalf("no web replica on node2 to move: %v", nodesOf(m.placed(t, proj, "web")))
		}
		if err := m.tb.Kill("node2"); err != nil {
			t.Fatal(err)
		}
		if err := m.c.WaitNode(context.Background(), "node2", client.NodeDown); err != nil {
			t.Fatal(err)
		}
		m.waitPlaced(t, proj, "web", 3, func(r client.Replica) bool { return r.Node != "node2" })

		// The agent comes back: what was replaced elsewhere stops on it.
		if err := m.c.Restart("node2"); err != nil {
			t.Fatal(err)
		}
		if err := m.c.WaitNode(context.Background(), "node2", client.NodeReady); err != nil {
			t.Fatal(err)
		}
		eventually(t, "3 web containers across the nodes, none surplus", 60*time.Second, func() bool {
			total := 0
			for _, n := range []string{"node1", "node2", "node3"} {
				total += m.containers(t, n, proj, "web")
			}
			return total == 3
		})
	})

	t.Run("node powered off, then on", func(t *testing.T) {
		// The whole machine goes: agent, dockerd and containers. The node
		// is one of the agents' with a web replica.
		target := ""
		for _, n := range []string{"node3", "node2"} {
			if target == "" && m.replicasOn(t, proj, "web", n) > 0 {
				target = n
			}
		}
		if target == "" {
			t.Fatalf("no web replica on node2 or node3: %v", nodesOf(m.placed(t, proj, "web")))
		}
		if err := m.tb.PowerOff(target); err != nil {
			t.Fatal(err)
		}
		if err := m.c.WaitNode(context.Background(), target, client.NodeDown); err != nil {
			t.Fatal(err)
		}
		m.waitPlaced(t, proj, "web", 3, func(r client.Replica) bool { return r.Node != target })
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := m.tb.PowerOn(ctx, target); err != nil {
			t.Fatal(err)
		}
		if err := m.c.Restart(target); err != nil {
			t.Fatal(err)
		}
		if err := m.c.WaitNode(ctx, target, client.NodeReady); err != nil {
			t.Fatal(err)
		}
		// zoneb can only run on node3 (and spread's second replica only
		// on node2): it comes back there.
		m.waitPlaced(t, proj, "zoneb", 2, func(r client.Replica) bool { return r.Node == "node3" })
		eventually(t, "3 web containers across the nodes", 60*time.Second, func() bool {
			total := 0
			for _, n := range []string{"node1", "node2", "node3"} {
				total += m.containers(t, n, proj, "web")
			}
			return total == 3
		})
	})

	t.Run("removed node refused", func(t *testing.T) {
		m.needCommand(t, "node", "rm")
		m.must(t, "node", "rm", "--force", "node3")
		if err := m.tb.Kill("node3"); err != nil {
			t.Fatal(err)
		}
		// Its agent starts again with the identity in its data dir: the
		// managers refuse its certificate, so it never shows up again.
		if err := m.c.Restart("node3"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			for _, n := range m.nodes(t) {
				if n.ID == "node3" {
					t.Fatalf("node3 is back after node rm: %+v", n)
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		b, _ := os.ReadFile(m.c.Process("node3").LogPath)
		refusal := ""
		for _, l := range strings.Split(string(b), "\n") {
			if ll := strings.ToLower(l); refusal == "" && (strings.Contains(ll, "answered 403") || strings.Contains(ll, "refused by the managers") || strings.Contains(ll, "forbidden")) {
				refusal = l
			}
		}
		if refusal == "" {
			t.Errorf("node3's agent log says nothing of a refusal:\n%s", tail(string(b), 20))
		}
		t.Logf("node3's agent: %s", refusal)
	})
}

const multiCompose = `
services:
  web:
    image: @IMAGE@
    deploy:
      replicas: 3
  zoneb:
    image: @IMAGE@
    deploy:
      replicas: 2
      placement:
        constraints: ["node.labels.zone == b"]
  spread:
    image: @IMAGE@
    deploy:
      replicas: 2
      placement:
        constraints: ["node.labels.zone == a"]
    x-ruche:
      spread: max_availability
  routed:
    image: @IMAGE@
    deploy:
      replicas: 1
      placement:
        constraints: ["node.labels.zone == b"]
    x-ruche:
      routes:
        - host: routed.mn.test
          port: 8080
          tls: none
`

type multiNode struct {
	tb *testbed.Testbed
	c  *testbed.Cluster
	cl *client.Client
}

func startMultiNode(t *testing.T) *multiNode {
	t.Helper()
	needDocker(t)
	needRoot(t, "the multi-node tests need root (network namespaces)")
	if out, err := exec.Command(rucheBin, "agent", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--join") {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ruche has no `agent --join`: %v %s", err, out)
		}
		t.Skip("ruche has no `agent --join` yet")
	}
	return startCluster(t, 3, testbed.ClusterConfig{Labels: map[string][]string{
		"node1": {"zone=a"}, "node2": {"zone=a"}, "node3": {"zone=b"},
	}})
}

// startCluster starts a testbed of n nodes (the hello image loaded in
// each) and a cluster of ruche on it (cc.Bin is rucheBin); both go when the
// test ends, after the nodes' logs if it failed.
func startCluster(t *testing.T, n int, cc testbed.ClusterConfig) *multiNode {
	t.Helper()
	tb, err := testbed.New(testbed.Config{Nodes: n, HostAddress: true, Docker: true,
		Images: []testbed.Image{{Ref: image, Package: "../examples/hello"}},
		Log:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := tb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	m := &multiNode{tb: tb}
	t.Cleanup(func() {
		if t.Failed() && m.c != nil {
			for _, n := range tb.Nodes() {
				if p := m.c.Process(n.Name()); p != nil {
					b, _ := os.ReadFile(p.LogPath)
					t.Logf("ruche log of %s:\n%s", n.Name(), tail(string(b), 60))
				}
			}
		}
		if err := tb.Close(); err != nil {
			t.Errorf("testbed close: %v", err)
		}
	})
	cc.Bin = rucheBin
	m.c, err = tb.StartCluster(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	if m.cl, err = m.c.Client(); err != nil {
		t.Fatal(err)
	}
	return m
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (m *multiNode) must(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, errOut, err := m.c.Ruche(ctx, args...)
	if err != nil {
		t.Fatalf("ruche %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// needCommand skips (fails in CI) when the CLI lacks a subcommand: cobra
// answers an unknown subcommand of a parent with its help and exit 0.
func (m *multiNode) needCommand(t *testing.T, parent, sub string) {
	t.Helper()
	out, _, _ := m.c.Ruche(context.Background(), parent, "--help")
	if strings.Contains(out, "\n  "+sub+" ") {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("ruche has no `%s %s`", parent, sub)
	}
	t.Skipf("ruche has no `%s %s` yet", parent, sub)
}

func (m *multiNode) nodes(t *testing.T) []client.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, err := m.cl.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

// placed lists a service's replicas meant to run that run ready.
func (m *multiNode) placed(t *testing.T, proj, svc string) []client.Replica {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := m.cl.Project(ctx, proj)
	if err != nil {
		return nil
	}
	var out []client.Replica
	for _, s := range p.Services {
		if s.Name != svc {
			continue
		}
		for _, r := range s.Replicas {
			if r.DesiredState == client.DesiredRunning && r.Status.State == client.StateRunning {
				out = append(out, r)
			}
		}
	}
	return out
}

// waitPlaced waits until exactly n replicas of svc run, all passing ok
// (nil: any), and returns them.
func (m *multiNode) waitPlaced(t *testing.T, proj, svc string, n int, ok func(client.Replica) bool) []client.Replica {
	t.Helper()
	var got []client.Replica
	deadline := time.Now().Add(90 * time.Second)
	for {
		got = m.placed(t, proj, svc)
		good := len(got) == n
		for _, r := range got {
			good = good && (ok == nil || ok(r))
		}
		if good {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: %d replicas running on %v, want %d (that pass the test): not within 90s\n%s",
				proj, svc, len(got), nodesOf(got), n, m.must(t, "ps", proj))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (m *multiNode) replicasOn(t *testing.T, proj, svc, node string) int {
	n := 0
	for _, r := range m.placed(t, proj, svc) {
		if r.Node == node {
			n++
		}
	}
	return n
}

// containers counts the running containers of a service in a node's
// own dockerd.
func (m *multiNode) containers(t *testing.T, node, proj, svc string) int {
	t.Helper()
	cli, err := m.tb.Node(node).Docker()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "ruche.project="+proj), filters.Arg("label", "ruche.service="+svc), filters.Arg("status", "running"))})
	if err != nil {
		t.Fatalf("%s: containers: %v", node, err)
	}
	return len(cs)
}

// nodesOf lists the replicas' nodes, sorted.
func nodesOf(rs []client.Replica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Node)
	}
	slices.Sort(out)
	return out
}

// syncBuffer is a bytes.Buffer a process writes while the test reads.
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
