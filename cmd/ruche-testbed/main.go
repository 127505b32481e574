// Command ruche-testbed starts a ruche cluster of N nodes on this machine
// (network namespaces, a dockerd each, see internal/testbed), prints how
// to use it, and removes it all on ^C. `make testbed` runs it. Needs root.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ruche-platform/ruche/internal/testbed"
)

type labels map[string][]string

func (l labels) String() string { return fmt.Sprint(map[string][]string(l)) }

func (l labels) Set(s string) error {
	node, kv, ok := strings.Cut(s, ":")
	if !ok || !strings.Contains(kv, "=") {
		return fmt.Errorf("want NODE:KEY=VALUE, got %q", s)
	}
	l[node] = append(l[node], kv)
	return nil
}

func main() {
	nodes := flag.Int("nodes", 3, "number of nodes")
	bin := flag.String("bin", "bin/ruche", "the ruche binary")
	image := flag.String("image", "ruche-hello:latest", "tag of the examples/hello image built into every node (\"\": none)")
	lbl := labels{}
	flag.Var(lbl, "label", "node label, NODE:KEY=VALUE (repeatable), e.g. node2:zone=b")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*nodes, *bin, *image, lbl, log); err != nil {
		fmt.Fprintln(os.Stderr, "ruche-testbed:", err)
		os.Exit(1)
	}
}

func run(nodes int, bin, image string, lbl labels, log *slog.Logger) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := testbed.Config{Nodes: nodes, HostAddress: true, Docker: true, Log: log}
	if image != "" {
		cfg.Images = []testbed.Image{{Ref: image, Package: "./examples/hello"}}
	}
	tb, err := testbed.New(cfg)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "removing the testbed...")
		if cerr := tb.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := tb.Start(ctx); err != nil {
		return err
	}
	c, err := tb.StartCluster(ctx, testbed.ClusterConfig{Bin: bin, Labels: lbl})
	if err != nil {
		return err
	}
	usage(tb, c, bin)
	<-ctx.Done()
	return nil
}

func usage(tb *testbed.Testbed, c *testbed.Cluster, bin string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nruche testbed %s is up: %d nodes on %s (bridge %s, host %s)\n\n", tb.Run(), len(tb.Nodes()), tb.LinkNet(), tb.Bridge(), tb.HostAddr())
	for _, n := range tb.Nodes() {
		p := c.Process(n.Name())
		fmt.Fprintf(&b, "  %-6s %-15s netns %-18s DOCKER_HOST=%s\n         ruche pid %d, log %s\n",
			n.Name(), n.Addr(), n.NetNS(), n.DockerHost(), p.Pid(), p.LogPath)
	}
	fmt.Fprintf(&b, `
The CLI, from this shell:
  export RUCHE_CONFIG=%s
  %s node ls
  %s deploy -f examples/hello/compose.yml      (the image is in every node)
  %s token create --role agent

Inside a node (its ingress listens on the node's :80):
  nsenter --net=%s curl -H 'Host: hello.localhost' http://%s/
  DOCKER_HOST=%s docker ps

Faults by hand: ip link set %s down (cut node1's link; up to restore),
kill -9 <ruche pid> (kill an agent).

^C removes everything (namespaces, daemons, bridge, rules, data).
`, c.AdminConf(), bin, bin, bin, tb.Nodes()[0].NetNSPath(), tb.Nodes()[0].Addr(), tb.Nodes()[0].DockerHost(), tb.Nodes()[0].Link())
	fmt.Print(b.String())
}
