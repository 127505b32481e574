package agent_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/store"
)

const rng = "10.208.0.0/16"

func netLocal(t *testing.T) (*store.Memory, *agent.LocalConn) {
	st := store.NewMemory()
	t.Cleanup(st.Close)
	return st, agent.NewLocalConn(st, nil)
}

func wgKey(b byte) string {
	k := make([]byte, 32)
	k[0] = b
	return base64.StdEncoding.EncodeToString(k)
}

func TestMeshRangeValidatedAndRecorded(t *testing.T) {
	st, c := netLocal(t)
	ctx := context.Background()
	for _, bad := range []string{"", "10.208.0.0", "nonsense/16", "10.208.0.0/24", "10.208.1.0/16", "fd00::/48"} {
		if _, err := c.JoinMesh(ctx, client.MeshNode{Node: "n1", Range: bad}); !errors.Is(err, agent.ErrMeshInvalid) {
			t.Errorf("join with range %q: got %v, want ErrMeshInvalid", bad, err)
		}
		if _, err := c.Subnet(ctx, client.SubnetRequest{Node: "n1", Range: bad, Network: "ruche-shop-default", Project: "shop"}); !errors.Is(err, agent.ErrMeshInvalid) {
			t.Errorf("subnet with range %q: got %v, want ErrMeshInvalid", bad, err)
		}
	}
	if _, err := st.Get(ctx, store.NetRangeKey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused request recorded a range: %v", err)
	}
	// The first to ask sets it (a subnet request here).
	if _, err := c.Subnet(ctx, client.SubnetRequest{Node: "n1", Range: rng, Network: "ruche-shop-default", Project: "shop"}); err != nil {
		t.Fatal(err)
	}
	var got string
	if _, err := store.GetJSON(ctx, st, store.NetRangeKey, &got); err != nil || got != rng {
		t.Fatalf("recorded range: %q %v", got, err)
	}
	_, err := c.JoinMesh(ctx, client.MeshNode{Node: "n2", Range: "10.9.0.0/16"})
	if !errors.Is(err, agent.ErrRangeMismatch) || err.Error() != "the cluster's private range is 10.208.0.0/16; this node was started with --private-range 10.9.0.0/16" {
		t.Fatalf("join with another range: got %v", err)
	}
	if _, err := c.Subnet(ctx, client.SubnetRequest{Node: "n1", Range: "10.9.0.0/16", Network: "ruche-shop-default", Project: "shop"}); !errors.Is(err, agent.ErrRangeMismatch) {
		t.Fatalf("subnet (even an existing one) with another range: got %v", err)
	}
	if kvs, _, _ := st.List(ctx, store.MeshNodesPrefix); len(kvs) != 0 {
		t.Fatalf("a refused join was recorded: %d records", len(kvs))
	}
}

func TestMeshAddressesUniqueAndStable(t *testing.T) {
	st, c := netLocal(t)
	ctx := context.Background()
	join := func(n client.MeshNode) client.MeshNode {
		t.Helper()
		n.Range = rng
		got, err := c.JoinMesh(ctx, n)
		if err != nil {
			t.Fatalf("join %s: %v", n.Node, err)
		}
		return got
	}
	for i, n := range []string{"n1", "n2", "n3"} {
		if got := join(client.MeshNode{Node: n, PublicKey: wgKey(byte(i)), Endpoint: "192.0.2.1:51820"}); got.Addr != fmt.Sprintf("10.208.0.%d", i+1) {
			t.Fatalf("%s: addr %s", n, got.Addr)
		}
	}
	// A node joining again keeps its address; its key and endpoint change.
	got := join(client.MeshNode{Node: "n2", PublicKey: wgKey(9), Endpoint: "192.0.2.9:51821", Avoid: []string{"10.208.5.7/24"}})
	if got.Addr != "10.208.0.2" || got.PublicKey != wgKey(9) || !reflect.DeepEqual(got.Avoid, []string{"10.208.5.0/24"}) {
		t.Fatalf("n2 again: %+v", got)
	}
	var rec client.MeshNode
	if _, err := store.GetJSON(ctx, st, store.MeshNodeKey("n2"), &rec); err != nil || !reflect.DeepEqual(rec, got) {
		t.Fatalf("n2's record %+v %v, want %+v", rec, err, got)
	}
	// The lowest free address goes to the next node.
	st.Txn(ctx, nil, store.Delete(store.MeshNodeKey("n1")))
	if got := join(client.MeshNode{Node: "n4"}); got.Addr != "10.208.0.1" {
		t.Fatalf("n4 after n1 left: addr %s, want 10.208.0.1", got.Addr)
	}
	if got := join(client.MeshNode{Node: "n5"}); got.Addr != "10.208.0.4" {
		t.Fatalf("n5: addr %s, want 10.208.0.4", got.Addr)
	}
	for _, bad := range []client.MeshNode{
		{Node: "n6", PublicKey: "not base64!"},
		{Node: "n6", PublicKey: base64.StdEncoding.EncodeToString(make([]byte, 31))},
		{Node: "n6", Endpoint: "192.0.2.1"},
		{Node: "n6", Avoid: []string{"10.208.3.0"}},
		{Node: "a/b"},
		{Node: ""},
	} {
		bad.Range = rng
		if _, err := c.JoinMesh(ctx, bad); !errors.Is(err, agent.ErrMeshInvalid) {
			t.Errorf("join %+v: got %v, want ErrMeshInvalid", bad, err)
		}
	}
}

func TestMeshAddressesExhausted(t *testing.T) {
	st, c := netLocal(t)
	ctx := context.Background()
	for i := 1; i <= 254; i++ {
		n := fmt.Sprintf("n%d", i)
		st.Txn(ctx, nil, store.Put(store.MeshNodeKey(n), store.Encode(client.MeshNode{Node: n, Range: rng, Addr: fmt.Sprintf("10.208.0.%d", i)})))
	}
	if _, err := c.JoinMesh(ctx, client.MeshNode{Node: "n255", Range: rng}); !errors.Is(err, agent.ErrRangeFull) {
		t.Fatalf("join the 255th node: got %v, want ErrRangeFull", err)
	}
}

func TestSubnetAllocation(t *testing.T) {
	_, c := netLocal(t)
	ctx := context.Background()
	sub := func(network, node, want string, avoid ...string) (string, error) {
		t.Helper()
		s, err := c.Subnet(ctx, client.SubnetRequest{Node: node, Range: rng, Network: network, Project: "shop", Want: want, Avoid: avoid})
		if err == nil && (s.Network != network || s.Node != node || s.Project != "shop") {
			t.Fatalf("subnet record %+v", s)
		}
		return s.Subnet, err
	}
	must := func(network, node, want, expect string, avoid ...string) {
		t.Helper()
		got, err := sub(network, node, want, avoid...)
		if err != nil || got != expect {
			t.Fatalf("subnet of %s on %s (want %q, avoid %v): got %s %v, expected %s", network, node, want, avoid, got, err, expect)
		}
	}
	must("a", "n1", "", "10.208.1.0/24")              // the first /24 is the nodes'
	must("a", "n1", "10.208.9.0/24", "10.208.1.0/24") // idempotent: Want changes nothing
	must("a", "n2", "10.208.7.0/24", "10.208.7.0/24") // Want honoured when free
	must("b", "n2", "10.208.7.0/24", "10.208.2.0/24") // taken: the lowest free one
	must("b", "n1", "10.208.0.0/24", "10.208.3.0/24") // the nodes' /24: never
	must("c", "n1", "10.9.4.0/24", "10.208.4.0/24")   // outside the range: ignored
	must("d", "n1", "10.208.8.0/23", "10.208.5.0/24") // not a /24: ignored
	must("e", "n1", "10.208.8.0/24", "10.208.6.0/24", "10.208.8.0/22")
	must("e", "n2", "", "10.208.10.0/24", "10.208.8.0/23") // avoid skips the lowest
	// A node's avoided prefixes are kept from every node.
	if _, err := c.JoinMesh(ctx, client.MeshNode{Node: "n3", Range: rng, Avoid: []string{"10.208.8.0/24", "10.208.11.0/24"}}); err != nil {
		t.Fatal(err)
	}
	must("f", "n1", "10.208.11.0/24", "10.208.9.0/24")
	if _, err := sub("g", "n1", "bogus", nil...); !errors.Is(err, agent.ErrMeshInvalid) {
		t.Fatalf("unreadable Want: got %v", err)
	}
	if _, err := sub("g", "n1", "", "bogus"); !errors.Is(err, agent.ErrMeshInvalid) {
		t.Fatalf("unreadable Avoid: got %v", err)
	}
	// Release frees it: Want is honoured again, by another network.
	if err := c.ReleaseSubnet(ctx, "n2", "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseSubnet(ctx, "n2", "a"); err != nil {
		t.Fatalf("release again: %v", err)
	}
	must("h", "n4", "10.208.7.0/24", "10.208.7.0/24")
}

func TestSubnetRangeExhausted(t *testing.T) {
	_, c := netLocal(t)
	ctx := context.Background()
	req := client.SubnetRequest{Node: "n1", Range: "10.208.0.0/23", Network: "a", Project: "shop"}
	if s, err := c.Subnet(ctx, req); err != nil || s.Subnet != "10.208.1.0/24" {
		t.Fatalf("the only subnet of a /23: %+v %v", s, err)
	}
	req.Network = "b"
	_, err := c.Subnet(ctx, req)
	if !errors.Is(err, agent.ErrRangeFull) || !strings.Contains(err.Error(), "no /24 left") {
		t.Fatalf("a second subnet in a /23: got %v, want ErrRangeFull", err)
	}
}

// TestNetConcurrentAllocation: nodes joining and asking for subnets at
// once never get the same address or /24.
func TestNetConcurrentAllocation(t *testing.T) {
	_, c := netLocal(t)
	ctx := context.Background()
	const n = 24
	addrs := make([]string, n)
	subs := make([]string, 2*n)
	errs := make(chan error, 3*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, err := c.JoinMesh(ctx, client.MeshNode{Node: fmt.Sprintf("n%d", i), Range: rng})
			addrs[i] = m.Addr
			errs <- err
		})
		for j := range 2 {
			wg.Go(func() {
				// Every one wants the same /24: one gets it.
				s, err := c.Subnet(ctx, client.SubnetRequest{Node: fmt.Sprintf("n%d", i), Range: rng,
					Network: fmt.Sprintf("net%d", j), Project: "shop", Want: "10.208.50.0/24"})
				subs[2*i+j] = s.Subnet
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for what, vals := range map[string][]string{"address": addrs, "subnet": subs} {
		seen := map[string]bool{}
		for _, v := range vals {
			if v == "" || seen[v] {
				t.Fatalf("%s %q given twice or empty: %v", what, v, vals)
			}
			seen[v] = true
		}
	}
	if !slicesContain(subs, "10.208.50.0/24") {
		t.Fatalf("nobody got the wanted /24: %v", subs)
	}
}

func slicesContain(ss []string, v string) bool {
	for _, s := range ss {
		if s == v {
			return true
		}
	}
	return false
}

// nextState waits for a MeshState satisfying ok.
func nextState(t *testing.T, ch <-chan client.MeshState, what string, ok func(client.MeshState) bool) client.MeshState {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var last client.MeshState
	for {
		select {
		case ms, open := <-ch:
			if !open {
				t.Fatalf("%s: mesh channel closed", what)
			}
			last = ms
			if ok(ms) {
				return ms
			}
		case <-deadline:
			t.Fatalf("%s: not within 10s; last state %+v", what, last)
		}
	}
}

func putJSON(t *testing.T, st store.Store, key string, v any) {
	t.Helper()
	if _, err := st.Txn(context.Background(), nil, store.Put(key, store.Encode(v))); err != nil {
		t.Fatal(err)
	}
}

func meshTask(t *testing.T, st store.Store, node, id, service string, slot int, ready bool, addrs map[string]string) store.TaskRecord {
	t.Helper()
	rec := store.TaskRecord{Replica: client.Replica{ID: id, Project: "shop", Service: service, Slot: slot, Node: node, DesiredState: client.DesiredRunning},
		Spec: client.ServiceSpec{Name: service, Image: "x", Networks: map[string]client.ServiceNetwork{"default": {Aliases: []string{"api"}}, "back": {}}}}
	putJSON(t, st, store.TaskKey(node, id), rec)
	putJSON(t, st, store.TaskStatusKey(id), client.ReplicaStatus{State: client.StateRunning, Ready: ready, Addresses: addrs})
	return rec
}

// TestNetConnBehaviour runs the mesh checks on the in-process NetConn and
// on the remote one through the real API (node n2).
func TestNetConnBehaviour(t *testing.T) {
	for _, tc := range connEnvs {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.env(t)
			nc := e.conn.(agent.NetConn)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const node = "n2"
			shopDefault, shopBack := agent.NetworkName("shop", "default"), agent.NetworkName("shop", "back")

			if _, err := nc.JoinMesh(ctx, client.MeshNode{Node: node, Range: "10.208.0.0/24"}); !errors.Is(err, agent.ErrMeshInvalid) {
				t.Fatalf("join with a /24 range: got %v, want ErrMeshInvalid", err)
			}
			me, err := nc.JoinMesh(ctx, client.MeshNode{Node: node, Range: rng, PublicKey: wgKey(2), Endpoint: "192.0.2.2:51820"})
			if err != nil || me.Addr != "10.208.0.1" {
				t.Fatalf("join: %+v %v", me, err)
			}
			_, err = nc.JoinMesh(ctx, client.MeshNode{Node: node, Range: "10.9.0.0/16"})
			if !errors.Is(err, agent.ErrRangeMismatch) || !strings.Contains(err.Error(), "the cluster's private range is 10.208.0.0/16; this node was started with --private-range 10.9.0.0/16") {
				t.Fatalf("join with another range: got %v", err)
			}
			sub, err := nc.Subnet(ctx, client.SubnetRequest{Node: node, Range: rng, Network: shopDefault, Project: "shop", Want: "10.208.3.0/24"})
			if err != nil || sub.Subnet != "10.208.3.0/24" {
				t.Fatalf("subnet: %+v %v", sub, err)
			}

			// Another node (n1) with a subnet on both networks, and replicas.
			putJSON(t, e.st, store.MeshNodeKey("n1"), client.MeshNode{Node: "n1", Range: rng, Addr: "10.208.0.2", PublicKey: wgKey(1)})
			putJSON(t, e.st, store.SubnetKey(shopDefault, "n1"), client.Subnet{Network: shopDefault, Project: "shop", Node: "n1", Subnet: "10.208.1.0/24"})
			putJSON(t, e.st, store.SubnetKey(shopBack, "n1"), client.Subnet{Network: shopBack, Project: "shop", Node: "n1", Subnet: "10.208.2.0/24"})
			web1 := meshTask(t, e.st, "n1", "shop.web.1.a", "web", 1, true, map[string]string{"default": "10.208.1.5", "back": "10.208.2.5"})
			meshTask(t, e.st, "n1", "shop.web.2.b", "web", 2, false, map[string]string{"default": "10.208.1.6"})
			meshTask(t, e.st, node, "shop.web.3.c", "web", 3, true, map[string]string{"default": "10.208.3.7"}) // the watcher's own

			states, err := nc.WatchMesh(ctx, node)
			if err != nil {
				t.Fatal(err)
			}
			// Only the ready replica of another node, and only on the
			// network that has a subnet on n2 (not "back").
			wantNames := []client.MeshName{{Network: shopDefault, Node: "n1", Task: "shop.web.1.a", Addr: "10.208.1.5", Names: agent.NetworkAliases(web1)[shopDefault]}}
			ms := nextState(t, states, "the first state", func(ms client.MeshState) bool { return len(ms.Subnets) == 3 })
			if !reflect.DeepEqual(ms.Names, wantNames) {
				t.Fatalf("names: got %+v, want %+v", ms.Names, wantNames)
			}
			if names := ms.Names[0].Names; !reflect.DeepEqual(names, []string{"web", "api", "1.web"}) {
				t.Fatalf("aliases of web.1: %v", names)
			}
			if ms.Range != rng || len(ms.Nodes) != 2 || ms.Nodes[0].Node != "n1" || !reflect.DeepEqual(ms.Nodes[1], me) {
				t.Fatalf("range and nodes: %+v", ms)
			}
			if s := ms.Subnets; s[0].Network != shopBack || s[1].Node != "n1" || s[2] != sub {
				t.Fatalf("subnets not sorted by network, node: %+v", s)
			}

			// A replica turning ready is an update.
			putJSON(t, e.st, store.TaskStatusKey("shop.web.2.b"), client.ReplicaStatus{State: client.StateRunning, Ready: true, Addresses: map[string]string{"default": "10.208.1.6"}})
			ms = nextState(t, states, "web.2 ready", func(ms client.MeshState) bool { return len(ms.Names) == 2 })
			if ms.Names[1].Task != "shop.web.2.b" || ms.Names[1].Addr != "10.208.1.6" {
				t.Fatalf("names after web.2 ready: %+v", ms.Names)
			}
			// A subnet of "back" on n2 brings web.1's name there.
			if _, err := nc.Subnet(ctx, client.SubnetRequest{Node: node, Range: rng, Network: shopBack, Project: "shop"}); err != nil {
				t.Fatal(err)
			}
			ms = nextState(t, states, "back on n2", func(ms client.MeshState) bool { return len(ms.Names) == 3 })
			if ms.Names[0].Network != shopBack || ms.Names[0].Addr != "10.208.2.5" {
				t.Fatalf("names with back on n2: %+v", ms.Names)
			}

			// Release: the subnet goes from the state, and is free again.
			if err := nc.ReleaseSubnet(ctx, node, shopDefault); err != nil {
				t.Fatal(err)
			}
			if err := nc.ReleaseSubnet(ctx, node, shopDefault); err != nil {
				t.Fatalf("release again: %v", err)
			}
			nextState(t, states, "the release", func(ms client.MeshState) bool { return len(ms.Subnets) == 3 && len(ms.Names) == 1 })
			again, err := nc.Subnet(ctx, client.SubnetRequest{Node: node, Range: rng, Network: "ruche-other-default", Project: "other", Want: "10.208.3.0/24"})
			if err != nil || again.Subnet != "10.208.3.0/24" {
				t.Fatalf("the released /24 wanted again: %+v %v", again, err)
			}

			cancel()
			for range states { // closes when ctx ends
			}
		})
	}
}

// TestMeshAvoidOfTheWholeRangeRefused: a node's avoid applies to every
// node's subnets; one that covers the whole range (a machine whose own
// route is the range) is refused at its join, not recorded to leave no
// /24 for any node of the cluster.
func TestMeshAvoidOfTheWholeRangeRefused(t *testing.T) {
	_, c := netLocal(t)
	ctx := context.Background()
	for _, wide := range []string{rng, "10.0.0.0/8"} {
		_, err := c.JoinMesh(ctx, client.MeshNode{Node: "n1", Range: rng, PublicKey: wgKey(1), Endpoint: "192.0.2.1:51820", Avoid: []string{wide}})
		if !errors.Is(err, agent.ErrMeshInvalid) {
			t.Errorf("join avoiding %s: got %v, want ErrMeshInvalid", wide, err)
		}
	}
	if _, err := c.Subnet(ctx, client.SubnetRequest{Node: "n2", Range: rng, Network: "ruche-shop-default", Project: "shop"}); err != nil {
		t.Errorf("another node's subnet after a join avoiding the whole range: %v", err)
	}
}
