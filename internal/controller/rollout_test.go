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

// start-first with one replica: there is a ready replica at every
// revision of the store, and never more than two tasks.
func TestStartFirstOneReplicaStaysReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v2": becomesReady(3 * time.Second)}))
		defer h.close()
		cfg := update(client.UpdateConfig{Order: client.OrderStartFirst})
		h.deploy(web("v1", 1, cfg))
		h.waitStatus("web", limit, client.UpdateCompleted)
		o := h.observe(func(w world) string {
			if r := w.ready("web"); r < 1 {
				return "no ready replica"
			}
			if c := w.count("web"); c > 2 {
				return fmt.Sprintf("%d tasks, want <= 2", c)
			}
			return ""
		})
		h.deploy(web("v2", 1, cfg))
		w := h.waitVersion(2)
		o.check(t)
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
			t.Fatalf("status = %+v, want completed", st)
		}
		if run := w.running("web"); len(run) != 1 || run[0].Version != 2 || w.count("web") != 1 {
			t.Errorf("running %+v of %d tasks, want one task of version 2", run, w.count("web"))
		}
	})
}

// A paused update stays paused until the next deploy, which rolls every
// slot (the paused one too) to the new version.
func TestNewDeployReplacesPausedUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v2": crashLoops(2 * time.Second)}))
		defer h.close()
		cfg := update(client.UpdateConfig{FailureAction: client.FailurePause})
		h.deploy(web("v1", 3, cfg))
		h.waitStatus("web", limit, client.UpdateCompleted)
		h.deploy(web("v2", 3, cfg))
		if st := h.waitVersion(2).svcStatus["web"]; st.State != client.UpdatePaused || !st.Failed() {
			t.Fatalf("status = %+v, want paused", st)
		}
		h.deploy(web("v3", 3, cfg))
		w := h.waitVersion(3)
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
			t.Fatalf("status = %+v, want completed", st)
		}
		for _, task := range w.running("web") {
			if task.Version != 3 || !w.statuses[task.ID].Ready {
				t.Errorf("slot %d runs version %d (ready %v), want 3 and ready", task.Slot, task.Version, w.statuses[task.ID].Ready)
			}
		}
		if w.count("web") != 3 {
			t.Errorf("%d tasks, want 3", w.count("web"))
		}
	})
}

// A failed update rolls back with rollback_config, not update_config:
// here one slot at a time with a delay, where the update went two at once.
func TestRollbackUsesRollbackConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v2": turnsUnhealthy(time.Second, 2*time.Second)}))
		defer h.close()
		const n, delay = 4, 10 * time.Second
		cfg := func(s *client.ServiceSpec) {
			s.UpdateConfig = client.UpdateConfig{Parallelism: 2}
			s.RollbackConfig = client.UpdateConfig{Parallelism: 1, Delay: client.Duration(delay), Monitor: client.Duration(time.Second)}
		}
		h.deploy(web("v1", n, cfg))
		h.waitStatus("web", limit, client.UpdateCompleted)
		h.deploy(web("v2", n, cfg))
		h.waitStatus("web", limit, client.UpdateRollingBack)
		start := time.Now()
		w := h.waitVersion(3)
		if st := w.svcStatus["web"]; st.State != client.UpdateRolledBack {
			t.Fatalf("status = %+v, want rolled_back", st)
		}
		// Two slots ran v2: they roll back one after the other, with the
		// delay between them.
		if took := time.Since(start); took < delay {
			t.Errorf("rollback took %v, want over the rollback delay (%v) between its two slots", took, delay)
		}
	})
}

// waitOneReady waits until a replica of web's version v is ready: an
// update is half-way.
func (h *harness) waitOneReady(v int64) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("a ready replica of version %d", v), limit, func(w world) bool {
		for _, task := range w.running("web") {
			if task.Version == v && w.statuses[task.ID].Ready {
				return true
			}
		}
		return false
	})
}

// A new version deployed while the previous update still rolls replaces
// it: every slot ends on the newest version, within the parallelism.
func TestUpdateDuringUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v2": becomesReady(3 * time.Second)}))
		defer h.close()
		const n = 4
		h.deploy(web("v1", n))
		h.waitStatus("web", limit, client.UpdateCompleted)
		o := h.observe(func(w world) string {
			if r := w.ready("web"); r < n-1 {
				return fmt.Sprintf("%d ready, want >= %d", r, n-1)
			}
			return ""
		})
		h.deploy(web("v2", n))
		h.waitOneReady(2)
		h.deploy(web("v3", n))
		w := h.waitVersion(3)
		o.check(t)
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
			t.Fatalf("status = %+v, want completed", st)
		}
		for _, task := range w.running("web") {
			if task.Version != 3 {
				t.Errorf("slot %d runs version %d, want 3", task.Slot, task.Version)
			}
		}
		if w.count("web") != n {
			t.Errorf("%d tasks, want %d", w.count("web"), n)
		}
	})
}

// A scale during an update: the update ends with the new count, every
// slot on the new version.
func TestScaleDuringUpdate(t *testing.T) {
	for _, to := range []int{6, 2} {
		t.Run(fmt.Sprintf("to %d", to), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, byImage(map[string][]step{"v2": becomesReady(3 * time.Second)}))
				defer h.close()
				const n = 4
				h.deploy(web("v1", n))
				h.waitStatus("web", limit, client.UpdateCompleted)
				h.deploy(web("v2", n))
				h.waitOneReady(2)
				h.deploy(web("v2", to))
				w := h.converged("web")
				if st := w.svcStatus["web"]; st.State != client.UpdateCompleted || st.Version != 2 {
					t.Fatalf("status = %+v, want version 2 completed", st)
				}
				run := w.running("web")
				if len(run) != to || w.count("web") != to || w.ready("web") != to {
					t.Fatalf("%d running, %d ready of %d tasks, want %d:\n%s", len(run), w.ready("web"), w.count("web"), to, w)
				}
				for i, task := range run {
					if task.Version != 2 || task.Slot != i+1 {
						t.Errorf("task %s: slot %d version %d, want slot %d version 2", task.ID, task.Slot, task.Version, i+1)
					}
				}
			})
		})
	}
}

// Scaling down removes the highest slots, even when a lower slot is the
// broken one.
func TestScaleDownKeepsLowSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, bySlot(map[string]map[int][]step{"v1": {2: turnsUnhealthy(time.Second, 10*time.Second)}}))
		defer h.close()
		h.deploy(web("v1", 4))
		h.waitStatus("web", limit, client.UpdateCompleted)
		w := h.waitFor("web.2 unhealthy", limit, func(w world) bool {
			for _, task := range w.running("web") {
				if task.Slot == 2 && w.statuses[task.ID].State == client.StateUnhealthy {
					return true
				}
			}
			return false
		})
		before := map[int]string{}
		for _, task := range w.running("web") {
			before[task.Slot] = task.ID
		}
		h.deploy(web("v1", 2))
		w = h.waitFor("scaled down", limit, func(w world) bool { return w.count("web") == 2 })
		run := w.running("web")
		if len(run) != 2 || run[0].ID != before[1] || run[1].ID != before[2] {
			t.Errorf("running %v, want slots 1 and 2 kept (%s, %s)", run, before[1], before[2])
		}
	})
}

// A dependency that never gets healthy keeps the dependant waiting, and
// the dependant's status says what it waits for.
func TestDependencyNeverHealthyIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Its healthcheck never passes: starting, then unhealthy.
		h := newHarness(t, byImage(map[string][]step{"db": {
			{100 * time.Millisecond, client.ReplicaStatus{State: client.StateStarting, Health: "starting"}},
			{time.Minute, client.ReplicaStatus{State: client.StateUnhealthy, Health: "unhealthy", Message: "healthcheck failed"}},
		}}))
		defer h.close()
		h.deploy(client.ServiceSpec{Name: "db", Image: "db", Replicas: 1})
		h.deploy(web("v1", 1, func(s *client.ServiceSpec) {
			s.DependsOn = map[string]client.DependencySpec{"db": {Condition: client.ConditionHealthy, Required: true}}
		}))
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		w := h.world()
		if w.count("web") != 0 {
			t.Errorf("web has %d tasks, want none while db is unhealthy", w.count("web"))
		}
		if st := w.svcStatus["web"]; st.State != client.UpdateDeploying || st.Message != "waiting for db (service_healthy)" {
			t.Errorf("web status = %+v, want deploying, waiting for db (service_healthy)", st)
		}
	})
}
