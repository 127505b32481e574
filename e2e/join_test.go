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
	p := startPlatform(t)
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
			t.Logf("ruche agent log:\n%s", tail(string(b), 60))
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

// TestRemovedAgentStops: after `ruche node rm --force`, the node's agent
// stops by itself, non-zero, saying why and that its containers are left
// as they are (instead of retrying against the managers forever).
func TestRemovedAgentStops(t *testing.T) {
	p := startPlatform(t)
	var jt client.JoinToken
	if err := json.Unmarshal([]byte(p.must("token", "create", "--ttl", "10m", "-o", "json")), &jt); err != nil {
		t.Fatal(err)
	}
	node := uniq("e2e-rm-")
	dataDir := t.TempDir()
	a := &agentProc{t: t, logPath: filepath.Join(dataDir, "agent.log"), args: []string{"agent",
		"--join", jt.Managers[0], "--token", jt.Token, "--ca-hash", jt.CAHash,
		"--data-dir", dataDir, "--node-name", node, "--node-api-addr", freePort(t), "--http-addr", "", "--https-addr", ""}}
	a.start()
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = a.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			a.cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(a.logPath)
			t.Logf("ruche agent log:\n%s", tail(string(b), 40))
		}
	})
	eventually(t, "the agent's node ready", 60*time.Second, func() bool {
		for _, n := range p.nodes() {
			if n.ID == node && n.Status == "ready" {
				return true
			}
		}
		return false
	})
	p.must("node", "rm", node, "--force")
	select {
	case <-exited:
	case <-time.After(90 * time.Second):
		t.Fatal("the agent of a removed node still runs 90s after ruche node rm")
	}
	if ee, ok := exitErr.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("agent exit: got %v, want a non-zero exit", exitErr)
	}
	b, _ := os.ReadFile(a.logPath)
	for _, want := range []string{"this node was removed from the cluster (ruche node rm); stopping", "containers are left as they are"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("agent output lacks %q:\n%s", want, tail(string(b), 20))
		}
	}
}
