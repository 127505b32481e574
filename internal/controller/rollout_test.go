package controller

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// bySlot plays scripts[image][slot] for a task of that image and slot;
// other tasks become ready after a second.
func bySlot(scripts map[string]map[int][]step) script {
	return func(rec store.TaskRecord) []step {
		if s, ok := scripts[rec.Spec.Image][rec.Slot]; ok {
			return s
		}
		return becomesReady(time.Second)
	}
}

// restartsAfter: ready after ready, then restarted in place by its agent
// once, readyFor later, and ready again a second after that.
func restartsAfter(ready, readyFor time.Duration) []step {
	return append(becomesReady(ready),
		step{readyFor, client.ReplicaStatus{State: client.StateRestarting, ExitCode: 1, Restarts: 1, Message: "exited with code 1; restarting in 1s"}},
		step{time.Second, client.ReplicaStatus{State: client.StateRunning, Ready: true, Health: "healthy", Restarts: 1}},
	)
}

// updateV1ToV2 deploys n replicas of v1, then v2, and waits until the
// update (or its rollback) has ended.
func (h *harness) updateV1ToV2(n int, mods ...func(*client.ServiceSpec)) world {
	h.t.Helper()
	h.deploy(web("v1", n, mods...))
	h.waitStatus("web", limit, client.UpdateCompleted)
	h.deploy(web("v2", n, mods...))
	return h.waitFor("the update done", limit, func(w world) bool {
		st := w.svcStatus["web"]
		return st.Version >= 2 && st.Terminal()
	})
}

// waitVersion waits until the status of web is terminal for version v.
func (h *harness) waitVersion(v int64) world {
	h.t.Helper()
	return h.waitFor(fmt.Sprintf("version %d done", v), limit, func(w world) bool {
		st := w.svcStatus["web"]
		return st.Version == v && st.Terminal()
	})
}

// The monitor window is per replica: a replica of the new version that
// fails within its window fails the update; one that fails after it
// (while web.2 and web.3 still roll) does not.
func TestMonitorWindow(t *testing.T) {
	const monitor = 5 * time.Second
	tests := []struct {
		name     string
		readyFor time.Duration // before web.1 of v2 restarts
		want     string
	}{
		{"fails within the window", 2 * time.Second, client.UpdateRolledBack},
		{"fails after the window", monitor + 3*time.Second, client.UpdateCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, bySlot(map[string]map[int][]step{"v2": {1: restartsAfter(time.Second, tt.readyFor)}}))
				defer h.close()
				w := h.updateV1ToV2(3, update(client.UpdateConfig{Monitor: client.Duration(monitor)}))
				if st := w.svcStatus["web"]; st.State != tt.want {
					t.Fatalf("status = %+v, want %s", st, tt.want)
				}
			})
		})
	}
}

// max_failure_ratio tolerates some failed replicas of the new version:
// the update goes on and ends; past the ratio, failure_action applies.
func TestMaxFailureRatio(t *testing.T) {
	tests := []struct {
		name    string
		failing map[int][]step
		want    string
		message string // its start
	}{
		{"one of four tolerated", map[int][]step{1: crashLoops(2 * time.Second)}, client.UpdateCompleted,
			"3 of 4 replicas of version 2 ready; failed within max_failure_ratio 0.5: web.1 restarted"},
		{"three of four too many", map[int][]step{1: crashLoops(2 * time.Second), 2: crashLoops(2 * time.Second), 3: crashLoops(2 * time.Second)}, client.UpdateRolledBack,
			"replica web.1 of version 2 restarted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, bySlot(map[string]map[int][]step{"v2": tt.failing}))
				defer h.close()
				w := h.updateV1ToV2(4, update(client.UpdateConfig{Parallelism: 4, MaxFailureRatio: 0.5}))
				if st := w.svcStatus["web"]; st.State != tt.want || !strings.HasPrefix(st.Message, tt.message) {
					t.Fatalf("status = %+v, want %s, %q", st, tt.want, tt.message)
				}
			})
		})
	}
}

// A replica that restarted once, long ago, and runs since does not hold
// a scale up: the scale answers for the replicas it adds only. Here the
// controller restarted in between, so it never saw the replica settle.
func TestScaleAfterRestartedReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v1": restartsAfter(time.Second, 10*time.Second)}))
		defer h.close()
		h.deploy(web("v1", 1))
		h.waitStatus("web", limit, client.UpdateCompleted)
		h.waitFor("web.1 restarted and ready", limit, func(w world) bool {
			run := w.running("web")
			return len(run) == 1 && w.statuses[run[0].ID].Restarts == 1 && w.statuses[run[0].ID].Ready
		})
		h.stopController()
		h.startController()
		h.deploy(web("v1", 2))
		w := h.converged("web")
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted || w.ready("web") != 2 {
			t.Fatalf("status = %+v with %d ready, want completed with 2", st, w.ready("web"))
		}
	})
}

// Parallelism above the replica count (compose's 0: ParallelismAll)
// updates every slot at once.
func TestParallelismAboveReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(nil))
		defer h.close()
		const n = 3
		cfg := update(client.UpdateConfig{Parallelism: client.ParallelismAll})
		h.deploy(web("v1", n, cfg))
		h.waitStatus("web", limit, client.UpdateCompleted)
		maxDown := 0
		o := h.observe(func(w world) string {
			maxDown = max(maxDown, n-w.ready("web"))
			return ""
		})
		h.deploy(web("v2", n, cfg))
		w := h.waitVersion(2)
		o.check(t)
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
			t.Fatalf("status = %+v, want completed", st)
		}
		if maxDown != n {
			t.Errorf("at most %d replicas updated at once, want all %d", maxDown, n)
		}
	})
}
