// Command netwire is a prototype, for bench/run.sh, of what starting a
// replica costs when the platform wires its network itself (DESIGN.md,
// private networks) instead of asking Docker for a network: it starts N
// containers with no Docker network (--network none), each running the
// bind-mounted ruche binary as its init (netinit.InitPath: it holds the
// real command until the network exists), and wires each one as soon as it runs: a veth pair into a bridge
// of its own, the container's end moved into the container's namespace,
// an address and a default route, all through netlink (no program run). It
// returns when every container is wired, and prints the seconds each step
// took. It is not ruche: no IPAM, DNS, NAT or store; only the cost of the
// data path's per-container work, measured beside the real ruche.
//
//	netwire -n 20 -prefix bench-wire- -image ruche-hello:latest \
//	    -bridge bench-wire0 -subnet 10.213.78.0/24 -waiter bin/ruche
//	netwire -cleanup -prefix bench-wire- -bridge bench-wire0
//
// The bridge gets the subnet's first address and nothing else: no NAT, no
// route out of the machine; bench/run.sh checks the subnet against the
// host's routes first. Nothing sends traffic on it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dclient "github.com/docker/docker/client"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ruche-platform/ruche/internal/netinit"
)

func main() {
	n := flag.Int("n", 20, "containers")
	prefix := flag.String("prefix", "bench-wire-", "container name prefix")
	image := flag.String("image", "ruche-hello:latest", "image")
	cmd := flag.String("cmd", "/hello", "the image's command, run by the waiter")
	bridge := flag.String("bridge", "bench-wire0", "bridge name")
	subnet := flag.String("subnet", "10.213.78.0/24", "the bridge's subnet")
	waiter := flag.String("waiter", "", "the static ruche binary, bind-mounted as the containers' init")
	cleanup := flag.Bool("cleanup", false, "remove the containers and the bridge, then exit")
	flag.Parse()
	ctx := context.Background()
	cli, err := dclient.NewClientWithOpts(dclient.FromEnv, dclient.WithAPIVersionNegotiation())
	if err != nil {
		fail(err)
	}
	if *cleanup {
		if err := clean(ctx, cli, *prefix, *bridge); err != nil {
			fail(err)
		}
		return
	}
	pfx, err := netip.ParsePrefix(*subnet)
	if err != nil || !pfx.Addr().Is4() || pfx.Bits() > 24 || *n > 200 {
		fail(fmt.Errorf("-subnet must be an IPv4 /24 or larger and -n at most 200"))
	}
	gw := pfx.Masked().Addr().Next()
	br, err := ensureBridge(*bridge, netip.PrefixFrom(gw, pfx.Bits()))
	if err != nil {
		fail(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, *n)
	steps := make([][3]time.Duration, *n) // started, wired, total
	addr := gw
	for i := range *n {
		addr = addr.Next().Next() // .3, .5, ...: never the gateway
		wg.Add(1)
		go func(i int, ip netip.Addr) {
			defer wg.Done()
			t0 := time.Now()
			pid, err := run(ctx, cli, fmt.Sprintf("%s%d", *prefix, i+1), *image, *cmd, *waiter)
			if err != nil {
				errs <- err
				return
			}
			t1 := time.Now()
			if err := wire(br, pid, fmt.Sprintf("bwh%d", i), netip.PrefixFrom(ip, pfx.Bits()), gw); err != nil {
				errs <- fmt.Errorf("wire %s%d: %w", *prefix, i+1, err)
				return
			}
			steps[i] = [3]time.Duration{t1.Sub(t0), time.Since(t1), time.Since(t0)}
		}(i, addr)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fail(err)
	}
	var maxStart, maxWire, sumWire time.Duration
	for _, s := range steps {
		maxStart, maxWire, sumWire = max(maxStart, s[0]), max(maxWire, s[1]), sumWire+s[1]
	}
	fmt.Printf("all_wired=%.3f create_start_max=%.3f wire_max=%.3f wire_mean=%.4f\n", time.Since(start).Seconds(),
		maxStart.Seconds(), maxWire.Seconds(), (sumWire / time.Duration(*n)).Seconds())
}

// run creates and starts a container without a Docker network, the waiter
// in front of its command, and returns its process ID.
func run(ctx context.Context, cli *dclient.Client, name, image, cmd, waiter string) (int, error) {
	cfg := &container.Config{Image: image, Entrypoint: []string{netinit.InitPath, cmd}, Labels: map[string]string{"ruche.bench": "netwire"}}
	hc := &container.HostConfig{NetworkMode: "none", Binds: []string{waiter + ":" + netinit.InitPath + ":ro"}}
	c, err := cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", name, err)
	}
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	in, err := cli.ContainerInspect(ctx, c.ID)
	if err != nil || in.State == nil || in.State.Pid == 0 {
		return 0, fmt.Errorf("inspect %s: no process (%v)", name, err)
	}
	return in.State.Pid, nil
}

// ensureBridge creates the bridge with the gateway address, up.
func ensureBridge(name string, gw netip.Prefix) (netlink.Link, error) {
	if l, err := netlink.LinkByName(name); err == nil {
		return l, nil
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipnet(gw)}); err != nil {
		return nil, fmt.Errorf("bridge %s address: %w", name, err)
	}
	return l, netlink.LinkSetUp(l)
}

// wire joins the process's network namespace to the bridge: a veth pair,
// the peer moved in, renamed eth0, addressed, up, default route via gw.
func wire(br netlink.Link, pid int, host string, ip netip.Prefix, gw netip.Addr) error {
	peer := host + "p"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index}, PeerName: peer}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	hl, err := netlink.LinkByName(host)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		return err
	}
	pl, err := netlink.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsPid(pl, pid); err != nil {
		return fmt.Errorf("move into %d: %w", pid, err)
	}
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := h.LinkSetName(l, "eth0"); err != nil {
		return err
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipnet(ip)}); err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(gw.AsSlice())})
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// clean removes the prefix's containers (their namespaces take the veth
// pairs with them) and the bridge.
func clean(ctx context.Context, cli *dclient.Client, prefix, bridge string) error {
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "ruche.bench=netwire"))})
	if err != nil {
		return err
	}
	for _, c := range list {
		for _, name := range c.Names {
			if strings.HasPrefix(strings.TrimPrefix(name, "/"), prefix) {
				cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
				break
			}
		}
	}
	if l, err := netlink.LinkByName(bridge); err == nil {
		return netlink.LinkDel(l)
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "netwire:", err)
	os.Exit(1)
}
