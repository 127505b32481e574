package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Names of this run's kernel objects (at most 15 characters for links).
func bridgeName(run string) string      { return Prefix + "br" + run }
func nsName(run string, n int) string   { return Prefix + run + "-" + strconv.Itoa(n) }
func vethName(run string, n int) string { return Prefix + run + "-" + strconv.Itoa(n) }
func ruleComment(run string) string     { return Prefix + run }

// createBridge makes the bridge, gives the host its address on it when
// asked, and lets frames cross it through the host's FORWARD chain
// (bridge-nf-call-iptables sends bridged frames there and Docker's policy
// is DROP).
func (tb *Testbed) createBridge(ctx context.Context) error {
	br := bridgeName(tb.run)
	if _, err := command(ctx, "ip", "link", "add", br, "type", "bridge"); err != nil {
		return fmt.Errorf("testbed: bridge: %w", err)
	}
	disableIPv6(br)
	if tb.cfg.HostAddress {
		a := tb.plan.HostAddr().String() + "/24"
		if _, err := command(ctx, "ip", "addr", "add", a, "dev", br); err != nil {
			return fmt.Errorf("testbed: bridge address: %w", err)
		}
	}
	if _, err := command(ctx, "ip", "link", "set", br, "up"); err != nil {
		return fmt.Errorf("testbed: bridge up: %w", err)
	}
	chain := forwardChain(ctx)
	if _, err := command(ctx, "iptables", "-w", "-I", chain, "1", "-i", br, "-o", br,
		"-m", "comment", "--comment", ruleComment(tb.run), "-j", "ACCEPT"); err != nil {
		return fmt.Errorf("testbed: forward rule: %w", err)
	}
	return nil
}

// forwardChain is where the bridge's ACCEPT goes: DOCKER-USER when Docker
// made it (Docker keeps it first in FORWARD), else FORWARD.
func forwardChain(ctx context.Context) string {
	if _, err := command(ctx, "iptables", "-w", "-S", "DOCKER-USER"); err == nil {
		return "DOCKER-USER"
	}
	return "FORWARD"
}

// createNode makes node n's namespace and its link to the bridge.
func (tb *Testbed) createNode(ctx context.Context, n *Node) error {
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	steps := [][]string{
		{"ip", "netns", "add", n.ns},
		{"ip", "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.ns},
		{"ip", "link", "set", n.veth, "master", bridgeName(tb.run)},
	}
	for _, s := range steps {
		if _, err := command(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("testbed: node %s: %w", n.name, err)
		}
	}
	disableIPv6(n.veth)
	steps = [][]string{
		{"ip", "link", "set", n.veth, "up"},
		{"ip", "-n", n.ns, "link", "set", "lo", "up"},
		{"ip", "-n", n.ns, "addr", "add", n.addr.String() + "/24", "dev", "eth0"},
		{"ip", "-n", n.ns, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if _, err := command(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("testbed: node %s: %w", n.name, err)
		}
	}
	return nil
}

// disableIPv6 keeps the host's side of the testbed IPv4 only (no
// link-local address, no router solicitation on our links).
func disableIPv6(link string) {
	os.WriteFile("/proc/sys/net/ipv6/conf/"+link+"/disable_ipv6", []byte("1"), 0o644)
}

// nsCommand builds a command that runs inside namespace ns. nsenter
// enters only the network namespace: `ip netns exec` would remount /sys,
// and dockerd then finds no cgroups.
func nsCommand(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", nsArgs(ns, name, args...)...)
}

// nsArgs are nsenter's arguments to run name in namespace ns.
func nsArgs(ns, name string, args ...string) []string {
	return append([]string{"--net=" + netnsPath(ns), "--", name}, args...)
}

func netnsPath(ns string) string { return "/var/run/netns/" + ns }

// iptablesIn runs iptables inside namespace ns.
func iptablesIn(ctx context.Context, ns string, args ...string) error {
	cmd := nsCommand(ctx, ns, "iptables", append([]string{"-w"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s in %s: %w: %s", strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}
