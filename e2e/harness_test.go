// Package e2e runs the real ruche binary against the real Docker engine, as
// a user would: `ruche up`, then the CLI. It needs a dockerd on the default
// socket (make test starts one); outside CI it skips when there is none.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	dockerclient "github.com/docker/docker/client"
	"github.com/vishvananda/netlink"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/privnet"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/testimage"
	"github.com/ruche-platform/ruche/internal/testports"
)

const image = "ruche-e2e-hello:latest"

var rucheBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	cli, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = cli.Ping(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: no Docker engine, and CI=true makes that a failure:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "e2e: skipping, no Docker engine:", err)
		return m.Run() // each test skips through needDocker
	}
	dockerOK = true
	dir, err := os.MkdirTemp("", "ruche-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	rucheBin = filepath.Join(dir, "ruche")
	// As make build: the containers' init first, for ruche to embed.
	if out, err := exec.Command("go", "generate", "../internal/initbin").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build the containers' init: %v\n%s", err, out)
		return 1
	}
	build := exec.Command("go", "build", "-o", rucheBin, "../cmd/ruche")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build ruche: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := testimage.Build(ctx, cli, "../examples/hello", image); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	sweepNetworks(cli)
	return code
}

// sweepNetworks removes the project networks of the tests' projects
// (e2e-*) that are left with no container, and says which: a test that
// leaves one (a project deployed after a backup is unknown to the
// restored store, so nothing removes its network) would otherwise, run
// after run, use up Docker's address pools on a long-lived machine.
func sweepNetworks(cli *dockerclient.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", runtime.LabelManaged+"=true"))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: list networks:", err)
		return
	}
	var removed []string
	for _, n := range list {
		if !strings.HasPrefix(n.Labels[runtime.LabelProject], "e2e-") {
			continue
		}
		in, err := cli.NetworkInspect(ctx, n.ID, network.InspectOptions{})
		if err != nil || len(in.Containers) > 0 {
			continue
		}
		if cli.NetworkRemove(ctx, n.ID) == nil {
			removed = append(removed, n.Name)
		}
	}
	if len(removed) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: removed %d networks the tests left without containers: %s\n", len(removed), strings.Join(removed, ", "))
	}
}

var dockerOK bool

func needDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: not with -short")
	}
	if !dockerOK {
		t.Skip("no Docker engine (outside CI)")
	}
}

// platform is one `ruche up` process with its own data dir and ports.
type platform struct {
	t                   *testing.T
	dataDir             string
	httpAddr, httpsAddr string
	args                []string
	cmd                 *exec.Cmd
	logPath             string
}

// freePort is a loopback address to listen on, never one handed out
// before in this test run.
func freePort(t *testing.T) string { return testports.Free(t) }

// startPlatform runs `ruche up` (with extra flags, if any) and waits
// until its API answers. The ingress listens on loopback ports, in
// p.httpAddr and p.httpsAddr.
func startPlatform(t *testing.T, extra ...string) *platform {
	t.Helper()
	needDocker(t)
	p := &platform{t: t, dataDir: t.TempDir(), httpAddr: freePort(t), httpsAddr: freePort(t)}
	for i := 0; i+1 < len(extra); i++ { // the caller may choose the ingress ports
		switch extra[i] {
		case "--http-addr":
			p.httpAddr = extra[i+1]
		case "--https-addr":
			p.httpsAddr = extra[i+1]
		}
	}
	p.args = append([]string{"up", "--data-dir", p.dataDir, "--api-addr", freePort(t), "--store-addr", freePort(t),
		"--store-peer-addr", freePort(t), "--node-name", uniq("e2e"), "--http-addr", p.httpAddr, "--https-addr", p.httpsAddr}, extra...)
	if !slices.Contains(extra, "docker") { // ruche's networks, the default as root
		needPrivnetFree(t)
	}
	p.logPath = filepath.Join(p.dataDir, "ruche.log")
	p.start()
	t.Cleanup(func() {
		p.waitNetworksRemoved()
		p.stop()
		p.removeLeftBridges()
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			t.Logf("ruche up log:\n%s", failedLog(string(b), 60))
		}
	})
	return p
}

// agentBeside are the flags of a `ruche up` with a `ruche agent` beside it
// on this machine: Docker's networks, since ruche's are one ruche's per
// network namespace (the agent follows the cluster's).
var agentBeside = []string{"--networks", "docker"}

// needPrivnetFree fails (skips outside CI) when another process runs
// ruche's networks on this machine: one ruche per network namespace does
// (`make demo`'s, say). Tests that need none of them start ruche with
// --networks docker.
func needPrivnetFree(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		return // ruche's networks need root: ruche up picks Docker's
	}
	busy, err := privnet.NamespaceBusy()
	if err == nil && !busy {
		return
	}
	msg := fmt.Sprintf("another ruche runs ruche's networks on this machine (make demo's?): stop it to run this test (%v)", err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// privnetState is what a ruche of ruche's networks keeps of them.
func (p *platform) privnetState() map[string]struct{ Bridge string } {
	var st struct {
		Networks map[string]struct{ Bridge string } `json:"networks"`
	}
	b, err := os.ReadFile(filepath.Join(p.dataDir, "agent", "privnet.json"))
	if err != nil || json.Unmarshal(b, &st) != nil {
		return nil
	}
	return st.Networks
}

// waitNetworksRemoved gives the agent time to remove the networks of the
// projects the test removed (it does once their containers are gone), so
// that ruche stops with none left and takes its firewall chains with it.
func (p *platform) waitNetworksRemoved() {
	if p.cmd == nil {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(p.privnetState()) > 0 && time.Now().Before(deadline) {
		if out, _, code := p.ruche("ps", "-o", "json"); code == 0 && strings.TrimSpace(out) != "[]" && strings.TrimSpace(out) != "null" {
			return // projects left: their networks stay
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// removeLeftBridges removes the bridges of networks the stopped ruche
// still had (a test that left a project), so that the next tests do not
// meet them; it says which.
func (p *platform) removeLeftBridges() {
	var left []string
	for name, n := range p.privnetState() {
		if l, err := netlink.LinkByName(n.Bridge); err == nil && netlink.LinkDel(l) == nil {
			left = append(left, name)
		}
	}
	if len(left) > 0 {
		p.t.Logf("removed the bridges of networks the test left: %s", strings.Join(left, ", "))
	}
}

func (p *platform) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(rucheBin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, _, code := p.ruche("status"); code == 0 {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(p.logPath)
			p.t.Fatalf("ruche up did not answer within 60s:\n%s", tail(string(b), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop ends `ruche up` with SIGTERM (by its pid) and waits for it.
func (p *platform) stop() {
	stopProcess(p.t, p.cmd, "ruche up")
	p.cmd = nil
}

// stopProcess sends cmd's process SIGTERM and waits for it, killing it
// after 30 s (an error of the test: ruche must stop on SIGTERM).
func stopProcess(t *testing.T, cmd *exec.Cmd, what string) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("%s did not stop within 30s of SIGTERM", what)
	}
}

// ruche runs the CLI against this platform.
func (p *platform) ruche(args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(rucheBin, args...)
	cmd.Env = append(os.Environ(), "RUCHE_CONFIG="+filepath.Join(p.dataDir, "admin.conf"))
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return o.String(), e.String(), code
}

// must runs the CLI and fails the test on a non-zero exit.
func (p *platform) must(args ...string) string {
	p.t.Helper()
	out, errOut, code := p.ruche(args...)
	if code != 0 {
		p.t.Fatalf("ruche %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// project reads `ruche ps project -o json`.
func (p *platform) project(name string) client.Project {
	p.t.Helper()
	var ps []client.Project
	if err := json.Unmarshal([]byte(p.must("ps", name, "-o", "json")), &ps); err != nil || len(ps) != 1 {
		p.t.Fatalf("ps -o json: %v (%d projects)", err, len(ps))
	}
	return ps[0]
}

// writeCompose writes a compose file for a test and returns its path.
func writeCompose(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "compose.yml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(body, "@IMAGE@", image)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// running lists the replicas meant to run.
func running(s client.Service) []client.Replica {
	var out []client.Replica
	for _, r := range s.Replicas {
		if r.DesiredState == client.DesiredRunning {
			out = append(out, r)
		}
	}
	return out
}

func service(t *testing.T, p client.Project, name string) client.Service {
	t.Helper()
	for _, s := range p.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("project %s has no service %s", p.Name, name)
	return client.Service{}
}

// get does an HTTP GET on a port published on 127.0.0.1.
func get(t *testing.T, port uint16, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		t.Fatalf("GET %s on port %d: %v", path, port, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond; the CLI has no watch for tests to block on.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// failedLog is what a failed test shows of a ruche log: its last 30
// warnings and errors (the cause is often well before the end), then its
// last n lines.
func failedLog(s string, n int) string {
	var bad []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			bad = append(bad, l)
		}
	}
	if len(bad) > 30 {
		bad = bad[len(bad)-30:]
	}
	return fmt.Sprintf("-- last %d warnings and errors --\n%s\n-- last %d lines --\n%s", len(bad), strings.Join(bad, "\n"), n, tail(s, n))
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hostPort is the port a replica publishes on IPv4 for its one container
// port (Docker may publish another number on IPv6).
func hostPort(t *testing.T, r client.Replica) uint16 {
	t.Helper()
	for _, p := range r.Status.Ports {
		if p.HostIP == "0.0.0.0" || p.HostIP == "127.0.0.1" {
			return p.Published
		}
	}
	t.Fatalf("%s publishes no IPv4 port: %v", r.Name(), r.Status.Ports)
	return 0
}

// needRoot skips the test (fails it with CI=true) when not run as root;
// why says what needs it, e.g. "the multi-node tests need root (network
// namespaces)".
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why + ", and CI=true makes that a failure")
	}
	t.Skip(why)
}

// startLines starts cmd and streams its standard output, a line at a
// time; the channel closes when the output ends. The caller waits for cmd.
func startLines(t *testing.T, cmd *exec.Cmd) <-chan string {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}
