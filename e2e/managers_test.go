package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/testbed"
)

// managerTiming is the raft timing the managers run with: a LAN's (see
// docs/benchmarks.md, "Managers (issue 5)").
var managerTiming = []string{"--store-election-ms", "500", "--store-heartbeat-ms", "50"}

// TestManagers runs three managers and two agents on a 5-node testbed:
// node1 `ruche server --advertise-addr`, node2 `ruche server --join`,
// node3 `ruche up --join` (manager and agent), node4 and node5 `ruche agent
// --join`. The leader is killed during a stream of deploys, then cut off.
func TestManagers(t *testing.T) {
	m := startManagers(t)
	ctx := context.Background()

	t.Run("membership", func(t *testing.T) {
		ms := m.managers(t, m.all())
		if len(ms) != 3 {
			t.Fatalf("got %d managers, want 3: %+v", len(ms), ms)
		}
		for _, mg := range ms {
			if !mg.Healthy || !mg.StoreMember || mg.StoreLearner || mg.APIURL == "" {
				t.Errorf("manager %+v: want healthy, a voting store member, with an API URL", mg)
			}
		}
		out := m.ruche(t, "manager", "ls")
		for _, n := range []string{"node1", "node2", "node3"} {
			if !strings.Contains(out, n) {
				t.Errorf("manager ls does not list %s:\n%s", n, out)
			}
		}
		conf, err := client.LoadConfig(m.conf)
		if err != nil || len(conf.Servers) < 3 {
			t.Errorf("admin.conf servers: %v (%v), want the three managers", conf, err)
		}
	})

	m.deploy(t, m.all(), "base", 3)
	base := m.waitRunning(t, "base", 3)

	t.Run("logs of another manager's replica", func(t *testing.T) {
		// A replica on node3 (`ruche up --join`); the CLI asks the first
		// manager of admin.conf, node1, which reads node3's replica
		// through node3's node API (<advertise-addr>:7444).
		p := tinyProject("logsm")
		svc := p.Services["web"]
		svc.Replicas = 1
		svc.Placement.Constraints = []string{"node.id == node3"}
		p.Services["web"] = svc
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := m.client(t, m.all()).Deploy(ctx, p, false); err != nil {
			t.Fatal(err)
		}
		if got := m.waitRunning(t, "logsm", 1); got[0].Node != "node3" {
			t.Fatalf("replica on %s, want node3", got[0].Node)
		}
		conf, err := client.LoadConfig(m.conf)
		if err != nil || len(conf.Servers) == 0 || !strings.Contains(conf.Servers[0], m.tb.Node("node1").Addr().String()) {
			t.Fatalf("admin.conf servers %v (%v): want node1 first", conf.Servers, err)
		}
		var out []byte
		m.eventually(t, 30*time.Second, "logs of logsm's web.1 through node1", func() bool {
			cmd := exec.Command(rucheBin, "logs", "logsm/web")
			cmd.Env = append(os.Environ(), "RUCHE_CONFIG="+m.conf)
			out, _ = cmd.CombinedOutput()
			return strings.Contains(string(out), "web.1 | ") && !strings.Contains(string(out), "error:")
		})
		if t.Failed() {
			t.Logf("last output: %s", out)
		}
	})

	t.Run("kill the leader during deploys", func(t *testing.T) {
		leader := m.leader(t, m.all())
		t.Logf("leader: %s", leader)
		var (
			mu     sync.Mutex
			acked  []string
			after  time.Duration = -1 // first ack of a deploy sent after the kill
			killAt time.Time
		)
		stop := make(chan struct{})
		done := make(chan struct{})
		cl := m.client(t, m.all())
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				name := fmt.Sprintf("s%03d", i)
				sent := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				_, err := cl.Deploy(rctx, tinyProject(name), false)
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				acked = append(acked, name)
				if !killAt.IsZero() && sent.After(killAt) && after < 0 {
					after = time.Since(killAt)
				}
				mu.Unlock()
			}
		}()
		time.Sleep(2 * time.Second)
		mu.Lock()
		killAt = time.Now()
		mu.Unlock()
		m.proc(leader).Kill()
		down := m.watchDown(t, leader, 8*time.Second)
		time.Sleep(8 * time.Second)
		close(stop)
		<-done

		mu.Lock()
		defer mu.Unlock()
		if after < 0 {
			t.Fatalf("no deploy was acknowledged after the leader (%s) was killed", leader)
		}
		t.Logf("failover: first write acknowledged %s after SIGKILL of %s; %d deploys acknowledged in all", after.Round(time.Millisecond), leader, len(acked))
		projects, err := m.client(t, m.others(leader)).Projects(ctx)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, p := range projects {
			have[p.Name] = true
		}
		for _, name := range acked {
			if !have[name] {
				t.Errorf("deploy %s was acknowledged but the project is gone", name)
			}
		}
		if nodes := <-down; len(nodes) > 0 {
			t.Errorf("nodes marked down during the change of leader: %v", nodes)
		}
		newLeader := m.leader(t, m.others(leader))
		if newLeader == leader || newLeader == "" {
			t.Errorf("leader after the kill: %q", newLeader)
		}
		got := m.waitRunning(t, "base", 3)
		if !sameReplicas(base, got) {
			t.Errorf("replicas changed across the change of leader:\nbefore %v\nafter  %v", containerIDs(base), containerIDs(got))
		}
		m.restart(t, leader)
		m.waitHealthy(t, leader)
	})

	t.Run("partition the leader", func(t *testing.T) {
		leader := m.leader(t, m.all())
		others := m.others(leader)
		var rest []string
		for _, n := range m.tb.Nodes() {
			if n.Name() != leader {
				rest = append(rest, n.Name())
			}
		}
		stopped := func() int {
			b, _ := os.ReadFile(m.proc(leader).LogPath)
			return strings.Count(string(b), "not leading any more")
		}
		before := stopped()
		cut := time.Now()
		if err := m.tb.Partition([]string{leader}, rest); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				m.tb.Heal()
			}
		}()
		var newLeader string
		m.eventually(t, 30*time.Second, "a new leader among the others", func() bool {
			l, err := m.tryLeader(others)
			newLeader = l
			return err == nil && l != "" && l != leader
		})
		t.Logf("partition: %s leads %s after %s was cut off", newLeader, time.Since(cut).Round(time.Millisecond), leader)
		m.eventually(t, 30*time.Second, leader+" stops leading", func() bool { return stopped() > before })
		t.Logf("partition: %s stopped leading %s after it was cut off", leader, time.Since(cut).Round(time.Millisecond))
		if err := m.tb.Heal(); err != nil {
			t.Fatal(err)
		}
		healed = true
		m.waitHealthy(t, leader)
		// It follows: a write through it is accepted, and the leader stays.
		m.eventually(t, 30*time.Second, "a deploy through "+leader, func() bool {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := m.client(t, []string{leader}).Deploy(rctx, tinyProject("after-heal"), false)
			return err == nil
		})
		if l := m.leader(t, m.all()); l == leader {
			t.Logf("note: %s leads again (it may win a later election)", leader)
		}
	})

	t.Run("remove a manager", func(t *testing.T) {
		cmd := exec.Command(rucheBin, "manager", "rm", "node2")
		cmd.Env = append(os.Environ(), "RUCHE_CONFIG="+m.conf)
		// Refused: 2 managers would be left (or, if a manager's record
		// lapsed just now, too few healthy ones).
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--force") {
			t.Errorf("manager rm node2 without --force: %v %s; want refused", err, out)
		}
		t.Logf("manager rm node2 without --force: %s", strings.TrimSpace(string(out)))
		m.eventually(t, 60*time.Second, "manager rm --force node2", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return m.client(t, []string{"node1", "node3"}).RemoveManager(ctx, "node2", true) == nil
		})
		select {
		case <-m.proc("node2").Done():
		case <-time.After(60 * time.Second):
			t.Fatal("the removed manager node2 still runs")
		}
		// Its record lives until its lease (4 s) ends.
		m.eventually(t, 30*time.Second, "two managers listed", func() bool {
			ms := m.managers(t, []string{"node1", "node3"})
			return len(ms) == 2 && !slices.ContainsFunc(ms, func(mg client.Manager) bool { return mg.Name == "node2" })
		})
		m.deploy(t, []string{"node1", "node3"}, "after-rm", 0)
	})
}

// managersEnv is the 5-node cluster of TestManagers.
type managersEnv struct {
	tb    *testbed.Testbed
	conf  string // node1's admin.conf
	mu    sync.Mutex
	procs map[string]*testbed.Proc
}

var managerNodes = []string{"node1", "node2", "node3"}

func startManagers(t *testing.T) *managersEnv {
	t.Helper()
	needDocker(t)
	needRoot(t, "the managers test needs root (network namespaces)")
	if out, err := exec.Command(rucheBin, "server", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--join") {
		t.Fatalf("ruche has no `server --join`: %v %s", err, out)
	}
	tb, err := testbed.New(testbed.Config{Nodes: 5, HostAddress: true, Docker: true,
		Images: []testbed.Image{{Ref: image, Package: "../examples/hello"}},
		Log:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := tb.Start(ctx); err != nil {
		tb.Close()
		t.Fatal(err)
	}
	m := &managersEnv{tb: tb, procs: map[string]*testbed.Proc{}}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range tb.Nodes() {
				if p := m.proc(n.Name()); p != nil {
					b, _ := os.ReadFile(p.LogPath)
					t.Logf("ruche log of %s:\n%s", n.Name(), tail(string(b), 30))
				}
			}
		}
		if err := tb.Close(); err != nil {
			t.Errorf("testbed close: %v", err)
		}
	})
	n1 := tb.Node("node1")
	m.conf = filepath.Join(m.dataDir("node1"), "admin.conf")
	m.start(t, "node1", append([]string{"server"}, m.managerArgs("node1")...)...)
	m.eventually(t, 90*time.Second, "node1 answers", func() bool {
		_, err := m.tryLeader([]string{"node1"})
		return err == nil
	})
	join := "https://" + net.JoinHostPort(n1.Addr().String(), testbed.APIPort)
	for _, n := range []struct{ name, cmd string }{{"node2", "server"}, {"node3", "up"}} {
		tok := m.token(t, client.JoinRoleManager)
		args := append([]string{n.cmd, "--join", join, "--token", tok.Token, "--ca-hash", tok.CAHash}, m.managerArgs(n.name)...)
		m.start(t, n.name, args...)
		m.waitHealthy(t, n.name)
	}
	for _, n := range []string{"node4", "node5"} {
		tok := m.token(t, client.JoinRoleAgent)
		m.start(t, n, "agent", "--join", join, "--token", tok.Token, "--ca-hash", tok.CAHash, "--data-dir", m.dataDir(n),
			"--advertise-addr", tb.Node(n).Addr().String(), "--node-name", n)
	}
	for _, n := range []string{"node3", "node4", "node5"} {
		m.eventually(t, 90*time.Second, n+" ready", func() bool {
			nodes, err := m.client(t, m.all()).Nodes(ctx)
			if err != nil {
				return false
			}
			return slices.ContainsFunc(nodes, func(nd client.Node) bool { return nd.ID == n && nd.Status == client.NodeReady })
		})
	}
	return m
}

func (m *managersEnv) dataDir(node string) string {
	return filepath.Join(m.tb.Node(node).Dir(), "ruche")
}

func (m *managersEnv) managerArgs(node string) []string {
	addr := m.tb.Node(node).Addr().String()
	args := []string{"--data-dir", m.dataDir(node), "--api-addr", net.JoinHostPort(addr, testbed.APIPort),
		"--advertise-addr", addr, "--node-name", node, "--http-addr", "", "--https-addr", ""}
	return append(args, managerTiming...)
}

func (m *managersEnv) start(t *testing.T, node string, args ...string) {
	t.Helper()
	if err := os.MkdirAll(m.dataDir(node), 0o700); err != nil {
		t.Fatal(err)
	}
	p, err := m.tb.Node(node).Start(rucheBin, args...)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.procs[node] = p
	m.mu.Unlock()
}

// restart starts a killed manager again, without its join flags.
func (m *managersEnv) restart(t *testing.T, node string) {
	t.Helper()
	old := m.proc(node)
	<-old.Done()
	var args []string
	skip := false
	for _, a := range old.Args[1:] {
		switch {
		case skip:
			skip = false
		case a == "--join" || a == "--token" || a == "--ca-hash":
			skip = true
		default:
			args = append(args, a)
		}
	}
	m.start(t, node, args...)
}

func (m *managersEnv) proc(node string) *testbed.Proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.procs[node]
}

func (m *managersEnv) all() []string { return managerNodes }

func (m *managersEnv) others(node string) []string {
	var out []string
	for _, n := range managerNodes {
		if n != node {
			out = append(out, n)
		}
	}
	return out
}

// client talks to the given managers, in order, with node1's admin token.
func (m *managersEnv) client(t *testing.T, nodes []string) *client.Client {
	t.Helper()
	c, err := m.tryClient(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (m *managersEnv) tryClient(nodes []string) (*client.Client, error) {
	conf, err := client.LoadConfig(m.conf)
	if err != nil {
		return nil, err
	}
	conf.Servers = nil
	for _, n := range nodes {
		conf.Servers = append(conf.Servers, "https://"+net.JoinHostPort(m.tb.Node(n).Addr().String(), testbed.APIPort))
	}
	return client.New(conf)
}

func (m *managersEnv) tryLeader(nodes []string) (string, error) {
	c, err := m.tryClient(nodes)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	return st.Leader, nil
}

func (m *managersEnv) leader(t *testing.T, nodes []string) string {
	t.Helper()
	var l string
	m.eventually(t, 30*time.Second, "a leader", func() bool {
		var err error
		l, err = m.tryLeader(nodes)
		return err == nil && l != ""
	})
	return l
}

func (m *managersEnv) managers(t *testing.T, nodes []string) []client.Manager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := m.client(t, nodes).Managers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func (m *managersEnv) waitHealthy(t *testing.T, node string) {
	t.Helper()
	m.eventually(t, 90*time.Second, "manager "+node+" healthy", func() bool {
		c, err := m.tryClient(m.all())
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ms, err := c.Managers(ctx)
		return err == nil && slices.ContainsFunc(ms, func(mg client.Manager) bool {
			return mg.Name == node && mg.Healthy && mg.StoreMember && !mg.StoreLearner
		})
	})
}

func (m *managersEnv) token(t *testing.T, role string) *client.JoinToken {
	t.Helper()
	var tok *client.JoinToken
	m.eventually(t, 30*time.Second, "a "+role+" token", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := m.tryClient(m.all())
		if err != nil {
			return false
		}
		tok, err = c.CreateJoinToken(ctx, role, 0)
		return err == nil
	})
	return tok
}

func (m *managersEnv) ruche(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(rucheBin, args...)
	cmd.Env = append(os.Environ(), "RUCHE_CONFIG="+m.conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ruche %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (m *managersEnv) eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (m *managersEnv) deploy(t *testing.T, nodes []string, name string, replicas int) {
	t.Helper()
	p := tinyProject(name)
	svc := p.Services["web"]
	svc.Replicas = replicas
	p.Services["web"] = svc
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.client(t, nodes).Deploy(ctx, p, false); err != nil {
		t.Fatal(err)
	}
}

// waitRunning waits until n replicas of project's web service run.
func (m *managersEnv) waitRunning(t *testing.T, project string, n int) []client.Replica {
	t.Helper()
	var got []client.Replica
	m.eventually(t, 90*time.Second, fmt.Sprintf("%d replicas of %s running", n, project), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := m.tryClient(m.all())
		if err != nil {
			return false
		}
		p, err := c.Project(ctx, project)
		if err != nil {
			return false
		}
		got = nil
		for _, s := range p.Services {
			for _, r := range s.Replicas {
				if r.DesiredState == client.DesiredRunning && r.Status.State == client.StateRunning {
					got = append(got, r)
				}
			}
		}
		return len(got) == n
	})
	return got
}

// watchDown polls the nodes for d and reports the nodes (other than
// except's own) seen down.
func (m *managersEnv) watchDown(t *testing.T, except string, d time.Duration) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		seen := map[string]bool{}
		for end := time.Now().Add(d + 5*time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
			c, err := m.tryClient(m.others(except))
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			nodes, err := c.Nodes(ctx)
			cancel()
			if err != nil {
				continue
			}
			for _, n := range nodes {
				if n.ID != except && n.Status == client.NodeDown {
					seen[n.ID] = true
				}
			}
		}
		var down []string
		for n := range seen {
			down = append(down, n)
		}
		slices.Sort(down)
		out <- down
	}()
	return out
}

// tinyProject is a project with one service "web" of no replicas: a
// deploy that is a store write and nothing else.
func tinyProject(name string) *client.ProjectSpec {
	return &client.ProjectSpec{Name: name, Services: map[string]client.ServiceSpec{
		"web": {Name: "web", Image: image, Replicas: 0},
	}}
}

func containerIDs(rs []client.Replica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID+"="+r.Status.ContainerID)
	}
	slices.Sort(out)
	return out
}

func sameReplicas(a, b []client.Replica) bool { return slices.Equal(containerIDs(a), containerIDs(b)) }
