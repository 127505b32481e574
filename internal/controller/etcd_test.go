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
	attempts := byAttempt(map[string][][]step{"flaky": {
		{{10 * time.Millisecond, client.ReplicaStatus{State: client.StateFailed, Message: "create: name conflict"}}},
		quick(50 * time.Millisecond),
	}})
	h := newHarnessOn(t, e, e.Close, func(rec store.TaskRecord) []step {
		switch rec.Spec.Image {
		case "bad":
			return turnsUnhealthy(50*time.Millisecond, 100*time.Millisecond)
		case "flaky":
			return attempts(rec)
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
	// Replicas that fail at once are replaced; the failed deploy recovers.
	h.deploy(client.ServiceSpec{Name: "api", Image: "flaky", Replicas: 12, UpdateConfig: quickUpdate,
		RestartPolicy: client.RestartPolicy{Delay: client.Duration(20 * time.Millisecond)}})
	h.waitStatus("api", wait, client.UpdateFailed)
	w = h.waitStatus("api", wait, client.UpdateCompleted)
	if r := w.ready("api"); r != 12 || w.count("api") != 12 {
		t.Fatalf("api: %d ready of %d tasks, want 12 replaced and ready", r, w.count("api"))
	}
	h.remove("web")
	h.remove("api")
	h.waitFor("web and api removed", wait, func(w world) bool {
		_, ok := w.svcStatus["web"]
		_, ok2 := w.svcStatus["api"]
		return w.count("web") == 0 && w.count("api") == 0 && len(w.statuses) == 0 && !ok && !ok2
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
