// Package netmesh is a node's part of the WireGuard mesh that carries
// ruche's private networks between nodes (DESIGN.md "Private networks"):
// one WireGuard interface per node, a peer per other node, and a route per
// subnet of the other nodes over it. Kernel WireGuard when the module is
// there, else the userspace implementation (golang.zx2c4.com/wireguard) on
// a TUN device; both are configured the same way, through wgctrl.
//
// The package knows nothing of projects or the store: the agent computes
// the peers from the managers' MeshState and calls Apply.
package netmesh

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

const (
	// DefaultPort is WireGuard's usual UDP port.
	DefaultPort = 51820
	// MTU leaves room for WireGuard's overhead over a 1500-byte path.
	MTU = 1420
	// Keepalive keeps a NAT mapping open for nodes behind a home router.
	Keepalive = 25 * time.Second
	// IfacePrefix starts the names of ruche's mesh interfaces.
	IfacePrefix = "ruchewg"
)

// IfaceName is the mesh interface of a node: ruchewg and a hash of the
// node's name, so that nodes sharing a machine's /run (the testbed's, in
// namespaces of one host) do not share the userspace control socket.
func IfaceName(node string) string {
	h := sha256.Sum256([]byte(node))
	return IfacePrefix + hex.EncodeToString(h[:])[:6]
}

// Config configures a node's mesh device.
type Config struct {
	Name       string // interface name (IfaceName)
	KeyFile    string // the node's private key; made (mode 0600) if absent
	ListenPort int    // UDP; default DefaultPort
	Log        *slog.Logger
	// Userspace skips the kernel module even where it exists.
	Userspace bool
}

// Peer is another node of the mesh.
type Peer struct {
	PublicKey string         // base64
	Endpoint  netip.AddrPort // where it listens
	Addr      netip.Addr     // its own mesh address
	Subnets   []netip.Prefix // its networks' subnets
}

// Mesh is a node's WireGuard interface and the routes over it.
type Mesh struct {
	cfg  Config
	key  wgtypes.Key
	link device
	wg   *wgctrl.Client
	log  *slog.Logger

	mu      sync.Mutex
	applied map[wgtypes.Key]string // peer -> its configuration, as last applied
	synced  bool                   // peers and routes of a previous run cleared
}

// device is the interface itself: a kernel link or wireguard-go's.
type device interface {
	kind() string
	index() int
	close() error
}

// Open makes (or takes over, after a restart) the node's mesh interface,
// with its key and port; it has no peer until Apply.
func Open(cfg Config) (*Mesh, error) {
	if cfg.ListenPort == 0 {
		cfg.ListenPort = DefaultPort
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	key, err := loadKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	dev, err := openDevice(cfg)
	if err != nil {
		return nil, fmt.Errorf("mesh interface %s: %w", cfg.Name, err)
	}
	m := &Mesh{cfg: cfg, key: key, link: dev, log: cfg.Log, applied: map[wgtypes.Key]string{}}
	if err := m.configure(); err != nil {
		dev.close()
		return nil, fmt.Errorf("mesh interface %s: %w", cfg.Name, err)
	}
	m.log.Info("mesh interface ready", "iface", cfg.Name, "kind", dev.kind(), "port", cfg.ListenPort, "public_key", m.PublicKey())
	return m, nil
}

func (m *Mesh) configure() error {
	wg, err := wgctrl.New()
	if err != nil {
		return err
	}
	m.wg = wg
	port := m.cfg.ListenPort
	if err := wg.ConfigureDevice(m.cfg.Name, wgtypes.Config{PrivateKey: &m.key, ListenPort: &port}); err != nil {
		wg.Close()
		return fmt.Errorf("configure: %w", err)
	}
	return linkUp(m.link.index(), m.cfg.Name)
}

// PublicKey is the node's public key (base64), for the other nodes.
func (m *Mesh) PublicKey() string { return m.key.PublicKey().String() }

// Kind says which WireGuard runs the interface: kernel or userspace.
func (m *Mesh) Kind() string { return m.link.kind() }

// Name is the interface's name.
func (m *Mesh) Name() string { return m.cfg.Name }

// Apply makes the interface's address self (a /32) and its peers and
// routes exactly those of peers: a peer changed or gone is updated or
// removed, the others are left alone (their sessions go on).
func (m *Mesh) Apply(self netip.Addr, peers []Peer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[wgtypes.Key]wgtypes.PeerConfig{}
	var routes []netip.Prefix
	for _, p := range peers {
		k, err := wgtypes.ParseKey(p.PublicKey)
		if err != nil {
			return fmt.Errorf("peer key %q: %w", p.PublicKey, err)
		}
		pc := peerConfig(k, p)
		want[k] = pc
		for _, ipn := range pc.AllowedIPs {
			pfx, _ := netip.AddrFromSlice(ipn.IP)
			ones, _ := ipn.Mask.Size()
			routes = append(routes, netip.PrefixFrom(pfx.Unmap(), ones))
		}
	}
	if !m.synced {
		// A kernel interface kept from a previous run has its peers.
		if d, err := m.wg.Device(m.cfg.Name); err == nil {
			for _, p := range d.Peers {
				m.applied[p.PublicKey] = "?"
			}
		}
	}
	var changes []wgtypes.PeerConfig
	for k := range m.applied {
		if _, ok := want[k]; !ok {
			changes = append(changes, wgtypes.PeerConfig{PublicKey: k, Remove: true})
		}
	}
	for k, pc := range want {
		if m.applied[k] != describe(pc) {
			changes = append(changes, pc)
		}
	}
	if len(changes) > 0 {
		if err := m.wg.ConfigureDevice(m.cfg.Name, wgtypes.Config{Peers: changes}); err != nil {
			return fmt.Errorf("mesh peers: %w", err)
		}
		for _, c := range changes {
			if c.Remove {
				delete(m.applied, c.PublicKey)
			} else {
				m.applied[c.PublicKey] = describe(c)
			}
		}
	}
	if err := syncRoutes(m.link.index(), self, routes); err != nil {
		return fmt.Errorf("mesh routes: %w", err)
	}
	m.synced = true
	return nil
}

// peerConfig is the WireGuard configuration of a peer: its endpoint, and
// as allowed sources (and routes) its own address and its subnets.
func peerConfig(k wgtypes.Key, p Peer) wgtypes.PeerConfig {
	ka := Keepalive
	pc := wgtypes.PeerConfig{PublicKey: k, ReplaceAllowedIPs: true, PersistentKeepaliveInterval: &ka}
	if p.Endpoint.IsValid() {
		pc.Endpoint = net.UDPAddrFromAddrPort(p.Endpoint)
	}
	pfxs := slices.Clone(p.Subnets)
	if p.Addr.IsValid() {
		pfxs = append(pfxs, netip.PrefixFrom(p.Addr, p.Addr.BitLen()))
	}
	slices.SortFunc(pfxs, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	for _, pfx := range slices.Compact(pfxs) {
		pfx = pfx.Masked()
		pc.AllowedIPs = append(pc.AllowedIPs, net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), pfx.Addr().BitLen())})
	}
	return pc
}

// describe is what of a peer's configuration Apply compares.
func describe(pc wgtypes.PeerConfig) string {
	var b strings.Builder
	if pc.Endpoint != nil {
		b.WriteString(pc.Endpoint.String())
	}
	for _, ipn := range pc.AllowedIPs {
		b.WriteString(" " + ipn.String())
	}
	return b.String()
}

// Close stops the interface: the userspace one goes with the process,
// a kernel one is deleted, and with it its routes.
func (m *Mesh) Close() error {
	var errs []error
	if m.wg != nil {
		errs = append(errs, m.wg.Close())
	}
	errs = append(errs, m.link.close())
	return errors.Join(errs...)
}

// loadKey reads the node's private key, or makes one.
func loadKey(path string) (wgtypes.Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
		if err != nil {
			return wgtypes.Key{}, fmt.Errorf("mesh key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return wgtypes.Key{}, fmt.Errorf("mesh key: %w", err)
	}
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("mesh key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return wgtypes.Key{}, fmt.Errorf("mesh key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(k.String()+"\n"), 0o600); err != nil {
		return wgtypes.Key{}, fmt.Errorf("mesh key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return wgtypes.Key{}, fmt.Errorf("mesh key: %w", err)
	}
	return k, nil
}
