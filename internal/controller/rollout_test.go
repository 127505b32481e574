package controller

import (
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
				cfg := update(client.UpdateConfig{Monitor: client.Duration(monitor)})
				h.deploy(web("v1", 3, cfg))
				h.waitStatus("web", limit, client.UpdateCompleted)
				h.deploy(web("v2", 3, cfg))
				w := h.waitFor("the update done", limit, func(w world) bool {
					st := w.svcStatus["web"]
					return st.Version >= 2 && st.Terminal()
				})
				if st := w.svcStatus["web"]; st.State != tt.want {
					t.Fatalf("status = %+v, want %s", st, tt.want)
				}
			})
		})
	}
}
