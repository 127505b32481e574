package agent

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// The managers' addressing of ruche's networks across nodes (NetConn over
// the store).
//
// The range key (store.NetRangeKey, a JSON string) is written by the
// first JoinMesh or Subnet and never changes after. Every allocation (a
// mesh record or a subnet record written) rewrites it with the same value
// in the same transaction, on the condition that it was not written since
// the allocation read the records: allocations are serialised by it, so
// two of them never hand out the same address or /24. Deletes (release, a
// node removed) need no such guard: they cannot make a duplicate.

// Errors of the mesh's addressing; the API maps them to 400 (ErrMeshInvalid)
// and 409 (the others).
var (
	// ErrMeshInvalid: a request the managers cannot read (range, key,
	// endpoint, prefix, name).
	ErrMeshInvalid = errors.New("agent: invalid mesh request")
	// ErrRangeMismatch: the node's --private-range is not the cluster's.
	ErrRangeMismatch = errors.New("agent: not the cluster's private range")
	// ErrRangeFull: no address or /24 of the range is left.
	ErrRangeFull = errors.New("agent: private range exhausted")
)

// The API codes of ErrRangeMismatch and ErrRangeFull (HTTP 409); RemoteConn
// turns them back into the errors.
const (
	CodeRangeMismatch = "range_mismatch"
	CodeRangeFull     = "range_full"
)

// meshError is one of the errors above with its own message.
type meshError struct {
	kind error
	msg  string
}

func (e *meshError) Error() string { return e.msg }
func (e *meshError) Unwrap() error { return e.kind }

func meshInvalid(format string, args ...any) error {
	return &meshError{kind: ErrMeshInvalid, msg: fmt.Sprintf(format, args...)}
}

var _ NetConn = (*LocalConn)(nil)

// ParsePrivateRange reads a --private-range: an IPv4 network address of
// at most 23 bits (room for the nodes' /24 and at least one subnet).
func ParsePrivateRange(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, meshInvalid("private range %q: want an IPv4 prefix such as 10.208.0.0/16", s)
	}
	if p.Bits() > 23 {
		return netip.Prefix{}, meshInvalid("private range %s is too small: it needs a /24 for the nodes and at least one more for the networks (a /23 or larger)", p)
	}
	if p.Masked() != p {
		return netip.Prefix{}, meshInvalid("private range %s is not a network address (%s?)", p, p.Masked())
	}
	return p, nil
}

// validName refuses a name that cannot be a key element.
func validName(what, s string) error {
	if s == "" || strings.ContainsAny(s, "/\x00") || len(s) > 253 {
		return meshInvalid("%s %q: want a non-empty name without '/'", what, s)
	}
	return nil
}

func parsePrefixes(what string, ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, meshInvalid("%s %q: not a prefix", what, s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// netView is what an allocation reads: the recorded range (rangeRev 0:
// none yet), the mesh records and, for subnets, the subnet records.
type netView struct {
	rangeRev int64
	nodes    map[string]client.MeshNode // by node
	subnets  map[string]client.Subnet   // by key
}

// checkRange reads the recorded range (rev 0: none yet) and refuses want
// if it differs.
func (c *LocalConn) checkRange(ctx context.Context, want netip.Prefix) (rev int64, err error) {
	var recorded string
	rev, err = store.GetJSON(ctx, c.st, store.NetRangeKey, &recorded)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("read the private range: %w", err)
	}
	if rev != 0 && recorded != want.String() {
		return 0, &meshError{kind: ErrRangeMismatch,
			msg: fmt.Sprintf("the cluster's private range is %s; this node was started with --private-range %s", recorded, want)}
	}
	return rev, nil
}

// readNet reads the range (checking want against it), then the mesh
// records and, withSubnets, the subnet records. Any allocation after the
// range was read rewrote the range: the caller's transaction, conditioned
// on rangeRev, then fails.
func (c *LocalConn) readNet(ctx context.Context, want netip.Prefix, withSubnets bool) (netView, error) {
	v := netView{nodes: map[string]client.MeshNode{}, subnets: map[string]client.Subnet{}}
	rev, err := c.checkRange(ctx, want)
	if err != nil {
		return v, err
	}
	v.rangeRev = rev
	kvs, _, err := c.st.List(ctx, store.MeshNodesPrefix)
	if err != nil {
		return v, fmt.Errorf("list mesh nodes: %w", err)
	}
	for _, kv := range kvs {
		var n client.MeshNode
		if store.Decode(kv, &n) == nil {
			v.nodes[store.Last(kv.Key)] = n
		}
	}
	if !withSubnets {
		return v, nil
	}
	kvs, _, err = c.st.List(ctx, store.SubnetsPrefix)
	if err != nil {
		return v, fmt.Errorf("list subnets: %w", err)
	}
	for _, kv := range kvs {
		var s client.Subnet
		if store.Decode(kv, &s) == nil {
			v.subnets[kv.Key] = s
		}
	}
	return v, nil
}

// allocate writes key = rec if the range was not written since v was read,
// rewriting the range (see the comment at the top).
func (c *LocalConn) allocate(ctx context.Context, v netView, rng netip.Prefix, key string, keyRev int64, rec any) error {
	_, err := c.st.Txn(ctx, []store.Cmp{store.ModRevisionIs(store.NetRangeKey, v.rangeRev), store.ModRevisionIs(key, keyRev)},
		store.Put(store.NetRangeKey, store.Encode(rng.String())), store.Put(key, store.Encode(rec)))
	return err
}

// JoinMesh records n with its mesh address: the one it has, else the
// lowest free one of the range's first /24 (.1 to .254).
func (c *LocalConn) JoinMesh(ctx context.Context, n client.MeshNode) (client.MeshNode, error) {
	rng, err := ParsePrivateRange(n.Range)
	if err != nil {
		return client.MeshNode{}, err
	}
	if err := validName("node", n.Node); err != nil {
		return client.MeshNode{}, err
	}
	if n.PublicKey != "" {
		if k, err := base64.StdEncoding.DecodeString(n.PublicKey); err != nil || len(k) != 32 {
			return client.MeshNode{}, meshInvalid("public key %q: want 32 bytes in base64 (wg pubkey)", n.PublicKey)
		}
	}
	if n.Endpoint != "" {
		if _, err := netip.ParseAddrPort(n.Endpoint); err != nil {
			return client.MeshNode{}, meshInvalid("endpoint %q: want ip:port", n.Endpoint)
		}
	}
	avoid, err := parsePrefixes("avoid", n.Avoid)
	if err != nil {
		return client.MeshNode{}, err
	}
	n.Range = rng.String()
	n.Avoid = nil
	for _, p := range avoid {
		// Recorded, it applies to every node's subnets: one covering the
		// range would leave none to the cluster.
		if p.Overlaps(rng) && p.Bits() <= rng.Bits() {
			return client.MeshNode{}, meshInvalid("avoid %s covers the whole private range %s: this node's routes leave none of it to ruche's networks", p, rng)
		}
		n.Avoid = append(n.Avoid, p.String())
	}
	key := store.MeshNodeKey(n.Node)
	for {
		v, err := c.readNet(ctx, rng, false)
		if err != nil {
			return client.MeshNode{}, err
		}
		keyRev := int64(0)
		if kv, err := c.st.Get(ctx, key); err == nil {
			keyRev = kv.ModRevision
		} else if !errors.Is(err, store.ErrNotFound) {
			return client.MeshNode{}, fmt.Errorf("join mesh: %w", err)
		}
		n.Addr, err = meshAddr(rng, n.Node, v.nodes)
		if err != nil {
			return client.MeshNode{}, err
		}
		err = c.allocate(ctx, v, rng, key, keyRev, n)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return client.MeshNode{}, fmt.Errorf("join mesh: %w", err)
		}
		return n, nil
	}
}

// meshAddr is node's address: its record's if it has one in the first /24,
// else the lowest one no other record has.
func meshAddr(rng netip.Prefix, node string, nodes map[string]client.MeshNode) (string, error) {
	first := netip.PrefixFrom(rng.Addr(), 24)
	if old, ok := nodes[node]; ok {
		if a, err := netip.ParseAddr(old.Addr); err == nil && first.Contains(a) {
			return old.Addr, nil
		}
	}
	used := map[string]bool{}
	for name, other := range nodes {
		if name != node {
			used[other.Addr] = true
		}
	}
	a := rng.Addr()
	for range 254 {
		a = a.Next()
		if !used[a.String()] {
			return a.String(), nil
		}
	}
	return "", &meshError{kind: ErrRangeFull, msg: fmt.Sprintf("no mesh address left in %s: 254 nodes have one", first)}
}

// Subnet gives the network's /24 on the node (see NetConn).
func (c *LocalConn) Subnet(ctx context.Context, req client.SubnetRequest) (client.Subnet, error) {
	rng, err := ParsePrivateRange(req.Range)
	if err != nil {
		return client.Subnet{}, err
	}
	for _, f := range []struct{ what, v string }{{"node", req.Node}, {"network", req.Network}, {"project", req.Project}} {
		if err := validName(f.what, f.v); err != nil {
			return client.Subnet{}, err
		}
	}
	avoid, err := parsePrefixes("avoid", req.Avoid)
	if err != nil {
		return client.Subnet{}, err
	}
	var want netip.Prefix
	if req.Want != "" {
		if want, err = netip.ParsePrefix(req.Want); err != nil {
			return client.Subnet{}, meshInvalid("wanted subnet %q: not a prefix", req.Want)
		}
	}
	key := store.SubnetKey(req.Network, req.Node)
	for {
		var have client.Subnet
		if _, err := store.GetJSON(ctx, c.st, key, &have); err == nil {
			// Idempotent, but still only within the cluster's range.
			if _, err := c.checkRange(ctx, rng); err != nil {
				return client.Subnet{}, err
			}
			return have, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return client.Subnet{}, fmt.Errorf("subnet: %w", err)
		}
		v, err := c.readNet(ctx, rng, true)
		if err != nil {
			return client.Subnet{}, err
		}
		if s, ok := v.subnets[key]; ok { // written since the Get
			return s, nil
		}
		all := slices.Clone(avoid)
		for _, n := range v.nodes {
			ps, _ := parsePrefixes("avoid", n.Avoid)
			all = append(all, ps...)
		}
		p, err := pickSubnet(rng, want, v.subnets, all)
		if err != nil {
			return client.Subnet{}, err
		}
		rec := client.Subnet{Network: req.Network, Project: req.Project, Node: req.Node, Subnet: p.String()}
		err = c.allocate(ctx, v, rng, key, 0, rec)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return client.Subnet{}, fmt.Errorf("subnet: %w", err)
		}
		return rec, nil
	}
}

// pickSubnet is want if it fits, else the lowest /24 of rng that does:
// not the first (the nodes'), not taken, overlapping nothing to avoid.
func pickSubnet(rng, want netip.Prefix, taken map[string]client.Subnet, avoid []netip.Prefix) (netip.Prefix, error) {
	used := map[netip.Prefix]bool{}
	for _, s := range taken {
		if p, err := netip.ParsePrefix(s.Subnet); err == nil {
			used[p.Masked()] = true
		}
	}
	first := netip.PrefixFrom(rng.Addr(), 24)
	fits := func(p netip.Prefix) bool {
		if p.Bits() != 24 || p.Masked() != p || !rng.Contains(p.Addr()) || p == first || used[p] {
			return false
		}
		return !slices.ContainsFunc(avoid, p.Overlaps)
	}
	if want.IsValid() && fits(want) {
		return want, nil
	}
	base := binary.BigEndian.Uint32(rng.Addr().AsSlice())
	count := uint32(1) << (24 - rng.Bits())
	for i := uint32(1); i < count; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4(u32bytes(base+i<<8)), 24)
		if fits(p) {
			return p, nil
		}
	}
	return netip.Prefix{}, &meshError{kind: ErrRangeFull,
		msg: fmt.Sprintf("no /24 left in the private range %s: %d taken, the others overlap what the nodes avoid", rng, len(used))}
}

func u32bytes(v uint32) [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return b
}

// ReleaseSubnet deletes the network's subnet record on the node.
func (c *LocalConn) ReleaseSubnet(ctx context.Context, node, network string) error {
	if err := validName("node", node); err != nil {
		return err
	}
	if err := validName("network", network); err != nil {
		return err
	}
	if _, err := c.st.Txn(ctx, nil, store.Delete(store.SubnetKey(network, node))); err != nil {
		return fmt.Errorf("release subnet: %w", err)
	}
	return nil
}

// MeshRemoveOps are the deletes of node's mesh record and subnets, for
// the transaction that removes the node. A subnet given to the node
// between this list and that transaction stays (the node's requests are
// refused once its record is gone).
func (c *LocalConn) MeshRemoveOps(ctx context.Context, node string) ([]store.Op, error) {
	ops := []store.Op{store.Delete(store.MeshNodeKey(node))}
	kvs, _, err := c.st.List(ctx, store.SubnetsPrefix)
	if err != nil {
		return nil, fmt.Errorf("list subnets: %w", err)
	}
	for _, kv := range kvs {
		if store.Last(kv.Key) == node {
			ops = append(ops, store.Delete(kv.Key))
		}
	}
	return ops, nil
}

// meshTask is a task record with the node and id its key names.
type meshTask struct {
	node, id string
	rec      store.TaskRecord
}

// meshStatus is a task's status with the id its key names.
type meshStatus struct {
	id string
	st client.ReplicaStatus
}

// WatchMesh follows the range, the mesh and subnet records, the tasks and
// their statuses, and sends the node's MeshState: at once, then each time
// a change makes it differ from the last one sent (the channel holds the
// latest only). It closes when ctx ends.
func (c *LocalConn) WatchMesh(ctx context.Context, node string) (<-chan client.MeshState, error) {
	if err := validName("node", node); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	nets, err := watchSet(wctx, c.st, store.Root+"net/", func(kv store.KV) (store.KV, bool) { return kv, true })
	if err != nil {
		cancel()
		return nil, err
	}
	tasks, err := watchSet(wctx, c.st, store.TasksPrefix, func(kv store.KV) (meshTask, bool) {
		t := meshTask{}
		var ok bool
		t.node, t.id, ok = store.SplitTask(kv.Key)
		return t, ok && store.Decode(kv, &t.rec) == nil
	})
	if err != nil {
		cancel()
		return nil, err
	}
	statuses, err := watchSet(wctx, c.st, store.TaskStatusPrefix, func(kv store.KV) (meshStatus, bool) {
		s := meshStatus{id: strings.TrimPrefix(kv.Key, store.TaskStatusPrefix)}
		return s, store.Decode(kv, &s.st) == nil
	})
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan client.MeshState, 1)
	go func() {
		defer close(out)
		defer cancel()
		var (
			n                   []store.KV
			t                   []meshTask
			st                  []meshStatus
			haveN, haveT, haveS bool
			last                *client.MeshState
		)
		for {
			select {
			case <-ctx.Done():
				return
			case set, ok := <-nets:
				if !ok {
					return
				}
				n, haveN = set, true
			case set, ok := <-tasks:
				if !ok {
					return
				}
				t, haveT = set, true
			case set, ok := <-statuses:
				if !ok {
					return
				}
				st, haveS = set, true
			}
			if !haveN || !haveT || !haveS {
				continue
			}
			ms := meshState(node, n, t, st)
			if last != nil && reflect.DeepEqual(*last, ms) {
				continue
			}
			last = &ms
			select { // the only sender: after the drain the send cannot block
			case <-out:
			default:
			}
			out <- ms
		}
	}()
	return out, nil
}

// meshState computes the node's MeshState from the records.
func meshState(node string, nets []store.KV, tasks []meshTask, statuses []meshStatus) client.MeshState {
	ms := client.MeshState{Nodes: []client.MeshNode{}, Subnets: []client.Subnet{}, Names: []client.MeshName{}}
	local := map[string]bool{}
	for _, kv := range nets {
		switch {
		case kv.Key == store.NetRangeKey:
			_ = store.Decode(kv, &ms.Range)
		case strings.HasPrefix(kv.Key, store.MeshNodesPrefix):
			var n client.MeshNode
			if store.Decode(kv, &n) == nil {
				ms.Nodes = append(ms.Nodes, n)
			}
		case strings.HasPrefix(kv.Key, store.SubnetsPrefix):
			var s client.Subnet
			if store.Decode(kv, &s) == nil {
				ms.Subnets = append(ms.Subnets, s)
				if s.Node == node {
					local[s.Network] = true
				}
			}
		}
	}
	ready := map[string]client.ReplicaStatus{}
	for _, s := range statuses {
		if s.st.Ready {
			ready[s.id] = s.st
		}
	}
	for _, t := range tasks {
		st, ok := ready[t.id]
		if t.node == node || !ok {
			continue
		}
		var aliases map[string][]string
		for net, ip := range st.Addresses {
			eng := NetworkName(t.rec.Project, net)
			if !local[eng] {
				continue
			}
			if aliases == nil {
				aliases = NetworkAliases(t.rec)
			}
			ms.Names = append(ms.Names, client.MeshName{Network: eng, Node: t.node, Task: t.id, Addr: ip, Names: aliases[eng]})
		}
	}
	slices.SortFunc(ms.Nodes, func(a, b client.MeshNode) int { return cmp.Compare(a.Node, b.Node) })
	slices.SortFunc(ms.Subnets, func(a, b client.Subnet) int {
		return cmp.Or(cmp.Compare(a.Network, b.Network), cmp.Compare(a.Node, b.Node))
	})
	slices.SortFunc(ms.Names, func(a, b client.MeshName) int {
		return cmp.Or(cmp.Compare(a.Network, b.Network), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Task, b.Task), cmp.Compare(a.Addr, b.Addr))
	})
	return ms
}
