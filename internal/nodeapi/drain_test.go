package nodeapi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// fakeDrainer is a node's proxy: it takes its time, then answers err.
type fakeDrainer struct {
	took time.Duration
	err  error

	mu    sync.Mutex
	tasks []string
}

func (f *fakeDrainer) Drain(ctx context.Context, task string) error {
	f.mu.Lock()
	f.tasks = append(f.tasks, task)
	f.mu.Unlock()
	select {
	case <-time.After(f.took):
	case <-ctx.Done():
		return ctx.Err()
	}
	return f.err
}

func (f *fakeDrainer) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tasks)
}

// TestClusterDrain: every node but the asking one and those marked down
// drains the replica, the manager's own node through its proxy, the others
// through their node API (real mutual TLS); the answer waits for the
// slowest and names each node that failed.
func TestClusterDrain(t *testing.T) {
	ca := newCA(t)
	st := store.NewMemory()
	defer st.Close()
	slow := &fakeDrainer{took: 300 * time.Millisecond}
	failing := &fakeDrainer{err: errors.New("drain timeout")}
	local := &fakeDrainer{}
	n2 := startNodeDeps(t, ca, "n2", Deps{Drainer: slow})
	n3 := startNodeDeps(t, ca, "n3", Deps{}) // no ingress: nothing to drain
	n5 := startNodeDeps(t, ca, "n5", Deps{Drainer: failing})
	closed := "127.0.0.1:" + closedPort(t)
	putNode(t, st, client.Node{ID: "n1", Status: client.NodeReady})
	putNode(t, st, client.Node{ID: "n2", Status: client.NodeReady, NodeAPIAddr: hostOf(n2)})
	putNode(t, st, client.Node{ID: "n3", Status: client.NodeReady, NodeAPIAddr: hostOf(n3)})
	putNode(t, st, client.Node{ID: "n4", Status: client.NodeDown, NodeAPIAddr: closed})
	putNode(t, st, client.Node{ID: "n5", Status: client.NodeReady, NodeAPIAddr: hostOf(n5)})
	putNode(t, st, client.Node{ID: "n6", Status: client.NodeReady, NodeAPIAddr: closed})                      // the asking node
	putNode(t, st, client.Node{ID: "m2", Status: client.NodeReady, Role: "manager+agent", Addr: "127.0.0.1"}) // no node API
	// Managers known by their manager record only (`ruche server`): m3
	// serves a node API, m4's cannot be reached (best effort: no error).
	m3drain := &fakeDrainer{}
	m3 := startNodeDeps(t, ca, "m3", Deps{Drainer: m3drain})
	for _, m := range []store.ManagerRecord{{Name: "m3", NodeAPIAddr: hostOf(m3)}, {Name: "m4", NodeAPIAddr: closed}, {Name: "n1"}} {
		if _, err := st.Txn(context.Background(), nil, store.Put(store.ManagerKey(m.Name), store.Encode(m))); err != nil {
			t.Fatal(err)
		}
	}
	mgr, err := ManagerCert(ca, "n1")
	if err != nil {
		t.Fatal(err)
	}
	cd := NewClusterDrain(ClusterDrainConfig{LocalNode: "n1", Settle: 500 * time.Millisecond}, ClusterDrainDeps{Store: st, Local: local, Remote: NewClient(mgr, ca.Pool())})

	start := time.Now()
	err = cd.Drain(context.Background(), "shop.web.1.x", "n6")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "node n5: drain timeout") {
		t.Fatalf("got %v, want n5's failure named", err)
	}
	for _, other := range []string{"n2", "n3", "n4", "n6", "n1", "m2", "m3", "m4"} {
		if strings.Contains(err.Error(), "node "+other) {
			t.Errorf("error names %s: %v", other, err)
		}
	}
	if took < 500*time.Millisecond {
		t.Errorf("answered after %s, before the settle time for manager m2 (500ms) and the slowest node (%s)", took, slow.took)
	}
	for name, d := range map[string]*fakeDrainer{"n1 (local)": local, "n2": slow, "n5": failing, "m3": m3drain} {
		if got := d.asked(); !slices.Equal(got, []string{"shop.web.1.x"}) {
			t.Errorf("%s asked %v, want the task once", name, got)
		}
	}

	// All drained: no error.
	failing.err = nil
	if err := cd.Drain(context.Background(), "shop.web.2.x", "n6"); err != nil {
		t.Errorf("all drained: %v", err)
	}
	// A ready node that cannot be reached is a failure (the caller falls
	// back to a fixed wait).
	putNode(t, st, client.Node{ID: "n4", Status: client.NodeReady, NodeAPIAddr: closed})
	if err := cd.Drain(context.Background(), "shop.web.3.x", "n6"); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "node n4") {
		t.Errorf("unreachable node: got %v", err)
	}
}

func TestReachable(t *testing.T) {
	for _, c := range []struct{ addr, adv, want string }{
		{"10.0.0.1:7444", "10.0.0.1", "10.0.0.1:7444"},
		{"0.0.0.0:7444", "10.0.0.1", "10.0.0.1:7444"},
		{":7444", "10.0.0.1", "10.0.0.1:7444"},
		{"[::]:7444", "10.0.0.1", "10.0.0.1:7444"},
		{"", "10.0.0.1", ""},
		{"0.0.0.0:7444", "", "0.0.0.0:7444"},
	} {
		if got := Reachable(c.addr, c.adv); got != c.want {
			t.Errorf("Reachable(%q, %q) = %q, want %q", c.addr, c.adv, got, c.want)
		}
	}
}
