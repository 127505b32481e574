package privnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ruche-platform/ruche/internal/privdns"
)

// The firewall, in chains of ruche's own jumped to from the built-in ones
// (first, so that Docker's DROP policy on FORWARD does not apply first):
//
//	RUCHE-FORWARD, per bridge B with subnet S (inserted at the top):
//	    -i B ! -s S -j DROP            no spoofed source address
//	    -i B -o B -j ACCEPT            within the network (bridged traffic
//	                                   passes here with br_netfilter)
//	    -i B ! -o ruchewg+ -j DROP     an internal network's: no way out
//	                                   (but to its subnets on other nodes)
//	then for every bridge:
//	    -o ruchbr+|ruchewg+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//	    -j RUCHE-MESH                  a network's subnets on other nodes
//	                                   (rebuilt by SetMesh: meshRules)
//	    -i ruchbr+ -o ruchbr+ -j DROP  no network reaches another
//	    -i ruchbr+ -o docker0|br-+|docker_gwbridge -j DROP   nor Docker's
//	    -o ruchewg+ -j DROP, -i ruchewg+ -j DROP   nothing else crosses the mesh
//	    -i ruchbr+ -j ACCEPT           out to the world
//	    -o ruchbr+ -j DROP             nothing else in
//	RUCHE-INPUT (to the node itself), per bridge B with gateway G
//	(inserted at the top):
//	    -i B -d G -p udp|tcp --dport 53 -j ACCEPT   its own name server only
//	then answers; nothing else of the node is reachable from a container
//	(not the name server of another network, which would tell a project
//	the names of another), nor from the mesh but answers.
//	nat RUCHE-POSTROUTING: -s Range ! -d Range -j MASQUERADE (traffic
//	within the range, to a bridge or over the mesh, keeps its source)
//	nat RUCHE-DNAT (from PREROUTING and OUTPUT, to the node's addresses):
//	    a DNAT per published port, with its ACCEPT at the top of
//	    RUCHE-FORWARD; both carry the comment ruche:<container>.
//
// The host reaches containers directly (its proxy, through OUTPUT).
const (
	chainMesh    = "RUCHE-MESH"
	chainForward = "RUCHE-FORWARD"
	chainInput   = "RUCHE-INPUT"
	chainNAT     = "RUCHE-POSTROUTING"
	chainDNAT    = "RUCHE-DNAT"
)

// NewHost returns the real Host: netlink for links, iptables for the
// rules. It sets up the chains and their fixed rules for rng (flushing
// what a previous run left; the rules of each bridge come back with
// EnsureBridge).
//
// One process at a time owns the machine's networks (lockPath): the chains
// and the bridges' names are the machine's, not a cluster's.
func NewHost(rng netip.Prefix) (_ Host, err error) {
	lockPath, err := lockPath()
	if err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another ruche runs ruche's networks on this machine (it holds %s): one per machine", lockPath)
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(30))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	h := &host{ipt: ipt, lock: lock}
	for _, s := range chains(rng) {
		if err := ipt.ClearChain(s.table, s.chain); err != nil { // creates it if absent
			return nil, fmt.Errorf("iptables %s %s: %w", s.table, s.chain, err)
		}
		for _, r := range s.rules {
			if err := ipt.Append(s.table, s.chain, r...); err != nil {
				return nil, fmt.Errorf("iptables %s %s: %w", s.table, s.chain, err)
			}
		}
		for _, j := range s.jumps {
			if ok, err := ipt.Exists(s.table, j.parent, j.spec(s.chain)...); err != nil {
				return nil, fmt.Errorf("iptables %s %s: %w", s.table, j.parent, err)
			} else if !ok {
				if err := ipt.Insert(s.table, j.parent, 1, j.spec(s.chain)...); err != nil {
					return nil, fmt.Errorf("iptables %s %s: %w", s.table, j.parent, err)
				}
			}
		}
	}
	return h, nil
}

// NamespaceBusy reports whether a process runs ruche's networks in this
// network namespace (it holds the lock NewHost takes).
func NamespaceBusy() (bool, error) {
	path, err := lockPath()
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true, nil
	}
	return false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// lockPath is held by the process that owns the machine's networks: those
// of its network namespace (the chains and links are the namespace's; the
// testbed's nodes are namespaces of one machine).
func lockPath() (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return "", fmt.Errorf("network namespace: %w", err)
	}
	return fmt.Sprintf("/run/ruche-privnet-%d.lock", st.Ino), nil
}

type host struct {
	ipt  *iptables.IPTables
	lock *os.File
}

// chain is one of ruche's chains with its fixed rules, jumped to from
// built-in chains.
type chain struct {
	table, chain string
	jumps        []jump
	rules        [][]string
}

// jump is a rule of a built-in chain that jumps to one of ruche's.
type jump struct {
	parent string
	match  []string
}

func (j jump) spec(to string) []string { return append(slices.Clone(j.match), "-j", to) }

// chains are ruche's chains with their fixed rules.
// (RUCHE-MESH comes first: RUCHE-FORWARD jumps to it.)
func chains(rng netip.Prefix) []chain {
	all, mesh := BridgePrefix+"+", MeshPrefix+"+"
	answers := []string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"}
	local := []string{"-m", "addrtype", "--dst-type", "LOCAL"}
	return []chain{
		{"filter", chainMesh, nil, nil},
		{"filter", chainForward, []jump{{"FORWARD", nil}}, [][]string{
			append([]string{"-o", all}, append(answers, "-j", "ACCEPT")...),
			append([]string{"-o", mesh}, append(answers, "-j", "ACCEPT")...),
			{"-j", chainMesh},
			{"-i", all, "-o", all, "-j", "DROP"},
			// Nor Docker's networks on the node: this chain comes before
			// Docker's own isolation rules.
			{"-i", all, "-o", "docker0", "-j", "DROP"},
			{"-i", all, "-o", "br-+", "-j", "DROP"},
			{"-i", all, "-o", "docker_gwbridge", "-j", "DROP"},
			{"-o", mesh, "-j", "DROP"},
			{"-i", mesh, "-j", "DROP"},
			{"-i", all, "-j", "ACCEPT"},
			{"-o", all, "-j", "DROP"},
		}},
		{"filter", chainInput, []jump{{"INPUT", nil}}, [][]string{
			append([]string{"-i", all}, append(answers, "-j", "ACCEPT")...),
			{"-i", all, "-j", "DROP"},
			append([]string{"-i", mesh}, append(answers, "-j", "ACCEPT")...),
			{"-i", mesh, "-j", "DROP"},
		}},
		{"nat", chainNAT, []jump{{"POSTROUTING", nil}}, [][]string{
			{"-s", rng.String(), "!", "-d", rng.String(), "-j", "MASQUERADE"},
		}},
		// Published ports (AddForward), for traffic to the node's own
		// addresses: from elsewhere, and from the node itself but to
		// loopback (which the port's listener carries).
		{"nat", chainDNAT, []jump{{"PREROUTING", local}, {"OUTPUT", append([]string{"!", "-d", "127.0.0.0/8"}, local...)}}, nil},
	}
}

func (h *host) Close(teardown bool) error {
	defer h.lock.Close()
	if !teardown {
		return nil
	}
	var errs []error
	cs := chains(netip.Prefix{})
	slices.Reverse(cs) // a chain jumped to goes after the chains jumping to it
	for _, c := range cs {
		for _, j := range c.jumps {
			errs = append(errs, h.ipt.DeleteIfExists(c.table, j.parent, j.spec(c.chain)...))
		}
		if ok, err := h.ipt.ChainExists(c.table, c.chain); err == nil && ok {
			errs = append(errs, h.ipt.ClearAndDeleteChain(c.table, c.chain))
		}
	}
	return errors.Join(errs...)
}

// Taken lists the machine's routes (all tables but the default routes;
// not those over the mesh), its addresses and the resolvers of
// /etc/resolv.conf.
func (h *host) Taken() ([]netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue // default route
		}
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 && !isOurs(r.LinkIndex) {
			out = append(out, p)
		}
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && !isOurs(a.LinkIndex) {
			out = append(out, p.Masked())
		}
	}
	resolvers, _ := privdns.HostUpstreams("/etc/resolv.conf") // none: nothing to keep clear
	for _, r := range resolvers {
		if ap, err := netip.ParseAddrPort(r); err == nil && ap.Addr().Is4() {
			out = append(out, netip.PrefixFrom(ap.Addr(), 32))
		}
	}
	return out, nil
}

// isOurs reports whether a link is the mesh interface: its routes are the
// other nodes' subnets, given by the managers. The bridges' routes count
// (the Manager leaves out its own): a bridge another ruche, or an earlier
// data dir, left on the machine keeps its subnet from being given again.
func isOurs(index int) bool {
	l, err := netlink.LinkByIndex(index)
	return err == nil && strings.HasPrefix(l.Attrs().Name, MeshPrefix)
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// rule is one rule of one of ruche's chains.
type rule struct {
	chain string
	args  []string
}

// bridgeRules are a bridge's own rules (gw: its address, with the
// subnet's length), in order within each chain; those of an internal
// network end with a DROP of anything leaving it.
func bridgeRules(name string, gw netip.Prefix, internal bool) []rule {
	subnet, dst := gw.Masked().String(), gw.Addr().String()
	r := []rule{
		{chainForward, []string{"-i", name, "!", "-s", subnet, "-j", "DROP"}},
		{chainForward, []string{"-i", name, "-o", name, "-j", "ACCEPT"}},
	}
	if internal {
		r = append(r, rule{chainForward, []string{"-i", name, "!", "-o", MeshPrefix + "+", "-j", "DROP"}})
	}
	for _, proto := range []string{"udp", "tcp"} {
		r = append(r, rule{chainInput, []string{"-i", name, "-d", dst, "-p", proto, "--dport", "53", "-j", "ACCEPT"}})
	}
	return r
}

func (h *host) EnsureBridge(name string, addr netip.Prefix, internal bool) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
		if l, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists and is not a bridge", name)
	}
	if err := noIPv6(name); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	has, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	found := false
	for _, a := range has {
		if p, ok := prefixOf(a.IPNet); ok && p == addr {
			found = true
		}
	}
	if !found {
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipnet(addr)}); err != nil {
			return fmt.Errorf("bridge %s address %s: %w", name, addr, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	// Inserted at the top in reverse, so they end in bridgeRules' order.
	rules := bridgeRules(name, addr, internal)
	for i := len(rules) - 1; i >= 0; i-- {
		ok, err := h.ipt.Exists("filter", rules[i].chain, rules[i].args...)
		if err == nil && !ok {
			err = h.ipt.Insert("filter", rules[i].chain, 1, rules[i].args...)
		}
		if err != nil {
			return fmt.Errorf("bridge %s: iptables: %w", name, err)
		}
	}
	return nil
}

func (h *host) BridgeAddr(name string) (netip.Prefix, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return netip.Prefix{}, err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("bridge %s has no IPv4 address", name)
}

// SetMesh replaces the rules of RUCHE-MESH.
func (h *host) SetMesh(rules [][]string) error {
	if err := h.ipt.ClearChain("filter", chainMesh); err != nil {
		return fmt.Errorf("iptables %s: %w", chainMesh, err)
	}
	for _, r := range rules {
		if err := h.ipt.Append("filter", chainMesh, r...); err != nil {
			return fmt.Errorf("iptables %s: %w", chainMesh, err)
		}
	}
	return nil
}

func (h *host) DeleteBridge(name string, subnet netip.Prefix) error {
	for _, r := range bridgeRules(name, netip.PrefixFrom(subnet.Addr().Next(), subnet.Bits()), true) {
		if err := h.ipt.DeleteIfExists("filter", r.chain, r.args...); err != nil {
			return fmt.Errorf("bridge %s: iptables: %w", name, err)
		}
	}
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	return nil
}

// Wire creates each veth pair with its container end directly in the
// process's namespace (no rename, no move), then addresses it there.
func (h *host) Wire(pid int, hostPrefix string, ifaces []Iface) error {
	for i, ifc := range ifaces {
		br, err := netlink.LinkByName(ifc.Bridge)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", ifc.Bridge, err)
		}
		name := fmt.Sprintf("%s%d", hostPrefix, i)
		veth := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: name, MasterIndex: br.Attrs().Index},
			PeerName:         ifc.Name,
			PeerNamespace:    netlink.NsPid(pid),
			PeerHardwareAddr: MAC(ifc.Addr.Addr()),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("veth %s: %w", name, err)
		}
		if err := noIPv6(name); err != nil {
			return fmt.Errorf("veth %s: %w", name, err)
		}
		if err := netlink.LinkSetUp(veth); err != nil {
			return fmt.Errorf("veth %s: %w", name, err)
		}
	}
	return inNamespace(pid, func(nh *netlink.Handle) error {
		for _, ifc := range ifaces {
			l, err := nh.LinkByName(ifc.Name)
			if err != nil {
				return fmt.Errorf("%s: %w", ifc.Name, err)
			}
			if err := nh.AddrAdd(l, &netlink.Addr{IPNet: ipnet(ifc.Addr)}); err != nil {
				return fmt.Errorf("%s address %s: %w", ifc.Name, ifc.Addr, err)
			}
			if err := nh.LinkSetUp(l); err != nil {
				return fmt.Errorf("%s: %w", ifc.Name, err)
			}
		}
		// The default route last: it is what the container's init waits
		// for (see initwait.go).
		for _, ifc := range ifaces {
			if ifc.Gateway.IsValid() {
				l, err := nh.LinkByName(ifc.Name)
				if err != nil {
					return err
				}
				if err := nh.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(ifc.Gateway.AsSlice())}); err != nil {
					return fmt.Errorf("default route via %s: %w", ifc.Gateway, err)
				}
			}
		}
		return nil
	})
}

// MAC is the hardware address of a container's interface, derived from
// its IP address as Docker does: a container restarted with the same
// address keeps it, so its peers' neighbour caches stay right (with a new
// address each run, they would send to the old one until the entry goes
// stale, seconds of lost packets).
func MAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x52, b[0], b[1], b[2], b[3]} // locally administered
}

// noIPv6 turns IPv6 off on a link of the node: ruche's rules are IPv4
// rules, and with a link-local IPv6 address on a bridge, a container would
// reach the node's services listening on IPv6 (and, on a node forwarding
// IPv6, other networks). A kernel without IPv6 has nothing to turn off.
func noIPv6(link string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+link+"/disable_ipv6", []byte("1"), 0o644)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// inNamespace runs fn with a netlink handle in the network namespace of
// process pid; the calling thread never changes namespace.
func inNamespace(pid int, fn func(*netlink.Handle) error) error {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("namespace of process %d: %w", pid, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("namespace of process %d: %w", pid, err)
	}
	defer nh.Close()
	return fn(nh)
}

func (h *host) Wired(hostPrefix string) bool {
	_, err := netlink.LinkByName(hostPrefix + "0")
	return err == nil
}

// forwardRules are the DNAT rule and the ACCEPT of a published port.
func forwardRules(owner string, f Forward) (dnat, accept []string) {
	tag := []string{"-m", "comment", "--comment", "ruche:" + owner}
	dnat = []string{"!", "-i", BridgePrefix + "+", "-p", f.Proto}
	if f.HostIP.IsValid() {
		dnat = append(dnat, "-d", f.HostIP.String()+"/32")
	}
	dnat = append(dnat, "--dport", strconv.Itoa(int(f.HostPort)))
	dnat = append(append(dnat, tag...), "-j", "DNAT", "--to-destination", f.Dest.String())
	accept = []string{"-d", f.Dest.Addr().String() + "/32", "!", "-i", f.Bridge, "-o", f.Bridge, "-p", f.Proto,
		"--dport", strconv.Itoa(int(f.Dest.Port()))}
	accept = append(append(accept, tag...), "-j", "ACCEPT")
	return dnat, accept
}

func (h *host) AddForward(owner string, f Forward) error {
	dnat, accept := forwardRules(owner, f)
	if err := h.ipt.Insert("filter", chainForward, 1, accept...); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	if err := h.ipt.Append("nat", chainDNAT, dnat...); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	return nil
}

// RemoveForwards deletes the rules tagged with owner's comment.
func (h *host) RemoveForwards(owner string) error {
	tag := "ruche:" + owner
	var errs []error
	for _, tc := range [][2]string{{"filter", chainForward}, {"nat", chainDNAT}} {
		rules, err := h.ipt.List(tc[0], tc[1])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rules {
			f := strings.Fields(strings.ReplaceAll(r, `"`, ""))
			if len(f) < 3 || f[0] != "-A" || !slices.Contains(f, tag) {
				continue
			}
			errs = append(errs, h.ipt.DeleteIfExists(tc[0], tc[1], f[2:]...))
		}
	}
	return errors.Join(errs...)
}
