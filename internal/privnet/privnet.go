// Package privnet is ruche's own container networking on one node, the
// first part of DESIGN.md's private networks: each project network is a
// Linux bridge of ruche's, its containers get addresses from ruche (no
// Docker network, the containers run with Docker's "none" network and are
// wired by netlink), a DNS server on the bridge's gateway answers the
// project's names, and iptables rules keep networks apart.
//
// Why not Docker's networks: Docker sets up its embedded DNS resolver in
// every container on a user-defined network (iptables rules run inside the
// container's namespace), which made a 20-replica deploy about 25 % slower
// than the same containers on Docker's default bridge (docs/benchmarks.md);
// and the WireGuard mesh of DESIGN.md needs addresses ruche owns.
//
// What this node-local part does not do yet: the mesh (a cluster using it
// has one node), published ports (Docker cannot publish the ports of a
// container without a network), SRV records. See README.md.
//
// Addresses: every network gets a /24 of Config.Range, recorded in a state
// file so that it keeps its subnet across restarts and reboots; the bridge
// takes the first address, containers the next free ones. A container's
// address is one of its labels (LabelAddrPrefix + network), so an agent
// that restarts finds which addresses are taken (Adopt).
package privnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ruche-platform/ruche/internal/netmesh"
	"github.com/ruche-platform/ruche/internal/runtime"
)

// LabelAddrPrefix + the engine network's name labels a container with its
// address on that network.
const LabelAddrPrefix = "ruche.addr."

// DefaultRange is where network subnets come from unless configured.
var DefaultRange = netip.MustParsePrefix("10.208.0.0/16")

// subnetBits is the size of one network's subnet.
const subnetBits = 24

// Interface name prefixes: bridges and the host ends of veth pairs. Linux
// names are at most 15 bytes; these leave 9 and 10 for a hash.
const (
	BridgePrefix = "ruchbr"
	vethPrefix   = "ruchv"
	// MeshPrefix starts the name of the node's mesh interface.
	MeshPrefix = netmesh.IfacePrefix
)

// NetSpec is a network a container joins.
type NetSpec struct {
	Name     string // the engine network's name, unique on the node
	Project  string
	Internal bool // no way out of the network (compose's internal: true)
}

// Iface is one network interface to put into a container.
type Iface struct {
	Bridge  string       // the bridge to attach to
	Name    string       // inside the container: eth0, eth1, ...
	Addr    netip.Prefix // the container's address with the subnet's length
	Gateway netip.Addr   // default route via this, on the first interface only (invalid: no route)
}

// Host is what the manager does to the machine: links, routes and
// firewall. The real one is NewHost; tests use a fake.
type Host interface {
	// Taken returns the prefixes the machine already uses (routes other
	// than the default route, its addresses, its resolvers), which a
	// subnet must not overlap.
	Taken() ([]netip.Prefix, error)
	// EnsureBridge creates the bridge with addr (the gateway, with the
	// subnet's length) and its firewall rules, up. Idempotent.
	// Internal: no traffic leaves the bridge but to the node's DNS.
	EnsureBridge(name string, addr netip.Prefix, internal bool) error
	// DeleteBridge removes the bridge and its firewall rules; an absent
	// bridge is not an error.
	DeleteBridge(name string, subnet netip.Prefix) error
	// Wire adds the interfaces to the network namespace of process pid,
	// each as a veth pair whose host end (hostPrefix + index) joins its
	// bridge. Wiring an already wired process is an error.
	Wire(pid int, hostPrefix string, ifaces []Iface) error
	// Wired reports whether a host end named hostPrefix+"0" exists.
	Wired(hostPrefix string) bool
	// AddForward publishes a port of a container (owner) on the node's
	// addresses; RemoveForwards removes every port of owner.
	AddForward(owner string, f Forward) error
	RemoveForwards(owner string) error
	// BridgeAddr returns the address of an existing bridge (the gateway,
	// with the subnet's length).
	BridgeAddr(name string) (netip.Prefix, error)
	// SetMesh replaces the rules of traffic between the node's bridges
	// and the mesh interface (meshRules).
	SetMesh(rules [][]string) error
	// Close lets another process own the machine's networks; with
	// teardown (no network left), it also removes the firewall chains.
	Close(teardown bool) error
}

// DNS starts a name server for one network; the manager calls it for every
// bridge. lookup answers a name without the domain suffix.
type DNS func(addr, domain string, lookup func(name string) []netip.Addr) (interface{ Close() error }, error)

// Config configures a Manager.
type Config struct {
	Range    netip.Prefix // zero: DefaultRange
	StateDir string       // where privnet.json is kept
	Host     Host
	DNS      DNS // nil: no name server (tests)
	Log      *slog.Logger
	// Subnets, when set, gives the networks' subnets: the managers' IPAM,
	// so that no two nodes of a cluster have the same. Nil: the node picks
	// them itself (one node, tests).
	Subnets SubnetSource
}

// SubnetSource gives the subnet of a network on the node (the managers',
// through the agent's connection).
type SubnetSource interface {
	// Subnet returns the network's subnet: have (from the state file) if
	// the cluster agrees, else one that overlaps nothing in avoid.
	Subnet(spec NetSpec, have netip.Prefix, avoid []netip.Prefix) (netip.Prefix, error)
	// Release frees the subnet of a network removed from the node.
	Release(name string) error
}

// MeshView is what the node's networks need of the mesh: which subnets of
// their networks are on other nodes, and the names there.
type MeshView struct {
	Iface  string                             // the mesh interface; "": none
	Nodes  []netip.Addr                       // the other nodes' mesh addresses: they reach the containers (their ingress)
	Remote map[string][]netip.Prefix          // by network: its subnets on other nodes
	Names  map[string]map[string][]netip.Addr // by network: names (without the domain) of replicas on other nodes
}

// Manager owns the node's project networks.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	state string

	mu    sync.Mutex
	nets  map[string]*network // by engine network name
	ports map[string]*portSet // by container ID

	// namesMu guards the networks' names, which the name servers read
	// without mu: a name server's Close (under mu) waits for the queries
	// it is answering.
	namesMu sync.RWMutex

	mesh      MeshView   // mu
	meshRules [][]string // mu: the rules last set, if meshSet
	meshSet   bool
}

type network struct {
	Subnet   netip.Prefix `json:"subnet"`
	Bridge   string       `json:"bridge"`
	Domain   string       `json:"domain"`
	Project  string       `json:"project"`
	Internal bool         `json:"internal,omitempty"`

	up      bool                    // bridge ensured since start
	adopted bool                    // made from its bridge (Adopt): Internal not known yet
	claimed bool                    // subnet confirmed by Config.Subnets since start
	used    map[netip.Addr]string   // address -> owner (task ID)
	names   map[string][]netip.Addr // DNS name -> addresses of running containers (Manager.namesMu)
	remote  map[string][]netip.Addr // DNS name -> addresses on other nodes (Manager.namesMu)
	pub     map[string]published    // container ID -> what it published
	dns     interface{ Close() error }
}

type published struct {
	addr  netip.Addr
	names []string
}

// New loads the state and checks the range against the machine's routes.
func New(cfg Config) (*Manager, error) {
	if !cfg.Range.IsValid() {
		cfg.Range = DefaultRange
	}
	cfg.Range = cfg.Range.Masked()
	if !cfg.Range.Addr().Is4() || cfg.Range.Bits() > subnetBits {
		return nil, fmt.Errorf("private network range %s: want an IPv4 prefix of /%d or larger", cfg.Range, subnetBits)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	taken, err := cfg.Host.Taken()
	if err != nil {
		return nil, fmt.Errorf("private networks: read the machine's routes: %w", err)
	}
	for _, p := range taken {
		if p.Overlaps(cfg.Range) && p.Bits() >= cfg.Range.Bits() {
			// A route inside the range: subnets overlapping it are
			// skipped. Only a route covering the whole range refuses it.
			continue
		}
		if p.Overlaps(cfg.Range) {
			return nil, fmt.Errorf("private network range %s overlaps the machine's %s: choose another with --private-range", cfg.Range, p)
		}
	}
	m := &Manager{cfg: cfg, log: cfg.Log, state: filepath.Join(cfg.StateDir, "privnet.json"), nets: map[string]*network{}, ports: map[string]*portSet{}}
	if err := m.load(); err != nil {
		return nil, err
	}
	for name, n := range m.nets {
		if !cfg.Range.Contains(n.Subnet.Addr()) {
			// Its traffic out would not be masqueraded, nor its subnet
			// kept from the new range's.
			return nil, fmt.Errorf("private network %s has the subnet %s, outside --private-range %s: start with the range it was made in, or remove its project first", name, n.Subnet, cfg.Range)
		}
	}
	return m, nil
}

// BridgeName is the bridge of an engine network name.
func BridgeName(netName string) string { return BridgePrefix + hash(netName, 9) }

// VethPrefix is the prefix of the host-side interfaces of one run of a
// container (its process pid): a restarted container gets new ones, while
// the kernel may still be deleting those of the run before.
func VethPrefix(containerID string, pid int) string {
	return vethPrefix + hash(fmt.Sprintf("%s/%d", containerID, pid), 9)
}

func hash(s string, n int) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	return fmt.Sprintf("%016x", h.Sum64())[:n]
}

func (m *Manager) load() error {
	b, err := os.ReadFile(m.state)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("private networks: %w", err)
	}
	var st struct {
		Networks map[string]*network `json:"networks"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("private networks: %s: %w", m.state, err)
	}
	for name, n := range st.Networks {
		if n == nil || !n.Subnet.IsValid() || n.Bridge != BridgeName(name) {
			return fmt.Errorf("private networks: %s: bad entry for %q", m.state, name)
		}
		n.init()
		m.nets[name] = n
	}
	return nil
}

func (n *network) init() {
	n.used = map[netip.Addr]string{}
	n.names = map[string][]netip.Addr{}
	n.pub = map[string]published{}
}

// save writes the state file atomically; m.mu is held.
func (m *Manager) save() error {
	st := struct {
		Networks map[string]*network `json:"networks"`
	}{m.nets}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := m.state + ".tmp"
	if err := writeSynced(tmp, b); err != nil {
		return fmt.Errorf("private networks: %w", err)
	}
	if err := os.Rename(tmp, m.state); err != nil {
		return fmt.Errorf("private networks: %w", err)
	}
	return nil
}

// writeSynced writes a file and flushes it to disk, so that the rename
// after it never leaves an empty state file after a power loss.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// Attach ensures the networks (the first being the one with the default
// route) and reserves an address on each for owner, returning the
// interfaces to wire. The domain is what the networks' name server
// answers for (<project>.internal).
func (m *Manager) Attach(owner, domain string, nets []NetSpec) ([]Iface, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ifaces []Iface
	for i, spec := range nets {
		n, err := m.ensureLocked(spec, domain)
		if err == nil {
			var a netip.Addr
			if a, err = n.reserve(owner); err == nil {
				ifaces = append(ifaces, n.iface(i, a))
				continue
			}
		}
		for _, done := range nets[:i] {
			if n := m.nets[done.Name]; n != nil {
				n.release(owner)
			}
		}
		return nil, fmt.Errorf("network %s: %w", spec.Name, err)
	}
	return ifaces, nil
}

// iface is the i-th interface of a container, at address a.
func (n *network) iface(i int, a netip.Addr) Iface {
	ifc := Iface{Bridge: n.Bridge, Name: fmt.Sprintf("eth%d", i), Addr: netip.PrefixFrom(a, n.Subnet.Bits())}
	if i == 0 {
		ifc.Gateway = n.gateway()
	}
	return ifc
}

func (n *network) release(owner string) {
	for a, o := range n.used {
		if o == owner {
			delete(n.used, a)
		}
	}
}

func (n *network) gateway() netip.Addr { return n.Subnet.Addr().Next() }

// reserve takes the lowest free address after the gateway.
func (n *network) reserve(owner string) (netip.Addr, error) {
	last := lastAddr(n.Subnet)
	for a := n.gateway().Next(); a.Less(last); a = a.Next() {
		if _, ok := n.used[a]; !ok {
			n.used[a] = owner
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s", n.Subnet)
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ensureLocked gives the network a subnet (once) and its bridge and name
// server (once per start).
func (m *Manager) ensureLocked(spec NetSpec, domain string) (*network, error) {
	name := spec.Name
	n := m.nets[name]
	if n == nil {
		subnet, err := m.newSubnetLocked(spec)
		if err != nil {
			return nil, err
		}
		n = &network{Subnet: subnet, Bridge: BridgeName(name), Domain: domain, Project: spec.Project, Internal: spec.Internal, claimed: true}
		n.init()
		n.remote = m.mesh.Names[name] // the mesh's view may have it already
		m.nets[name] = n
		if err := m.save(); err != nil {
			delete(m.nets, name)
			return nil, err
		}
		m.log.Info("private network subnet", "network", name, "subnet", subnet, "bridge", n.Bridge)
	}
	if n.adopted {
		n.Internal, n.adopted = spec.Internal, false
		if err := m.save(); err != nil {
			return nil, err
		}
	}
	if !n.claimed && m.cfg.Subnets != nil {
		// A subnet of the state file, from before the managers knew it
		// (or from before this start): the cluster must agree.
		got, err := m.cfg.Subnets.Subnet(spec, n.Subnet, m.avoidLocked())
		if err != nil {
			return nil, fmt.Errorf("network %s: subnet: %w", name, err)
		}
		if got != n.Subnet {
			return nil, fmt.Errorf("network %s has the subnet %s on this node, but the cluster gives it %s: remove its project to make it again", name, n.Subnet, got)
		}
		n.claimed = true
	}
	if n.up {
		return n, nil
	}
	if err := m.cfg.Host.EnsureBridge(n.Bridge, netip.PrefixFrom(n.gateway(), n.Subnet.Bits()), n.Internal); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	if m.cfg.DNS != nil && n.dns == nil {
		srv, err := m.cfg.DNS(netip.AddrPortFrom(n.gateway(), 53).String(), n.Domain, n.lookupFunc(&m.namesMu))
		if err != nil {
			return nil, fmt.Errorf("network %s: name server: %w", name, err)
		}
		n.dns = srv
	}
	n.up = true
	if err := m.applyMeshLocked(); err != nil {
		m.log.Warn("mesh rules", "err", err)
	}
	return n, nil
}

// newSubnetLocked gives a new network its subnet: the managers' when
// there are, else the first free one of the range.
func (m *Manager) newSubnetLocked(spec NetSpec) (netip.Prefix, error) {
	if m.cfg.Subnets == nil {
		return m.freeSubnetLocked()
	}
	// The subnets of this node's networks not claimed since start are
	// not the managers' yet (a state file from before them, a network
	// taken back from its bridge): none of them may be given.
	avoid := m.avoidLocked()
	for _, n := range m.nets {
		if !n.claimed {
			avoid = append(avoid, n.Subnet)
		}
	}
	p, err := m.cfg.Subnets.Subnet(spec, netip.Prefix{}, avoid)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet: %w", err)
	}
	if p.Bits() != subnetBits || !m.cfg.Range.Contains(p.Addr()) {
		return netip.Prefix{}, fmt.Errorf("the cluster gave the subnet %s, not a /%d of %s", p, subnetBits, m.cfg.Range)
	}
	for other, n := range m.nets {
		if n.Subnet.Overlaps(p) {
			return netip.Prefix{}, fmt.Errorf("the cluster gave the subnet %s, which %s has on this node", p, other)
		}
	}
	return p, nil
}

// Avoid returns the prefixes of the range the machine uses but this
// node's networks (routes, addresses, resolvers; bridges of another ruche
// or of an earlier data dir among them): no subnet may overlap them.
func (m *Manager) Avoid() []netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.avoidLocked()
}

// Local returns the prefixes of the range this machine has: Avoid and the
// subnets of this node's networks. A route over the mesh must overlap
// none of them (it would take the place of the machine's own).
func (m *Manager) Local() []netip.Prefix {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.avoidLocked()
	for _, n := range m.nets {
		out = append(out, n.Subnet)
	}
	return out
}

// avoidLocked is Avoid, read each time: a route added since start counts.
func (m *Manager) avoidLocked() []netip.Prefix {
	taken, err := m.cfg.Host.Taken()
	if err != nil {
		m.log.Warn("read the machine's routes", "err", err)
	}
	var out []netip.Prefix
	for _, p := range taken {
		if p.Overlaps(m.cfg.Range) && !m.ownLocked(p) {
			out = append(out, p)
		}
	}
	return out
}

// ownLocked reports whether p is one of this node's networks: their
// subnets, and their gateways' addresses.
func (m *Manager) ownLocked(p netip.Prefix) bool {
	for _, n := range m.nets {
		if p.Masked() == n.Subnet || (p.Bits() == 32 && p.Addr() == n.gateway()) {
			return true
		}
	}
	return false
}

// SetMesh takes the mesh's view of the node's networks: their rules
// between the bridges and the mesh interface, and the names on other
// nodes their name servers answer too.
func (m *Manager) SetMesh(v MeshView) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mesh = v
	m.namesMu.Lock()
	for name, n := range m.nets {
		n.remote = v.Names[name]
	}
	m.namesMu.Unlock()
	return m.applyMeshLocked()
}

// applyMeshLocked sets the mesh rules of the networks that are up.
func (m *Manager) applyMeshLocked() error {
	if m.mesh.Iface == "" {
		return nil
	}
	var bs []MeshBridge
	for name, n := range m.nets {
		if n.up {
			bs = append(bs, MeshBridge{Bridge: n.Bridge, Subnet: n.Subnet, Remote: m.mesh.Remote[name]})
		}
	}
	rules := meshRules(m.mesh.Iface, m.mesh.Nodes, bs)
	if m.meshSet && slices.EqualFunc(rules, m.meshRules, slices.Equal) {
		return nil // the state changed elsewhere (names, other networks)
	}
	if err := m.cfg.Host.SetMesh(rules); err != nil {
		m.meshSet = false
		return err
	}
	m.meshRules, m.meshSet = rules, true
	return nil
}

// MeshBridge is a bridge with the subnets of its network on other nodes.
type MeshBridge struct {
	Bridge string
	Subnet netip.Prefix
	Remote []netip.Prefix
}

// meshRules are the rules of the RUCHE-MESH chain: a bridge's containers
// reach their network's subnets on other nodes, and are reached from
// them and from the other nodes' own addresses (their ingress); nothing
// else crosses between a bridge and the mesh (RUCHE-FORWARD drops it).
func meshRules(iface string, nodes []netip.Addr, bridges []MeshBridge) [][]string {
	sort.Slice(bridges, func(i, j int) bool { return bridges[i].Bridge < bridges[j].Bridge })
	var out [][]string
	for _, b := range bridges {
		s := b.Subnet.String()
		for _, r := range b.Remote {
			out = append(out,
				[]string{"-i", b.Bridge, "-o", iface, "-s", s, "-d", r.String(), "-j", "ACCEPT"},
				[]string{"-i", iface, "-o", b.Bridge, "-s", r.String(), "-d", s, "-j", "ACCEPT"})
		}
		for _, a := range nodes {
			out = append(out, []string{"-i", iface, "-o", b.Bridge, "-s", a.String() + "/32", "-d", s, "-j", "ACCEPT"})
		}
	}
	return out
}

// lookupFunc answers the name server from the names published.
func (n *network) lookupFunc(mu *sync.RWMutex) func(string) []netip.Addr {
	return func(name string) []netip.Addr {
		mu.RLock()
		defer mu.RUnlock()
		return append(append([]netip.Addr(nil), n.names[name]...), n.remote[name]...)
	}
}

// freeSubnetLocked picks the first /24 of the range that no network has
// and no route of the machine overlaps.
func (m *Manager) freeSubnetLocked() (netip.Prefix, error) {
	taken, err := m.cfg.Host.Taken()
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, n := range m.nets {
		taken = append(taken, n.Subnet)
	}
	r := m.cfg.Range
	for p := netip.PrefixFrom(r.Addr(), subnetBits); r.Contains(p.Addr()); p = netip.PrefixFrom(lastAddr(p).Next(), subnetBits) {
		free := true
		for _, t := range taken {
			if t.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
		if !lastAddr(p).Next().IsValid() || lastAddr(p) == lastAddr(r) {
			break
		}
	}
	return netip.Prefix{}, fmt.Errorf("private network range %s is full", r)
}

// Adopt records the addresses of an existing container (from its labels),
// so that they are not given to another. Labels naming an unknown network
// or an address outside its subnet are ignored (logged).
func (m *Manager) Adopt(owner string, labels map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range labels {
		name, ok := strings.CutPrefix(k, LabelAddrPrefix)
		if !ok {
			continue
		}
		if m.nets[name] == nil {
			if err := m.adoptNetworkLocked(name, labels[runtime.LabelProject]); err != nil {
				m.log.Warn("container address not adopted", "owner", owner, "label", k, "err", err)
				continue
			}
		}
		n, a, err := m.lookupAddrLocked(name, v)
		if err != nil {
			m.log.Warn("container address not adopted", "owner", owner, "label", k, "err", err)
			continue
		}
		n.used[a] = owner
	}
}

// adoptNetworkLocked takes back a network the state file does not have
// (a data dir restored from a backup, which holds the store, not the
// node's files) from its bridge, which its containers still use: its
// subnet is the bridge's.
func (m *Manager) adoptNetworkLocked(name, project string) error {
	gw, err := m.cfg.Host.BridgeAddr(BridgeName(name))
	if err != nil {
		return fmt.Errorf("unknown network %q, and its bridge: %w", name, err)
	}
	subnet := gw.Masked()
	if subnet.Bits() != subnetBits || !m.cfg.Range.Contains(subnet.Addr()) || gw.Addr() != subnet.Addr().Next() {
		return fmt.Errorf("unknown network %q: its bridge has %s, not the gateway of a /%d of %s", name, gw, subnetBits, m.cfg.Range)
	}
	for other, n := range m.nets {
		if n.Subnet.Overlaps(subnet) {
			return fmt.Errorf("unknown network %q: its bridge's %s is %s's", name, subnet, other)
		}
	}
	n := &network{Subnet: subnet, Bridge: BridgeName(name), Domain: project + ".internal", Project: project, adopted: true}
	n.init()
	n.remote = m.mesh.Names[name]
	m.nets[name] = n
	if err := m.save(); err != nil {
		delete(m.nets, name)
		return err
	}
	m.log.Info("private network taken back from its bridge", "network", name, "subnet", subnet)
	return nil
}

func (m *Manager) lookupAddrLocked(name, addr string) (*network, netip.Addr, error) {
	n := m.nets[name]
	if n == nil {
		return nil, netip.Addr{}, fmt.Errorf("unknown network %q", name)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || !n.Subnet.Contains(a) {
		return nil, netip.Addr{}, fmt.Errorf("address %q not in %s", addr, n.Subnet)
	}
	return n, a, nil
}

// Labels returns the address labels of the interfaces of Attach.
func Labels(nets []NetSpec, ifaces []Iface) map[string]string {
	l := make(map[string]string, len(ifaces))
	for i, ifc := range ifaces {
		l[LabelAddrPrefix+nets[i].Name] = ifc.Addr.Addr().String()
	}
	return l
}

// Addresses returns a container's addresses by engine network name, from
// its labels.
func Addresses(labels map[string]string) map[string]string {
	var out map[string]string
	for k, v := range labels {
		if name, ok := strings.CutPrefix(k, LabelAddrPrefix); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = v
		}
	}
	return out
}

// Ifaces rebuilds the interfaces of a container from its labels, in the
// order of nets (the first gets the default route), ensuring the bridges.
func (m *Manager) Ifaces(nets []NetSpec, labels map[string]string) ([]Iface, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ifaces []Iface
	for i, spec := range nets {
		n, a, err := m.lookupAddrLocked(spec.Name, labels[LabelAddrPrefix+spec.Name])
		if err == nil {
			_, err = m.ensureLocked(spec, n.Domain)
		}
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", spec.Name, err)
		}
		ifaces = append(ifaces, n.iface(i, a))
	}
	return ifaces, nil
}

// Wire puts the interfaces into the running container (process pid).
func (m *Manager) Wire(containerID string, pid int, ifaces []Iface) error {
	return m.cfg.Host.Wire(pid, VethPrefix(containerID, pid), ifaces)
}

// Wired reports whether the interfaces of the container's run (process
// pid) exist.
func (m *Manager) Wired(containerID string, pid int) bool {
	return m.cfg.Host.Wired(VethPrefix(containerID, pid))
}

// Publish makes names of the container resolve to its address on each
// network (names by engine network name), replacing what it published
// before.
func (m *Manager) Publish(containerID string, labels map[string]string, names map[string][]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.namesMu.Lock()
	defer m.namesMu.Unlock()
	m.unpublishLocked(containerID)
	for netName, ns := range names {
		n, a, err := m.lookupAddrLocked(netName, labels[LabelAddrPrefix+netName])
		if err != nil {
			continue
		}
		for _, name := range ns {
			name = strings.ToLower(name)
			if !slicesContains(n.names[name], a) {
				n.names[name] = append(n.names[name], a)
			}
		}
		n.pub[containerID] = published{addr: a, names: ns}
	}
}

// Published reports whether the container's names are published.
func (m *Manager) Published(containerID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nets {
		if _, ok := n.pub[containerID]; ok {
			return true
		}
	}
	return false
}

// Unpublish removes the names of a container that stopped or went away.
func (m *Manager) Unpublish(containerID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.namesMu.Lock()
	defer m.namesMu.Unlock()
	m.unpublishLocked(containerID)
}

// unpublishLocked: m.mu and m.namesMu are held.
func (m *Manager) unpublishLocked(containerID string) {
	for _, n := range m.nets {
		p, ok := n.pub[containerID]
		if !ok {
			continue
		}
		delete(n.pub, containerID)
		for _, name := range p.names {
			name = strings.ToLower(name)
			as := n.names[name][:0]
			for _, a := range n.names[name] {
				if a != p.addr {
					as = append(as, a)
				}
			}
			if len(as) == 0 {
				delete(n.names, name)
			} else {
				n.names[name] = as
			}
		}
	}
}

// Release frees the addresses of owner (its container is removed).
func (m *Manager) Release(owner string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nets {
		n.release(owner)
	}
}

// Unused returns the networks (sorted by name) of project (empty: any)
// with no address in use, for the agent's sweep and clean-up.
func (m *Manager) Unused(project string) []NetSpec {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []NetSpec
	for name, n := range m.nets {
		if len(n.used) == 0 && (project == "" || n.Project == project) {
			out = append(out, NetSpec{Name: name, Project: n.Project, Internal: n.Internal})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Remove deletes a network with no address in use: its name server,
// bridge, rules and subnet. A network still in use is left (false).
func (m *Manager) Remove(name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nets[name]
	if n == nil {
		return true, nil
	}
	if len(n.used) > 0 {
		return false, nil
	}
	// From here the network is half gone: if the removal fails, the next
	// Attach sets it up again (rules, name server).
	n.up = false
	if n.dns != nil {
		n.dns.Close()
		n.dns = nil
	}
	if err := m.cfg.Host.DeleteBridge(n.Bridge, n.Subnet); err != nil {
		return false, err
	}
	delete(m.nets, name)
	if err := m.save(); err != nil {
		return true, err
	}
	if err := m.applyMeshLocked(); err != nil {
		m.log.Warn("mesh rules", "err", err)
	}
	if m.cfg.Subnets != nil {
		if err := m.cfg.Subnets.Release(name); err != nil {
			// The cluster keeps it for this network and node: given
			// again if the network comes back.
			m.log.Warn("release the subnet", "network", name, "subnet", n.Subnet, "err", err)
		}
	}
	return true, nil
}

// Close stops the name servers. Bridges, rules and containers stay: the
// containers keep running while the agent is away. With no network left,
// the firewall chains go too.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nets {
		if n.dns != nil {
			n.dns.Close()
			n.dns = nil
		}
		n.up = false
	}
	// The listeners of published ports end with the process; their rules
	// are rebuilt with the chains at the next start.
	for id, ps := range m.ports {
		ps.close()
		delete(m.ports, id)
	}
	return m.cfg.Host.Close(len(m.nets) == 0)
}

func slicesContains(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}
