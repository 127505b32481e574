package testbed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kill SIGKILLs the processes started in the node with Start (its ruche
// agent, say); its dockerd and containers keep running, as they would
// when only the agent crashes. PowerOff takes the whole node down.
func (tb *Testbed) Kill(node string) error {
	n, err := tb.node(node)
	if err != nil {
		return err
	}
	for _, p := range n.Procs() {
		p.Kill()
	}
	return nil
}

// PowerOff SIGKILLs everything of the node: its processes, its dockerd,
// containerd, shims and containers, as if the machine lost power. The
// namespace and link stay; PowerOn starts dockerd again.
func (tb *Testbed) PowerOff(node string) error {
	n, err := tb.node(node)
	if err != nil {
		return err
	}
	for _, p := range n.Procs() {
		p.Kill()
	}
	if p := n.DockerProc(); p != nil {
		p.Kill()
	}
	n.killRest()
	return nil
}

// PowerOn starts the node's dockerd again after PowerOff (the processes
// the test started are its to start again).
func (tb *Testbed) PowerOn(ctx context.Context, node string) error {
	n, err := tb.node(node)
	if err != nil {
		return err
	}
	if !tb.cfg.Docker {
		return nil
	}
	return n.StartDocker(ctx)
}

// CutLink takes the host side of the node's link down: the node can
// reach nobody and nobody can reach it.
func (tb *Testbed) CutLink(node string) error {
	n, err := tb.node(node)
	if err != nil {
		return err
	}
	if _, err := command(context.Background(), "ip", "link", "set", n.veth, "down"); err != nil {
		return fmt.Errorf("testbed: cut link: %w", err)
	}
	return nil
}

// RestoreLink brings the node's link up again.
func (tb *Testbed) RestoreLink(node string) error {
	n, err := tb.node(node)
	if err != nil {
		return err
	}
	if _, err := command(context.Background(), "ip", "link", "set", n.veth, "up"); err != nil {
		return fmt.Errorf("testbed: restore link: %w", err)
	}
	return nil
}

// Partition drops traffic between every node of a and every node of b,
// both ways, with rules in the raw table of each node's namespace (before
// conntrack and Docker's own rules; forwarded container traffic too).
// Traffic inside a group, and to nodes in neither group, flows. Heal
// removes every partition.
func (tb *Testbed) Partition(a, b []string) error {
	ga, err := tb.group(a)
	if err != nil {
		return err
	}
	gb, err := tb.group(b)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var errs error
	for _, pair := range [][2][]*Node{{ga, gb}, {gb, ga}} {
		for _, n := range pair[0] {
			for _, peer := range pair[1] {
				errs = errors.Join(errs, dropPeer(ctx, n, peer, tb.run))
			}
		}
	}
	if errs != nil {
		return fmt.Errorf("testbed: partition: %w", errs)
	}
	return nil
}

func (tb *Testbed) group(names []string) ([]*Node, error) {
	var g []*Node
	for _, name := range names {
		n, err := tb.node(name)
		if err != nil {
			return nil, err
		}
		g = append(g, n)
	}
	return g, nil
}

// dropPeer makes n drop every packet from or to peer.
func dropPeer(ctx context.Context, n, peer *Node, run string) error {
	a := peer.addr.String()
	c := []string{"-m", "comment", "--comment", ruleComment(run)}
	var errs error
	for _, r := range [][]string{
		{"-I", "PREROUTING", "-s", a},
		{"-I", "PREROUTING", "-d", a},
		{"-I", "OUTPUT", "-d", a},
	} {
		args := append(append([]string{"-t", "raw"}, r...), append(c, "-j", "DROP")...)
		errs = errors.Join(errs, iptablesIn(ctx, n.ns, args...))
	}
	return errs
}

// Heal removes every partition.
func (tb *Testbed) Heal() error {
	ctx := context.Background()
	var errs error
	for _, n := range tb.Nodes() {
		out, err := nsCommand(ctx, n.ns, "iptables", "-w", "-t", "raw", "-S").Output()
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s: iptables -S: %w", n.name, err))
			continue
		}
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "-A" || !strings.Contains(l, ruleComment(tb.run)) {
				continue
			}
			for i := range f {
				f[i] = strings.Trim(f[i], `"`)
			}
			f[0] = "-D"
			errs = errors.Join(errs, iptablesIn(ctx, n.ns, append([]string{"-t", "raw"}, f...)...))
		}
	}
	if errs != nil {
		return fmt.Errorf("testbed: heal: %w", errs)
	}
	return nil
}

// Delay adds d of latency to every packet the node sends, with tc netem.
// Kernels without the netem qdisc (sch_netem) get ErrUnsupported: the
// testbed does not fake a delay it cannot make. d == 0 removes the delay.
func (tb *Testbed) Delay(node string, d time.Duration) error {
	n, err := tb.node(node)
	if err != nil {
		return err
	}
	ctx := context.Background()
	args := []string{"qdisc", "replace", "dev", "eth0", "root", "netem", "delay", fmt.Sprintf("%dus", d.Microseconds())}
	if d == 0 {
		args = []string{"qdisc", "del", "dev", "eth0", "root"}
	}
	out, err := nsCommand(ctx, n.ns, "tc", args...).CombinedOutput()
	switch {
	case err == nil:
		return nil
	case strings.Contains(string(out), "qdisc kind is unknown"):
		return fmt.Errorf("%w: delay needs the netem qdisc (sch_netem), which this kernel lacks: %s", ErrUnsupported, strings.TrimSpace(string(out)))
	case d == 0 && strings.Contains(string(out), "No such file"):
		return nil // no delay to remove
	default:
		return fmt.Errorf("testbed: delay: tc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}
