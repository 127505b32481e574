// Command managers is the three-managers benchmark of issue 5 (see
// bench/README.md, "Managers"): on a 3-node testbed (network namespaces;
// internal/testbed) node1 runs `ruche server --advertise-addr`, node2 and
// node3 `ruche server --join`. Per trial the leading manager is SIGKILLed
// while deploys are sent every 50 ms to the other two; measured are the
// time from the kill to the first acknowledged deploy sent after it
// (failover of writes), and to the first status naming a new leader
// (controllers running again). The killed manager is restarted and the
// next trial starts once it is healthy. Then 100 services are deployed and
// the idle RSS of each manager is read from /proc.
//
// It needs root. Everything it creates is the testbed's (named ruche-tb-),
// removed at the end, also on failure or ^C. Traffic stays on the
// testbed's bridge and namespaces.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/testbed"
)

// image is the tag of the hello image in every node's daemon.
const image = "ruche-bench-hello:latest"

type config struct {
	pkg        string
	bin        string
	trials     int
	services   int
	idleWait   time.Duration
	electionMs string
	out        string
	// replicas > 0: the managers run `ruche up` (an agent each) and the
	// idle services have that many replicas each.
	replicas int
}

var nodes = []string{"node1", "node2", "node3"}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/ruche", "the ruche binary")
	flag.StringVar(&c.pkg, "image-package", "./examples/hello", "the package the hello image is built from")
	flag.IntVar(&c.trials, "trials", 10, "failover trials")
	flag.IntVar(&c.services, "services", 100, "services deployed for the idle RSS")
	flag.DurationVar(&c.idleWait, "idle-wait", 30*time.Second, "wait after the deploys before reading RSS")
	flag.StringVar(&c.electionMs, "election-ms", "", "--store-election-ms of the managers (heartbeat: a tenth); \"\" (default): etcd's defaults, what `ruche server` runs")
	flag.StringVar(&c.out, "out", "", "directory for results.tsv and report.md (required)")
	flag.IntVar(&c.replicas, "replicas", 0, "replicas of each idle service; > 0 runs the managers with an agent (`ruche up`)")
	flag.Parse()
	if c.out == "" {
		fmt.Fprintln(os.Stderr, "bench/managers: -out is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/managers:", err)
		os.Exit(1)
	}
}

type env struct {
	cmd   string // "server", or "up" (with an agent)
	tb    *testbed.Testbed
	bin   string
	extra []string
	procs map[string]*testbed.Proc
	conf  string
	log   *slog.Logger
}

func run(ctx context.Context, c config) (err error) {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	bin, err := filepath.Abs(c.bin)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// Deploys check their image on the manager: each node's daemon gets
	// the hello image (built from source; nothing is pulled).
	tb, err := testbed.New(testbed.Config{Nodes: 3, HostAddress: true, Docker: true, Log: log,
		Images: []testbed.Image{{Ref: image, Package: c.pkg}}})
	if err != nil {
		return err
	}
	defer func() {
		for _, n := range tb.Nodes() {
			for _, p := range n.Procs() {
				b, _ := os.ReadFile(p.LogPath)
				os.WriteFile(filepath.Join(c.out, n.Name()+"-"+p.Name+".log"), b, 0o644)
			}
		}
		if cerr := tb.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("testbed close: %w", cerr))
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = tb.Start(sctx)
	cancel()
	if err != nil {
		return err
	}
	e := &env{cmd: "server", tb: tb, bin: bin, procs: map[string]*testbed.Proc{}, log: log}
	if c.replicas > 0 {
		e.cmd = "up"
	}
	if c.electionMs != "" {
		ms, err := strconv.Atoi(c.electionMs)
		if err != nil {
			return fmt.Errorf("-election-ms: %w", err)
		}
		e.extra = []string{"--store-election-ms", c.electionMs, "--store-heartbeat-ms", strconv.Itoa(ms / 10)}
	}
	if err := e.start(ctx); err != nil {
		return err
	}
	rep := &report{Trials: c.trials, Services: c.services, Replicas: c.replicas, Timing: strings.Join(e.extra, " ")}
	for i := range c.trials {
		tr, err := e.trial(ctx)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i+1, err)
		}
		log.Info("trial", "n", i+1, "killed", tr.Killed, "write", tr.Write, "leader", tr.Leader, "new_leader", tr.NewLeader)
		rep.Runs = append(rep.Runs, tr)
	}
	if err := e.idle(ctx, c, rep); err != nil {
		return err
	}
	if err := rep.write(c.out); err != nil {
		return err
	}
	fmt.Print(rep.markdown())
	return nil
}

func (e *env) dataDir(n string) string { return filepath.Join(e.tb.Node(n).Dir(), "ruche") }

func (e *env) apiURL(n string) string {
	return "https://" + net.JoinHostPort(e.tb.Node(n).Addr().String(), testbed.APIPort)
}

func (e *env) args(n string) []string {
	addr := e.tb.Node(n).Addr().String()
	a := []string{e.cmd, "--data-dir", e.dataDir(n), "--api-addr", net.JoinHostPort(addr, testbed.APIPort), "--advertise-addr", addr,
		"--node-name", n, "--http-addr", "", "--https-addr", ""}
	return append(a, e.extra...)
}

func (e *env) startProc(n string, args []string) error {
	if err := os.MkdirAll(e.dataDir(n), 0o700); err != nil {
		return err
	}
	p, err := e.tb.Node(n).Start(e.bin, args...)
	if err != nil {
		return err
	}
	e.procs[n] = p
	return nil
}

func (e *env) client(ns ...string) (*client.Client, error) {
	conf, err := client.LoadConfig(e.conf)
	if err != nil {
		return nil, err
	}
	conf.Servers = nil
	for _, n := range ns {
		conf.Servers = append(conf.Servers, e.apiURL(n))
	}
	return client.New(conf)
}

func (e *env) start(ctx context.Context) error {
	e.conf = filepath.Join(e.dataDir("node1"), "admin.conf")
	if err := e.startProc("node1", e.args("node1")); err != nil {
		return err
	}
	if err := waitFor(ctx, 90*time.Second, "node1 answers", func(ctx context.Context) bool {
		c, err := e.client("node1")
		if err != nil {
			return false
		}
		_, err = c.Status(ctx)
		return err == nil
	}); err != nil {
		return err
	}
	for _, n := range nodes[1:] {
		c, err := e.client("node1")
		if err != nil {
			return err
		}
		tok, err := c.CreateJoinToken(ctx, client.JoinRoleManager, 0)
		if err != nil {
			return err
		}
		args := append(e.args(n), "--join", e.apiURL("node1"), "--token", tok.Token, "--ca-hash", tok.CAHash)
		if err := e.startProc(n, args); err != nil {
			return err
		}
		if err := e.waitHealthy(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) waitHealthy(ctx context.Context, n string) error {
	return waitFor(ctx, 90*time.Second, n+" healthy", func(ctx context.Context) bool {
		c, err := e.client(nodes...)
		if err != nil {
			return false
		}
		ms, err := c.Managers(ctx)
		return err == nil && slices.ContainsFunc(ms, func(m client.Manager) bool { return m.Name == n && m.Healthy && m.StoreMember && !m.StoreLearner })
	})
}

func (e *env) leader(ctx context.Context, ns ...string) string {
	c, err := e.client(ns...)
	if err != nil {
		return ""
	}
	st, err := c.Status(ctx)
	if err != nil {
		return ""
	}
	return st.Leader
}

type trial struct {
	Killed    string
	Write     time.Duration // SIGKILL → first acknowledged deploy sent after it
	Leader    time.Duration // SIGKILL → a status names another leader
	NewLeader string
}

func (e *env) trial(ctx context.Context) (trial, error) {
	var tr trial
	var leader string
	if err := waitFor(ctx, 30*time.Second, "a leader", func(ctx context.Context) bool {
		leader = e.leader(ctx, nodes...)
		return leader != ""
	}); err != nil {
		return tr, err
	}
	tr.Killed = leader
	var others []string
	for _, n := range nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	c, err := e.client(others...)
	if err != nil {
		return tr, err
	}
	old := e.procs[leader]
	kill := time.Now()
	old.Kill()
	wdone := make(chan time.Duration, 1)
	go func() { // writes
		for i := 0; ctx.Err() == nil && time.Since(kill) < time.Minute; i++ {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := c.Deploy(rctx, &client.ProjectSpec{Name: fmt.Sprintf("w%d-%d", kill.Unix()%100000, i),
				Services: map[string]client.ServiceSpec{"s": {Name: "s", Image: image}}}, false)
			cancel()
			if err == nil {
				wdone <- time.Since(kill)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		wdone <- -1
	}()
	for time.Since(kill) < time.Minute {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		l := e.leader(lctx, others...)
		cancel()
		if l != "" && l != leader {
			tr.Leader, tr.NewLeader = time.Since(kill), l
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	tr.Write = <-wdone
	if tr.Write < 0 || tr.NewLeader == "" {
		return tr, fmt.Errorf("no write or no new leader within a minute of killing %s", leader)
	}
	<-old.Done()
	if err := e.startProc(leader, e.args(leader)); err != nil {
		return tr, err
	}
	for _, n := range nodes {
		if err := e.waitHealthy(ctx, n); err != nil {
			return tr, err
		}
	}
	time.Sleep(3 * time.Second) // sessions and leases settle
	return tr, nil
}

// idle deploys the services (no replicas unless the managers run agents)
// and reads the managers' RSS after a quiet period, once every replica
// runs.
func (e *env) idle(ctx context.Context, c config, rep *report) error {
	cl, err := e.client(nodes...)
	if err != nil {
		return err
	}
	const perProject = 10
	for p := 0; p*perProject < c.services; p++ {
		spec := &client.ProjectSpec{Name: fmt.Sprintf("idle%02d", p), Services: map[string]client.ServiceSpec{}}
		for s := 0; s < perProject && p*perProject+s < c.services; s++ {
			name := fmt.Sprintf("svc%02d", s)
			spec.Services[name] = client.ServiceSpec{Name: name, Image: image, Replicas: c.replicas}
		}
		if _, err := cl.Deploy(ctx, spec, false); err != nil {
			return fmt.Errorf("idle deploy: %w", err)
		}
	}
	if want := c.services * c.replicas; want > 0 {
		if err := waitFor(ctx, 10*time.Minute, fmt.Sprintf("%d replicas ready", want), func(ctx context.Context) bool {
			st, err := cl.Status(ctx)
			return err == nil && st.Ready >= want
		}); err != nil {
			return err
		}
	}
	select {
	case <-time.After(c.idleWait):
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, n := range nodes {
		kb, err := vmRSS(e.procs[n].Pid())
		if err != nil {
			return err
		}
		rep.RSS = append(rep.RSS, rss{Node: n, KB: kb})
	}
	return nil
}

func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

func waitFor(ctx context.Context, d time.Duration, what string, cond func(context.Context) bool) error {
	deadline := time.Now().Add(d)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok := cond(cctx)
		cancel()
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
