package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// agentProc is one `ruche agent` process.
type agentProc struct {
	t       *testing.T
	args    []string
	cmd     *exec.Cmd
	logPath string
}

func (a *agentProc) start() {
	a.t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		a.t.Fatal(err)
	}
	defer logf.Close()
	a.cmd = exec.Command(rucheBin, a.args...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
}

// stop ends the agent with SIGTERM (by its pid) and waits for it.
func (a *agentProc) stop() {
	stopProcess(a.t, a.cmd, "ruche agent")
	a.cmd = nil
}

func (p *platform) nodes() []client.Node {
	p.t.Helper()
	var ns []client.Node
	if err := json.Unmarshal([]byte(p.must("node", "ls", "-o", "json")), &ns); err != nil {
		p.t.Fatalf("node ls -o json: %v", err)
	}
	return ns
}

// TestAgentJoins: a second node joins the platform through the real join
// flow (token, CA pin, node certificate, mutual TLS) on loopback, with its
// own data dir, on the same Docker engine (its containers are told apart by
// their ruche.node label); replicas constrained to it run there, with a
// secret fetched over mutual TLS; restarted without --join, it adopts
// them. A join token serves once.
func TestAgentJoins(t *testing.T) {
	p := startPlatform(t, agentBeside...)
	out := p.must("token", "create")
	if !strings.Contains(out, "ruche agent --join https://") || !strings.Contains(out, "--ca-hash sha256:") {
		t.Fatalf("token create does not print the join command:\n%s", out)
	}
	var jt client.JoinToken
	if err := json.Unmarshal([]byte(p.must("token", "create", "--ttl", "10m", "-o", "json")), &jt); err != nil {
		t.Fatal(err)
	}
	if len(jt.Managers) == 0 {
		t.Fatalf("token has no manager URL: %+v", jt)
	}

	// ls shows unused tokens by ID, rm revokes one.
	var spare client.JoinToken
	json.Unmarshal([]byte(p.must("token", "create", "-o", "json")), &spare)
	if ls := p.must("token", "ls"); !strings.Contains(ls, spare.ID) || strings.Contains(ls, spare.Token) {
		t.Fatalf("token ls:\n%s", ls)
	}
	p.must("token", "rm", spare.ID)
	if ls := p.must("token", "ls"); strings.Contains(ls, spare.ID) {
		t.Fatalf("token ls after rm:\n%s", ls)
	}

	node := uniq("e2e-agent-")
	dataDir := t.TempDir()
	a := &agentProc{t: t, logPath: filepath.Join(dataDir, "agent.log"), args: []string{"agent",
		"--join", jt.Managers[0], "--token", jt.Token, "--ca-hash", jt.CAHash,
		"--data-dir", dataDir, "--node-name", node, "--node-api-addr", freePort(t), "--http-addr", "", "--https-addr", "",
		"--label", "zone=e2e", "--log-level", "debug"}}
	a.start()
	t.Cleanup(func() {
		a.stop()
		b, _ := os.ReadFile(a.logPath)
		if t.Failed() {
			t.Logf("ruche agent log:\n%s", failedLog(string(b), 60))
		}
		if strings.Contains(string(b), jt.Token) {
			t.Errorf("the join token is in the agent's log")
		}
		if b, _ := os.ReadFile(p.logPath); strings.Contains(string(b), jt.Token) {
			t.Errorf("the join token is in the manager's log")
		}
	})
	eventually(t, "two nodes ready", 60*time.Second, func() bool {
		ns := p.nodes()
		ready := 0
		for _, n := range ns {
			if n.Status == "ready" {
				ready++
			}
		}
		return len(ns) == 2 && ready == 2
	})
	for _, n := range p.nodes() {
		if n.ID == node && (n.Role != "agent" || n.Labels["zone"] != "e2e" || n.Addr != "127.0.0.1" || n.Capacity.CPUs == 0) {
			t.Fatalf("agent node record %+v", n)
		}
	}
	for _, f := range []string{"node.crt", "node.key", "ca.crt", "agent.json"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			t.Fatalf("identity file: %v", err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dataDir, "node.key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("node.key mode %v, want 0600", st.Mode().Perm())
	}

	// The token is used up (given here through the environment).
	other := exec.Command(rucheBin, "agent", "--join", jt.Managers[0], "--ca-hash", jt.CAHash,
		"--data-dir", t.TempDir(), "--node-name", uniq("e2e-again-"))
	other.Env = append(os.Environ(), "RUCHE_JOIN_TOKEN="+jt.Token)
	b, err := other.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(b), "join refused: token invalid or expired") {
		t.Fatalf("second join with one token: %v\n%s", err, b)
	}

	proj := uniq("e2e-join-")
	cleanupProject(t, p, proj)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pw.txt"), []byte("s3cret"), 0o600)
	compose := strings.NewReplacer("@IMAGE@", image, "@NODE@", node).Replace(`
services:
  web:
    image: @IMAGE@
    ports: ["8080"]
    secrets: [pw]
    healthcheck:
      test: ["CMD", "/hello", "health"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 2
      placement:
        constraints: ["node.id == @NODE@"]
secrets:
  pw:
    file: ./pw.txt
`)
	file := filepath.Join(dir, "compose.yml")
	os.WriteFile(file, []byte(compose), 0o644)
	p.must("deploy", "-f", file, "-p", proj)
	eventually(t, "two replicas ready on the agent", 90*time.Second, func() bool {
		return service(t, p.project(proj), "web").Ready == 2
	})
	web := service(t, p.project(proj), "web")
	for _, r := range running(web) {
		if r.Node != node {
			t.Fatalf("replica %s on %s, want %s", r.Name(), r.Node, node)
		}
		if code, _ := get(t, hostPort(t, r), "/"); code != 200 {
			t.Fatalf("replica %s answers %d", r.Name(), code)
		}
	}
	before := containersOf(t, proj)
	if len(before) != 2 {
		t.Fatalf("%d containers, want 2", len(before))
	}
	for _, id := range before {
		c, err := docker(t).ContainerInspect(t.Context(), id)
		if err != nil || c.Config.Labels["ruche.node"] != node {
			t.Fatalf("container %s: node label %q, %v", id, c.Config.Labels["ruche.node"], err)
		}
	}

	// Restart without --join: the saved identity, the same containers.
	a.stop()
	a.args = []string{"agent", "--data-dir", dataDir, "--node-api-addr", freePort(t), "--http-addr", "", "--https-addr", "", "--log-level", "debug"}
	a.start()
	// The restarted agent works: a third replica comes up beside the two
	// adopted ones.
	p.must("scale", proj+"/web=3")
	eventually(t, "three replicas ready after the agent's restart", 90*time.Second, func() bool {
		return service(t, p.project(proj), "web").Ready == 3
	})
	after := containersOf(t, proj)
	for task, id := range before {
		if after[task] != id {
			t.Fatalf("containers changed across the agent's restart:\nbefore %v\nafter  %v", before, after)
		}
	}
	if len(after) != 3 {
		t.Fatalf("%d containers after scaling to 3", len(after))
	}
}

// joinedAgent starts an agent that joins p as node with a new token and
// dataDir, and waits for its node to be ready. exited is closed when the
// process ends (its error in exitErr); at cleanup the agent is stopped if
// it still runs and, if the test failed, its log shown.
type joinedAgent struct {
	*agentProc
	exited  chan struct{}
	exitErr error
}

func startJoinedAgent(t *testing.T, p *platform, node, dataDir string) *joinedAgent {
	t.Helper()
	var jt client.JoinToken
	if err := json.Unmarshal([]byte(p.must("token", "create", "--ttl", "10m", "-o", "json")), &jt); err != nil {
		t.Fatal(err)
	}
	a := &joinedAgent{agentProc: &agentProc{t: t, logPath: filepath.Join(dataDir, "agent.log"), args: []string{"agent",
		"--join", jt.Managers[0], "--token", jt.Token, "--ca-hash", jt.CAHash,
		"--data-dir", dataDir, "--node-name", node, "--node-api-addr", freePort(t), "--http-addr", "", "--https-addr", ""}}}
	a.run()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			a.cmd.Process.Signal(syscall.SIGTERM)
			<-a.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(a.logPath)
			t.Logf("ruche agent log (%s):\n%s", dataDir, failedLog(string(b), 40))
		}
	})
	waitNodeStatus(t, p, node, "ready")
	return a
}

// run starts the agent process (again, with its data dir's identity).
func (a *joinedAgent) run() {
	a.start()
	a.exited = make(chan struct{})
	go func() { a.exitErr = a.cmd.Wait(); close(a.exited) }()
}

// stopsWith waits for the agent to exit by itself, non-zero, having logged
// each of want.
func (a *joinedAgent) stopsWith(why string, want ...string) {
	t := a.t
	t.Helper()
	select {
	case <-a.exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("the agent still runs 90s after %s", why)
	}
	if ee, ok := a.exitErr.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("agent exit: got %v, want a non-zero exit", a.exitErr)
	}
	b, _ := os.ReadFile(a.logPath)
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Errorf("agent output lacks %q:\n%s", w, tail(string(b), 20))
		}
	}
}

func waitNodeStatus(t *testing.T, p *platform, node, status string) {
	t.Helper()
	eventually(t, "node "+node+" "+status, 60*time.Second, func() bool {
		for _, n := range p.nodes() {
			if n.ID == node && n.Status == status {
				return true
			}
		}
		return false
	})
}

// TestRemovedAgentStops: after `ruche node rm --force`, the node's agent
// stops by itself, non-zero, saying why and that its containers are left
// as they are (instead of retrying against the managers forever).
func TestRemovedAgentStops(t *testing.T) {
	p := startPlatform(t, agentBeside...)
	node := uniq("e2e-rm-")
	a := startJoinedAgent(t, p, node, t.TempDir())
	p.must("node", "rm", node, "--force")
	a.stopsWith("ruche node rm", "this node was removed from the cluster (ruche node rm); stopping", "containers are left as they are")
}

// TestReplacedAgentStops: a node is down, a new agent joins with its name
// (taking it: its certificate replaces the old one's); the old agent,
// started again, stops by itself, non-zero, saying its name was taken,
// while the new one keeps the node ready.
func TestReplacedAgentStops(t *testing.T) {
	p := startPlatform(t, agentBeside...)
	node := uniq("e2e-rejoin-")
	old := startJoinedAgent(t, p, node, t.TempDir())
	old.cmd.Process.Signal(syscall.SIGTERM) // by its pid
	<-old.exited
	waitNodeStatus(t, p, node, "down")
	startJoinedAgent(t, p, node, t.TempDir())
	old.run() // its data dir holds the old identity: --join is ignored
	old.stopsWith("its node's name was taken",
		"this node's name was taken by a new join (its certificate was replaced); stopping", "containers are left as they are")
	waitNodeStatus(t, p, node, "ready")
}
