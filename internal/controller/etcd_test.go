package controller

import (
	"net"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// The same controller on a real (embedded, loopback-only) etcd, in real
// time with short durations: transactions with compares on absent keys,
// watch revisions and batching behave as the in-memory store says.
func TestOnEtcd(t *testing.T) {
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir(), ClientAddr: loopbackAddr(t), PeerAddr: loopbackAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	quick := func(d time.Duration) []step {
		return []step{
			{10 * time.Millisecond, client.ReplicaStatus{State: client.StateStarting}},
			{d, client.ReplicaStatus{State: client.StateRunning, Ready: true}},
		}
	}
	h := newHarnessOn(t, e, e.Close, func(rec store.TaskRecord) []step {
		if rec.Spec.Image == "bad" {
			return turnsUnhealthy(50*time.Millisecond, 100*time.Millisecond)
		}
		return quick(50 * time.Millisecond)
	}, Config{Seed: 1, MaxTxnOps: 16})
	defer h.close()
	h.agent.stopTime = 12 * time.Millisecond
	quickUpdate := client.UpdateConfig{Parallelism: 2, Order: client.OrderStartFirst, Monitor: client.Duration(300 * time.Millisecond)}
	cfg := func(s *client.ServiceSpec) { s.UpdateConfig, s.RollbackConfig = quickUpdate, quickUpdate }
	const wait = time.Minute

	h.deploy(web("v1", 12, cfg))
	h.waitFor("v1 completed", wait, func(w world) bool {
		st := w.svcStatus["web"]
		return st.Version == 1 && st.State == client.UpdateCompleted
	})
	h.deploy(web("v2", 12, cfg))
	w := h.waitFor("v2 completed", wait, func(w world) bool {
		st := w.svcStatus["web"]
		return st.Version == 2 && st.Terminal()
	})
	if st := w.svcStatus["web"]; st.State != client.UpdateCompleted || len(w.running("web")) != 12 || w.count("web") != 12 {
		t.Fatalf("status %+v, %d running of %d; want completed with 12", st, len(w.running("web")), w.count("web"))
	}
	h.deploy(web("bad", 12, cfg))
	w = h.waitFor("bad rolled back", wait, func(w world) bool {
		st := w.svcStatus["web"]
		return st.Version == 4 && st.Terminal()
	})
	if st := w.svcStatus["web"]; st.State != client.UpdateRolledBack {
		t.Fatalf("status %+v, want rolled_back", st)
	}
	h.remove("web")
	h.waitFor("web removed", wait, func(w world) bool {
		_, ok := w.svcStatus["web"]
		return w.count("web") == 0 && len(w.statuses) == 0 && !ok
	})
}

func loopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
