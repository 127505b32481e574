package daemon

import (
	"debug/elf"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/initbin"
	"github.com/ruche-platform/ruche/internal/netmesh"
	"github.com/ruche-platform/ruche/internal/privdns"
	"github.com/ruche-platform/ruche/internal/privnet"
)

// The replicas' networks (`ruche up --networks`).
const (
	NetworksDocker = "docker"
	NetworksRuche  = "ruche"
)

// NetworksConfig is the replicas' networks on a node (`--networks` and
// the flags that go with it), the same for `ruche up` and `ruche agent`.
type NetworksConfig struct {
	// Mode is NetworksDocker (default) or NetworksRuche.
	Mode string
	// PrivateRange is where ruche's networks take their addresses: the
	// cluster's, the same on every node (the first /24 for the nodes' own
	// mesh addresses, a /24 per network and node after it).
	PrivateRange netip.Prefix
	DNSUpstreams []string // where the networks' DNS forwards; default /etc/resolv.conf's
	MeshPort     int      // the WireGuard mesh's UDP port; default netmesh.DefaultPort
}

// rangeOrDefault is PrivateRange, or privnet.DefaultRange when none is set.
func (nc NetworksConfig) rangeOrDefault() netip.Prefix {
	if nc.PrivateRange.IsValid() {
		return nc.PrivateRange
	}
	return privnet.DefaultRange
}

// privnetParts are ruche's networks on a node: the node's networks, the
// init binary of their containers, and the mesh.
type privnetParts struct {
	pn      *privnet.Manager
	initBin string
	mesh    *netmesh.Mesh // nil: no other node reaches this one
	loop    *agent.MeshLoop
}

// openPrivnet sets up ruche's own networks on this node: the firewall
// chains, the state of the networks (their subnets from the managers'
// IPAM, through conn), the name servers' forwarders, the containers' init
// (initBinary), and, with an advertise address, the node's WireGuard
// interface.
func openPrivnet(nc NetworksConfig, dataDir, node, advertise string, conn agent.NetConn, log *slog.Logger) (_ *privnetParts, err error) {
	dir := filepath.Join(dataDir, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	bin, err := initBinary(dir, log)
	if err != nil {
		return nil, err
	}
	rng := nc.rangeOrDefault()
	host, err := privnet.NewHost(rng)
	if err != nil {
		return nil, fmt.Errorf("--networks %s: %w", NetworksRuche, err)
	}
	defer func() {
		if err != nil {
			host.Close(false)
		}
	}()
	upstreams := nc.DNSUpstreams
	if len(upstreams) == 0 {
		if upstreams, err = privdns.HostUpstreams("/etc/resolv.conf"); err != nil {
			log.Warn("private networks: no name server to forward public names to", "err", err)
		}
	}
	plog := log.With("component", "privnet")
	dns := func(addr, domain string, lookup func(string) []netip.Addr) (interface{ Close() error }, error) {
		return privdns.Start(privdns.Config{Addr: addr, Domain: domain, Lookup: lookup, Upstreams: upstreams, Log: plog})
	}
	var mesh *netmesh.Mesh
	var endpoint netip.AddrPort
	if advertise != "" {
		if mesh, endpoint, err = openMesh(nc, dir, node, advertise, log); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				mesh.Close()
			}
		}()
	}
	m, err := privnet.New(privnet.Config{Range: rng, StateDir: dir, Host: host, DNS: dns, Log: plog,
		Subnets: agent.SubnetSource(conn, node, rng)})
	if err != nil {
		return nil, err
	}
	return &privnetParts{pn: m, initBin: bin, mesh: mesh,
		loop: &agent.MeshLoop{Conn: conn, Node: node, Range: rng, Networks: m, Avoid: m.Avoid(), Mesh: mesh, Endpoint: endpoint, Log: log.With("component", "mesh")}}, nil
}

// openMesh opens the node's WireGuard interface, for other nodes to reach
// it at advertise.
func openMesh(nc NetworksConfig, dir, node, advertise string, log *slog.Logger) (*netmesh.Mesh, netip.AddrPort, error) {
	a, err := netip.ParseAddr(advertise)
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("--networks %s: the mesh needs an IP address to advertise, not %q", NetworksRuche, advertise)
	}
	port := nc.MeshPort
	if port == 0 {
		port = netmesh.DefaultPort
	}
	mesh, err := netmesh.Open(netmesh.Config{Name: netmesh.IfaceName(node), KeyFile: filepath.Join(dir, "mesh.key"), ListenPort: port, Log: log.With("component", "mesh")})
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("--networks %s: %w", NetworksRuche, err)
	}
	return mesh, netip.AddrPortFrom(a, uint16(port)), nil
}

// openServerMesh puts a manager without an agent (`ruche server`) on the
// mesh, with no network of its own: its ingress reaches the replicas of
// the nodes at their private addresses, as the nodes' own ingress does.
func openServerMesh(nc NetworksConfig, dataDir, node, advertise string, conn agent.NetConn, log *slog.Logger) (*privnetParts, error) {
	if advertise == "" {
		return nil, nil // one machine, no other node
	}
	rng := nc.rangeOrDefault()
	dir := filepath.Join(dataDir, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	mesh, endpoint, err := openMesh(nc, dir, node, advertise, log)
	if err != nil {
		return nil, err
	}
	return &privnetParts{mesh: mesh,
		loop: &agent.MeshLoop{Conn: conn, Node: node, Range: rng, Mesh: mesh, Endpoint: endpoint, Log: log.With("component", "mesh")}}, nil
}

// close stops the name servers and the mesh; the bridges and containers
// stay.
func (p *privnetParts) close(log *slog.Logger) {
	if p.mesh != nil {
		if err := p.mesh.Close(); err != nil {
			log.Warn("mesh: closing", "err", err)
		}
	}
	if p.pn == nil {
		return
	}
	if err := p.pn.Close(); err != nil {
		log.Warn("private networks: closing", "err", err)
	}
}

// initBinary is the init of containers on ruche's networks: the small one
// this build carries (cmd/ruche-init), installed in dir, or else this
// executable.
func initBinary(dir string, log *slog.Logger) (string, error) {
	p, ok, err := initbin.Install(dir)
	if err != nil {
		return "", fmt.Errorf("--networks %s: the containers' init: %w", NetworksRuche, err)
	}
	if ok {
		return p, nil
	}
	log.Info("this build carries no container init (built without go generate ./internal/initbin, which make build runs): containers run ruche itself as their init, slower to start")
	return staticExecutable()
}

// staticExecutable returns the path of this executable, checking that it
// is statically linked (no program interpreter).
func staticExecutable() (string, error) {
	p, err := os.Executable()
	if err == nil {
		p, err = filepath.EvalSymlinks(p)
	}
	if err != nil {
		return "", fmt.Errorf("--networks %s: find this executable: %w", NetworksRuche, err)
	}
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("--networks %s: %s: %w", NetworksRuche, p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return "", fmt.Errorf("--networks %s: %s is dynamically linked; it runs inside containers as their init, so build it static (CGO_ENABLED=0, as make build does)", NetworksRuche, p)
		}
	}
	// Containers that run as another user (compose's user:) execute it
	// too.
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o005 != 0o005 {
		return "", fmt.Errorf("--networks %s: %s must be readable and executable by every user (mode 0755): it runs inside containers as their init, also as their own users", NetworksRuche, p)
	}
	return p, nil
}
