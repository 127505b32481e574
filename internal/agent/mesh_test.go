package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// TestMeshPlan: the peers are the other nodes with a key and an endpoint,
// each with its address and subnets; a network sees its subnets and
// names on those nodes only.
func TestMeshPlan(t *testing.T) {
	const key2, key3 = "MkQ3z2fHjq4lD7kQfF0nE3TjJ0s6V3b2nqFJ8gq3WmE=", "hF3b7cJk2lR9sT0uV1wX2yZ3a4b5c6d7e8f9g0h1i2E="
	st := client.MeshState{
		Range: "10.208.0.0/16",
		Nodes: []client.MeshNode{
			{Node: "n1", Addr: "10.208.0.1", PublicKey: "self", Endpoint: "192.0.2.1:51820"},
			{Node: "n2", Addr: "10.208.0.2", PublicKey: key2, Endpoint: "192.0.2.2:51820"},
			{Node: "n3", Addr: "10.208.0.3", PublicKey: key3, Endpoint: "192.0.2.3:51820"},
			{Node: "n4", Addr: "10.208.0.4"}, // no mesh device: not a peer
		},
		Subnets: []client.Subnet{
			{Network: "p_default", Node: "n1", Subnet: "10.208.1.0/24"},
			{Network: "p_default", Node: "n2", Subnet: "10.208.2.0/24"},
			{Network: "q_default", Node: "n3", Subnet: "10.208.3.0/24"},
			{Network: "p_default", Node: "n4", Subnet: "10.208.4.0/24"},
		},
		Names: []client.MeshName{
			{Network: "p_default", Node: "n2", Addr: "10.208.2.2", Names: []string{"DB", "1.db"}},
			{Network: "p_default", Node: "n4", Addr: "10.208.4.2", Names: []string{"db"}},
		},
	}
	peers, view := MeshPlan("n1", st, nil)
	if len(peers) != 2 || peers[0].PublicKey != key2 || peers[1].PublicKey != key3 {
		t.Fatalf("peers %+v, want n2 and n3", peers)
	}
	if p := peers[0]; p.Addr != netip.MustParseAddr("10.208.0.2") || p.Endpoint != netip.MustParseAddrPort("192.0.2.2:51820") ||
		!slices.Equal(p.Subnets, []netip.Prefix{netip.MustParsePrefix("10.208.2.0/24")}) {
		t.Errorf("peer n2: %+v", p)
	}
	if got := view.Remote["p_default"]; !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.208.2.0/24")}) {
		t.Errorf("p_default's remote subnets %v, want n2's only (n1 is this node, n4 is off the mesh)", got)
	}
	if got := view.Names["p_default"]["db"]; !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.208.2.2")}) {
		t.Errorf("db on p_default: %v, want n2's replica only", got)
	}
	if len(view.Nodes) != 2 {
		t.Errorf("nodes %v, want the 2 peers' addresses", view.Nodes)
	}
}

// TestMeshPlanKeepsTheMachinesRoutes: another node's subnet that overlaps
// this machine's own routes or networks (a node that joined with a LAN
// in the range after the subnet was given, a network of its state file
// the managers did not know) gets no route over the mesh: it would
// replace the machine's.
func TestMeshPlanKeepsTheMachinesRoutes(t *testing.T) {
	const key2 = "MkQ3z2fHjq4lD7kQfF0nE3TjJ0s6V3b2nqFJ8gq3WmE="
	st := client.MeshState{
		Range: "10.208.0.0/16",
		Nodes: []client.MeshNode{{Node: "n2", Addr: "10.208.0.2", PublicKey: key2, Endpoint: "192.0.2.2:51820"}},
		Subnets: []client.Subnet{
			{Network: "p_default", Node: "n2", Subnet: "10.208.2.0/24"},
			{Network: "q_default", Node: "n2", Subnet: "10.208.3.0/24"},
		},
	}
	peers, view := MeshPlan("n1", st, []netip.Prefix{netip.MustParsePrefix("10.208.3.0/25")})
	if len(peers) != 1 || !slices.Equal(peers[0].Subnets, []netip.Prefix{netip.MustParsePrefix("10.208.2.0/24")}) {
		t.Errorf("peers %+v, want n2 with 10.208.2.0/24 only", peers)
	}
	if got := view.Remote["q_default"]; len(got) != 0 {
		t.Errorf("q_default's remote subnets %v, want none", got)
	}
}

// TestMeshStateRetried: a state that fails to apply (iptables or
// WireGuard busy) is applied again after a while, with no newer one.
func TestMeshStateRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls int
		l := &MeshLoop{Log: slog.New(slog.DiscardHandler), applyFn: func(netip.Addr, client.MeshState) error {
			calls++
			if calls == 1 {
				return errors.New("iptables: resource busy")
			}
			return nil
		}}
		states := make(chan client.MeshState, 1)
		states <- client.MeshState{Range: "10.208.0.0/16"}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.follow(ctx, netip.Addr{}, states); close(done) }()
		synctest.Wait()
		if calls != 1 {
			t.Fatalf("%d applies at first, want 1", calls)
		}
		time.Sleep(meshRetry)
		synctest.Wait()
		if calls != 2 {
			t.Errorf("%d applies after %s, want the failed state applied again", calls, meshRetry)
		}
		time.Sleep(3 * meshRetry)
		synctest.Wait()
		if calls != 2 {
			t.Errorf("%d applies, want none after one succeeded", calls)
		}
		cancel()
		<-done
	})
}
