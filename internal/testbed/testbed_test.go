package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

// The test binary doubles as the program run inside the namespaces:
// TESTBED_HELPER=listen ADDR serves TCP (answers "ok\n"), =dial ADDR exits
// 0 when a connection and its answer succeed within a second, =crash
// starts a testbed and waits to be killed.
func TestMain(m *testing.M) {
	switch os.Getenv("TESTBED_HELPER") {
	case "":
		os.Exit(m.Run())
	case "listen":
		l, err := net.Listen("tcp", os.Args[len(os.Args)-1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(2)
			}
			io.WriteString(c, "ok\n")
			c.Close()
		}
	case "dial":
		c, err := net.DialTimeout("tcp", os.Args[len(os.Args)-1], time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		c.SetDeadline(time.Now().Add(time.Second))
		if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != "ok\n" {
			fmt.Fprintln(os.Stderr, "answer:", l, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "crash":
		os.Exit(crashHelper())
	}
	os.Exit(2)
}

// crashHelper starts a one-node testbed with Docker and a process in the
// node, prints the run and waits to be SIGKILLed: a crashed test.
func crashHelper() int {
	tb, err := New(Config{Nodes: 1, Docker: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := tb.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := tb.Node("node1").Start("sleep", "3600"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("run", tb.Run())
	select {}
}

func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("testbed: not with -short")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("testbed needs root, and CI=true makes that a failure")
		}
		t.Skip("testbed needs root (network namespaces, dockerd)")
	}
}

func start(t *testing.T, cfg Config) *Testbed {
	t.Helper()
	cfg.Log = slog.New(slog.NewTextHandler(tlog{t}, nil))
	tb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := tb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tb.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return tb
}

type tlog struct{ t *testing.T }

func (w tlog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// dial reports whether from reaches the helper listening at to.
func dial(t *testing.T, from *Node, to string) error {
	t.Helper()
	cmd := from.Command(context.Background(), os.Args[0], "-test.run=^$", to)
	cmd.Env = append(cmd.Env, "TESTBED_HELPER=dial")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func TestNetwork(t *testing.T) {
	needRoot(t)
	tb := start(t, Config{Nodes: 3})
	n1, n2, n3 := tb.Node("node1"), tb.Node("node2"), tb.Node("node3")
	for _, n := range []*Node{n1, n2, n3} {
		p, err := startHelper(n, "listen", fmt.Sprintf("%s:7000", n.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Kill() })
	}
	addr := func(n *Node) string { return fmt.Sprintf("%s:7000", n.Addr()) }
	eventually(t, "node1 reaches node2", func() bool { return dial(t, n1, addr(n2)) == nil })

	t.Run("no route out", func(t *testing.T) {
		for _, n := range tb.Nodes() {
			out, err := n.Exec(context.Background(), "ip", "-4", "route", "show")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), "default") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
				t.Errorf("%s: routes %q, want only the link network", n.Name(), out)
			}
			// The host's gateway and a public address are unreachable from
			// the node (a route lookup sends nothing).
			for _, dst := range append(hostGateways(t), "1.1.1.1") {
				if out, err := n.Exec(context.Background(), "ip", "route", "get", dst); err == nil {
					t.Errorf("%s: route to %s exists: %s", n.Name(), dst, out)
				}
			}
		}
		if tb.HostAddr().IsValid() {
			t.Errorf("host address %s without HostAddress", tb.HostAddr())
		}
	})

	t.Run("cut link", func(t *testing.T) {
		if err := tb.CutLink("node2"); err != nil {
			t.Fatal(err)
		}
		if err := dial(t, n1, addr(n2)); err == nil {
			t.Fatal("node1 reaches node2 with node2's link cut")
		}
		if err := dial(t, n1, addr(n3)); err != nil {
			t.Fatalf("node1 cannot reach node3 with node2's link cut: %v", err)
		}
		if err := tb.RestoreLink("node2"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "node1 reaches node2 again", func() bool { return dial(t, n1, addr(n2)) == nil })
	})

	t.Run("partition", func(t *testing.T) {
		if err := tb.Partition([]string{"node1"}, []string{"node2"}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			from, to *Node
			want     bool
		}{{n1, n2, false}, {n2, n1, false}, {n1, n3, true}, {n3, n2, true}} {
			if got := dial(t, c.from, addr(c.to)) == nil; got != c.want {
				t.Errorf("%s reaches %s: got %v, want %v", c.from.Name(), c.to.Name(), got, c.want)
			}
		}
		if err := tb.Heal(); err != nil {
			t.Fatal(err)
		}
		for _, c := range [][2]*Node{{n1, n2}, {n2, n1}} {
			if err := dial(t, c[0], addr(c[1])); err != nil {
				t.Errorf("after Heal, %s cannot reach %s: %v", c[0].Name(), c[1].Name(), err)
			}
		}
	})

	t.Run("delay", func(t *testing.T) {
		err := tb.Delay("node1", 50*time.Millisecond)
		if err != nil && !strings.Contains(err.Error(), "netem") {
			t.Fatalf("Delay: %v", err)
		}
		t.Logf("Delay: %v", err)
		tb.Delay("node1", 0)
	})

	t.Run("kill", func(t *testing.T) {
		ps := n2.Procs()
		if err := tb.Kill("node2"); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Running() {
				t.Errorf("%s still runs", p.Name)
			}
		}
		if err := dial(t, n1, addr(n2)); err == nil {
			t.Error("node2's listener answers after Kill")
		}
	})

	run := tb.Run()
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, run)
}

// hostGateways reads the host's default gateways.
func hostGateways(t *testing.T) []string {
	t.Helper()
	out, err := command(context.Background(), "ip", "-j", "-4", "route", "show", "default")
	if err != nil {
		t.Fatal(err)
	}
	var routes []struct {
		Gateway string `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		t.Fatal(err)
	}
	var gws []string
	for _, r := range routes {
		if r.Gateway != "" {
			gws = append(gws, r.Gateway)
		}
	}
	return gws
}

func startHelper(n *Node, mode string, args ...string) (*Proc, error) {
	os.Setenv("TESTBED_HELPER", mode)
	defer os.Unsetenv("TESTBED_HELPER")
	return n.Start(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertGone checks that nothing of run is left on the machine.
func assertGone(t *testing.T, run string) {
	t.Helper()
	for _, n := range append(netnsNames(), linkNames()...) {
		if parseRun(n) == run {
			t.Errorf("left behind: %s", n)
		}
	}
	for _, c := range []string{"FORWARD", "DOCKER-USER"} {
		for _, r := range ruleLines(c) {
			if strings.Contains(r, ruleComment(run)) {
				t.Errorf("left behind: rule %s", r)
			}
		}
	}
	if names := cgroupNames(run); len(names) > 0 {
		t.Errorf("left behind: cgroups %v", names)
	}
	for _, d := range []string{filepath.Join(RunDir, run), filepath.Join(DataDir, run)} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("left behind: %s", d)
		}
		if m := mountsUnder(d); len(m) > 0 {
			t.Errorf("left behind: mounts %v", m)
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if strings.Contains(strings.Join(procCmdline(pid), " "), filepath.Join(RunDir, run)+"/") {
			t.Errorf("left behind: process %d %v", pid, procCmdline(pid))
		}
	}
}

func TestDocker(t *testing.T) {
	needRoot(t)
	const ref = "ruche-tb-hello:test"
	tb := start(t, Config{Nodes: 2, Docker: true, Images: []Image{{Ref: ref, Package: "../../examples/hello"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := map[string]bool{}
	for _, n := range tb.Nodes() {
		// Each daemon answers, lives in its node's namespace, and has the image.
		var ns, dns syscall.Stat_t
		if err := syscall.Stat(n.NetNSPath(), &ns); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", n.DockerProc().Pid()), &dns); err != nil {
			t.Fatal(err)
		}
		if ns.Ino != dns.Ino {
			t.Errorf("%s: dockerd runs in namespace %d, want %d", n.Name(), dns.Ino, ns.Ino)
		}
		cli, err := n.Docker()
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if _, err := cli.ImageInspect(ctx, ref); err != nil {
			t.Errorf("%s: %v", n.Name(), err)
		}
		info, err := cli.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ids[info.ID] {
			t.Errorf("%s: engine ID %s is another node's", n.Name(), info.ID)
		}
		ids[info.ID] = true
	}
	// A container on node2 publishes a port on node2's address; node1
	// reaches it over the bridge.
	n1, n2 := tb.Node("node1"), tb.Node("node2")
	cli, err := n2.Docker()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	port := nat.Port("8080/tcp")
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: ref, ExposedPorts: nat.PortSet{port: {}}},
		&container.HostConfig{PortBindings: nat.PortMap{port: {{HostIP: n2.Addr().String(), HostPort: "18080"}}}}, nil, nil, "ruche-tb-hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(cgroupNames(tb.Run())) == 0 {
		t.Error("the container runs in no cgroup named for its node (--cgroup-parent)")
	}
	eventually(t, "node1 reaches the container on node2", func() bool {
		out, err := n1.Exec(ctx, "curl", "-sS", "--max-time", "2", fmt.Sprintf("http://%s:18080/", n2.Addr()))
		return err == nil && len(out) > 0
	})

	// An image copied from node1's daemon into node2's.
	c1, err := n1.Docker()
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if err := c1.ImageTag(ctx, ref, "ruche-tb-copy:test"); err != nil {
		t.Fatal(err)
	}
	if err := n2.LoadImages(ctx, c1, "ruche-tb-copy:test"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageInspect(ctx, "ruche-tb-copy:test"); err != nil {
		t.Errorf("node2 after LoadImages: %v", err)
	}

	// PowerOff takes the container down with its daemon; PowerOn brings
	// the daemon back.
	if err := tb.PowerOff("node2"); err != nil {
		t.Fatal(err)
	}
	if out, err := n1.Exec(ctx, "curl", "-sS", "--max-time", "2", fmt.Sprintf("http://%s:18080/", n2.Addr())); err == nil {
		t.Errorf("the container answers after PowerOff: %s", out)
	}
	if err := tb.PowerOn(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Ping(ctx); err != nil {
		t.Errorf("node2's dockerd after PowerOn: %v", err)
	}

	run := tb.Run()
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, run)
}

// TestStale kills a process that runs a testbed (SIGKILL: no Close), then
// checks that the next Start removes what it left.
func TestStale(t *testing.T) {
	needRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TESTBED_HELPER=crash")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("crash helper: %v", err)
	}
	run := strings.TrimSpace(strings.TrimPrefix(line, "run "))
	cmd.Process.Kill()
	cmd.Wait()
	if !validRun(run) {
		t.Fatalf("crash helper said %q", line)
	}
	// The crashed run left its namespace, its daemon and their mounts.
	if len(mountsUnder(filepath.Join(DataDir, run)))+len(mountsUnder(filepath.Join(RunDir, run))) == 0 {
		t.Error("the crashed run left no mounts: nothing to test")
	}
	b, err := os.ReadFile(filepath.Join(RunDir, run, "node1", "docker.pid"))
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || syscall.Kill(pid, 0) != nil {
		t.Errorf("the crashed run left no dockerd (%v): nothing to test", err)
	}
	found := false
	for _, n := range netnsNames() {
		found = found || parseRun(n) == run
	}
	if !found {
		t.Fatalf("the crashed run %s left no namespace: nothing to test", run)
	}
	start(t, Config{Nodes: 1})
	assertGone(t, run)
}
