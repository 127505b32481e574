package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/netmesh"
	"github.com/ruche-platform/ruche/internal/privnet"
)

// ruche's networks across nodes: the node joins the mesh through its
// managers (NetConn), then keeps its WireGuard peers and routes
// (netmesh) and its networks' rules and names (privnet) as the managers'
// MeshState says.

// SubnetSource is the managers' IPAM for the node's networks
// (privnet.Config.Subnets).
func SubnetSource(conn NetConn, node string, rng netip.Prefix) privnet.SubnetSource {
	return subnetSource{conn: conn, node: node, rng: rng}
}

type subnetSource struct {
	conn NetConn
	node string
	rng  netip.Prefix
}

// netCallTimeout bounds a call to the managers made while a replica is
// being created.
const netCallTimeout = 20 * time.Second

func (s subnetSource) Subnet(spec privnet.NetSpec, have netip.Prefix, avoid []netip.Prefix) (netip.Prefix, error) {
	ctx, cancel := context.WithTimeout(context.Background(), netCallTimeout)
	defer cancel()
	req := client.SubnetRequest{Node: s.node, Range: s.rng.String(), Network: spec.Name, Project: spec.Project, Avoid: prefixStrings(avoid)}
	if have.IsValid() {
		req.Want = have.String()
	}
	sub, err := s.conn.Subnet(ctx, req)
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := netip.ParsePrefix(sub.Subnet)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("the managers gave the subnet %q: %w", sub.Subnet, err)
	}
	return p, nil
}

func (s subnetSource) Release(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), netCallTimeout)
	defer cancel()
	return s.conn.ReleaseSubnet(ctx, s.node, name)
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// MeshLoop keeps a node's part of the mesh.
type MeshLoop struct {
	Conn  NetConn
	Node  string
	Range netip.Prefix
	// Networks are the node's networks; nil on a manager without an
	// agent (`ruche server`), which is on the mesh for its ingress only.
	Networks *privnet.Manager
	// Mesh is the node's WireGuard interface and Endpoint where other
	// nodes reach it; nil on a node no other node reaches (one node, no
	// advertise address): it joins only to agree on the range.
	Mesh     *netmesh.Mesh
	Endpoint netip.AddrPort
	// Avoid is what of the range the machine uses.
	Avoid []netip.Prefix
	Log   *slog.Logger

	applyFn func(netip.Addr, client.MeshState) error // tests; default apply
}

// Run joins the mesh, then applies every MeshState until ctx ends.
func (l *MeshLoop) Run(ctx context.Context) error {
	join := client.MeshNode{Node: l.Node, Range: l.Range.String(), Avoid: prefixStrings(l.Avoid)}
	if l.Mesh != nil {
		join.PublicKey, join.Endpoint = l.Mesh.PublicKey(), l.Endpoint.String()
	}
	var self netip.Addr
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		rec, err := l.Conn.JoinMesh(ctx, join)
		if err == nil {
			if self, err = netip.ParseAddr(rec.Addr); err == nil || l.Mesh == nil {
				l.Log.Info("joined the mesh", "addr", rec.Addr)
				break
			}
			err = fmt.Errorf("the managers gave the mesh address %q: %w", rec.Addr, err)
		}
		l.Log.Warn("joining the mesh failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	if l.Mesh == nil {
		// No other node reaches this one: nothing of the mesh to follow
		// (and no state to recompute at every replica's change).
		<-ctx.Done()
		return nil
	}
	for {
		states, err := l.Conn.WatchMesh(ctx, l.Node)
		if err != nil {
			l.Log.Warn("watching the mesh failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Second):
			}
			continue
		}
		l.follow(ctx, self, states)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// meshRetry is how soon a mesh state that failed to apply is tried again
// when no newer one comes.
const meshRetry = 5 * time.Second

// follow applies each state of states until the channel closes; one that
// fails is tried again (a quiet cluster may send no other for long).
func (l *MeshLoop) follow(ctx context.Context, self netip.Addr, states <-chan client.MeshState) {
	var pending *client.MeshState
	retry := time.NewTimer(meshRetry)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case st, ok := <-states:
			if !ok {
				return
			}
			pending = &st
		case <-retry.C:
		case <-ctx.Done():
			return
		}
		if pending == nil {
			continue
		}
		apply := l.applyFn
		if apply == nil {
			apply = l.apply
		}
		if err := apply(self, *pending); err != nil {
			l.Log.Warn("applying the mesh failed; trying again", "err", err, "in", meshRetry)
			retry.Reset(meshRetry)
			continue
		}
		pending = nil
	}
}

// apply sets the peers and routes, then the networks' rules and names.
func (l *MeshLoop) apply(self netip.Addr, st client.MeshState) error {
	if l.Networks == nil { // a manager's ingress only: peers and routes
		peers, _ := MeshPlan(l.Node, st, nil)
		return l.Mesh.Apply(self, peers)
	}
	peers, view := MeshPlan(l.Node, st, l.Networks.Local())
	view.Iface = l.Mesh.Name()
	return errors.Join(l.Mesh.Apply(self, peers), l.Networks.SetMesh(view))
}

// MeshPlan turns the managers' MeshState into the node's peers (the other
// nodes with a key and an endpoint, each with its own address and
// subnets) and its networks' view of them: their subnets and names on
// those nodes. What the state has wrong is skipped, not fatal: so is a
// subnet of another node that overlaps one of local (the machine's own
// routes and networks), whose route over the mesh would replace the
// machine's.
func MeshPlan(node string, st client.MeshState, local []netip.Prefix) ([]netmesh.Peer, privnet.MeshView) {
	view := privnet.MeshView{Remote: map[string][]netip.Prefix{}, Names: map[string]map[string][]netip.Addr{}}
	peers := map[string]*netmesh.Peer{}
	var order []string
	for _, n := range st.Nodes {
		if n.Node == node || n.PublicKey == "" || n.Endpoint == "" {
			continue
		}
		ep, err1 := netip.ParseAddrPort(n.Endpoint)
		addr, err2 := netip.ParseAddr(n.Addr)
		if err1 != nil || err2 != nil {
			continue
		}
		peers[n.Node] = &netmesh.Peer{PublicKey: n.PublicKey, Endpoint: ep, Addr: addr}
		order = append(order, n.Node)
		view.Nodes = append(view.Nodes, addr)
	}
	for _, s := range st.Subnets {
		p, err := netip.ParsePrefix(s.Subnet)
		peer := peers[s.Node]
		if err != nil || peer == nil || slices.ContainsFunc(local, p.Overlaps) {
			continue
		}
		peer.Subnets = append(peer.Subnets, p)
		view.Remote[s.Network] = append(view.Remote[s.Network], p)
	}
	for _, n := range st.Names {
		a, err := netip.ParseAddr(n.Addr)
		if err != nil || peers[n.Node] == nil {
			continue
		}
		names := view.Names[n.Network]
		if names == nil {
			names = map[string][]netip.Addr{}
			view.Names[n.Network] = names
		}
		for _, name := range n.Names {
			name = strings.ToLower(name)
			names[name] = append(names[name], a)
		}
	}
	out := make([]netmesh.Peer, 0, len(order))
	for _, n := range order {
		out = append(out, *peers[n])
	}
	return out, view
}
