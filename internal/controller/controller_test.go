package controller

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

const limit = 5 * time.Minute // of fake time: only reached when stuck

func TestDeployThreeReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(nil))
		defer h.close()
		start := time.Now()
		h.deploy(web("v1", 3, func(s *client.ServiceSpec) {
			s.Mounts = []client.MountSpec{{Type: client.MountVolume, Source: "data", Target: "/data"}}
		}))
		w := h.waitStatus("web", limit, client.UpdateCompleted, client.UpdateFailed)

		st := w.svcStatus["web"]
		if st.State != client.UpdateCompleted || st.Version != 1 || st.Failed() {
			t.Fatalf("status = %+v, want completed version 1", st)
		}
		if !st.StartedAt.Equal(start) {
			t.Errorf("StartedAt = %v, want %v", st.StartedAt, start)
		}
		// Replicas are ready after ~1s and must stay so for the 5s monitor.
		if got := st.CompletedAt.Sub(st.StartedAt); got < 6*time.Second || got > 8*time.Second {
			t.Errorf("completed %v after start, want just after ready (1s) + monitor (5s)", got)
		}
		run := w.running("web")
		if len(run) != 3 {
			t.Fatalf("running tasks = %d, want 3:\n%s", len(run), w)
		}
		for i, task := range run {
			if task.Slot != i+1 || task.Version != 1 || task.Node != "n1" || task.Spec.Image != "v1" || task.Project != project {
				t.Errorf("task %d = %+v, want slot %d of version 1 on n1", i, task.Replica, i+1)
			}
			if want := fmt.Sprintf("shop.web.%d.", i+1); !strings.HasPrefix(task.ID, want) || len(task.ID) != len(want)+nonceLen {
				t.Errorf("task ID = %q, want %s<nonce>", task.ID, want)
			}
			if _, ok := task.Networks["default"]; !ok {
				t.Errorf("task networks = %v, want the default network", task.Networks)
			}
			if _, ok := task.Volumes["data"]; !ok || len(task.Volumes) != 1 {
				t.Errorf("task volumes = %v, want the data volume only", task.Volumes)
			}
		}
		if got := h.metric("ruche_controller_tasks_created_total"); got != 3 {
			t.Errorf("tasks created = %v, want 3", got)
		}
		if got := h.metric("ruche_service_updates_total", "result", "completed"); got != 1 {
			t.Errorf("updates completed = %v, want 1", got)
		}
		if got := h.metric("ruche_reconcile_passes_total"); got == 0 {
			t.Errorf("reconcile passes = 0, want some")
		}
		assertEvents(t, h, "update_started", "scheduled", "scheduled", "scheduled", "update_completed")
	})
}

// assertEvents checks that the events of the store, in order, contain want
// as a subsequence of actions. Events are written after the change they
// describe: it waits for the bubble to settle first.
func assertEvents(t *testing.T, h *harness, want ...string) {
	t.Helper()
	synctest.Wait()
	w := h.world()
	var got []string
	for _, ev := range w.events {
		got = append(got, ev.Action)
	}
	i := 0
	for _, a := range got {
		if i < len(want) && a == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("events %v, want %v in that order", got, want)
	}
}

func TestScale(t *testing.T) {
	tests := []struct {
		name     string
		from, to int
	}{
		{"down 3 to 1", 3, 1},
		{"up 1 to 3", 1, 3},
		{"down to 0", 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, byImage(nil))
				defer h.close()
				h.deploy(web("v1", tt.from))
				before := h.waitStatus("web", limit, client.UpdateCompleted).running("web")

				// Tasks never move: slots kept keep their task, and
				// the highest slots go first.
				kept := map[int]string{}
				for _, task := range before {
					kept[task.Slot] = task.ID
				}
				o := h.observe(func(w world) string {
					for _, task := range w.tasks {
						if task.DesiredState == client.DesiredShutdown && task.Slot <= tt.to {
							return fmt.Sprintf("%s shut down, want slots <= %d kept", task.ID, tt.to)
						}
					}
					return ""
				})
				h.deploy(web("v1", tt.to))
				w := h.waitFor("scaled and converged", limit, func(w world) bool {
					st := w.svcStatus["web"]
					return st.State == client.UpdateCompleted && w.count("web") == tt.to && len(w.running("web")) == tt.to
				})
				o.check(t)
				for _, task := range w.running("web") {
					if id, ok := kept[task.Slot]; ok && id != task.ID {
						t.Errorf("slot %d: task %s replaced by %s, want it kept", task.Slot, id, task.ID)
					}
					if task.Slot < 1 || task.Slot > tt.to {
						t.Errorf("task in slot %d, want slots 1..%d", task.Slot, tt.to)
					}
				}
				if len(w.statuses) != tt.to {
					t.Errorf("%d status keys left, want %d (garbage collected)", len(w.statuses), tt.to)
				}
				assertEvents(t, h, "scale_started", "update_completed")
				assertReplicaEvents(t, h, map[string][]string{
					"scheduled": replicaNames(1, max(tt.from, tt.to)), "shutdown": replicaNames(tt.to+1, tt.from)})
			})
		})
	}
}

// assertReplicaEvents checks which replicas the replica events name, per
// action: as `ruche ps`, `ruche logs` and the agent's own events do
// ("web.2"), not by task ID, and each in its message.
func assertReplicaEvents(t *testing.T, h *harness, want map[string][]string) {
	t.Helper()
	got := map[string][]string{}
	for _, ev := range h.world().events {
		if ev.Type != "replica" {
			continue
		}
		got[ev.Action] = append(got[ev.Action], ev.Replica)
		if !strings.HasPrefix(ev.Message, ev.Replica+" ") {
			t.Errorf("%s event of %q: message %q, want it about that replica", ev.Action, ev.Replica, ev.Message)
		}
	}
	for action, names := range got {
		sort.Strings(names)
		if !slices.Equal(names, want[action]) {
			t.Errorf("%s events name %v, want %v", action, names, want[action])
		}
	}
	for action, names := range want {
		if len(names) > 0 && len(got[action]) == 0 {
			t.Errorf("no %s event, want ones naming %v", action, names)
		}
	}
}

// replicaNames is web.from .. web.to, sorted as strings.
func replicaNames(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("web.%d", i))
	}
	sort.Strings(out)
	return out
}

func TestRollingUpdate(t *testing.T) {
	const n, par = 5, 2
	tests := []struct {
		order string
		// bound returns a violation of the order's guarantee, if any.
		bound func(w world) string
		// used measures how far the update went, to check it did use its
		// parallelism: max over time must be exactly par.
		used func(w world) int
	}{
		{
			order: client.OrderStopFirst,
			bound: func(w world) string {
				if r := w.ready("web"); r < n-par {
					return fmt.Sprintf("%d ready, want >= %d", r, n-par)
				}
				return ""
			},
			used: func(w world) int { return n - w.ready("web") },
		},
		{
			order: client.OrderStartFirst,
			bound: func(w world) string {
				if c := w.count("web"); c > n+par {
					return fmt.Sprintf("%d tasks, want <= %d", c, n+par)
				}
				if r := w.ready("web"); r < n {
					return fmt.Sprintf("%d ready, want >= %d (start-first)", r, n)
				}
				return ""
			},
			used: func(w world) int { return w.count("web") - n },
		},
	}
	for _, tt := range tests {
		t.Run(tt.order, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, byImage(map[string][]step{"v2": becomesReady(2 * time.Second)}))
				defer h.close()
				cfg := update(client.UpdateConfig{Parallelism: par, Order: tt.order, Monitor: client.Duration(3 * time.Second)})
				h.deploy(web("v1", n, cfg))
				h.waitStatus("web", limit, client.UpdateCompleted)

				maxUsed := 0
				o := h.observe(func(w world) string {
					maxUsed = max(maxUsed, tt.used(w))
					return tt.bound(w)
				})
				h.deploy(web("v2", n, cfg))
				w := h.waitFor("version 2 completed", limit, func(w world) bool {
					st := w.svcStatus["web"]
					return st.Version == 2 && st.Terminal()
				})
				o.check(t)
				if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
					t.Fatalf("status = %+v, want completed", st)
				}
				if maxUsed != par {
					t.Errorf("at most %d replicas in flight, want %d (the parallelism)", maxUsed, par)
				}
				run := w.running("web")
				if len(run) != n || w.count("web") != n {
					t.Fatalf("%d running of %d tasks, want %d:\n%s", len(run), w.count("web"), n, w)
				}
				for _, task := range run {
					if task.Version != 2 || task.Spec.Image != "v2" {
						t.Errorf("task %s runs version %d (%s), want 2", task.ID, task.Version, task.Spec.Image)
					}
				}
			})
		})
	}
}

// Start-first with a published host port on a single node cannot run old
// and new side by side: each slot falls back to stop-first.
func TestStartFirstFallsBackOnHostPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(nil))
		defer h.close()
		spec := func(image string) client.ServiceSpec {
			return web(image, 1, update(client.UpdateConfig{Order: client.OrderStartFirst}), func(s *client.ServiceSpec) {
				s.Ports = []client.PortSpec{{Target: 80, Published: 8080}}
			})
		}
		h.deploy(spec("v1"))
		h.waitStatus("web", limit, client.UpdateCompleted)
		h.deploy(spec("v2"))
		w := h.waitFor("version 2 completed", limit, func(w world) bool {
			st := w.svcStatus["web"]
			return st.Version == 2 && st.Terminal()
		})
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
			t.Fatalf("status = %+v, want completed", st)
		}
		if run := w.running("web"); len(run) != 1 || run[0].Version != 2 {
			t.Errorf("running = %+v, want one task of version 2", run)
		}
	})
}

func TestFailedUpdateRollsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v2": turnsUnhealthy(time.Second, 2*time.Second)}))
		defer h.close()
		h.deploy(web("v1", 3))
		before := h.waitStatus("web", limit, client.UpdateCompleted).running("web")

		h.deploy(web("v2", 3))
		h.waitStatus("web", limit, client.UpdateRollingBack)
		w := h.waitStatus("web", limit, client.UpdateRolledBack, client.UpdateFailed, client.UpdateCompleted)

		st := w.svcStatus["web"]
		want := "replica web.1 of version 2 became unhealthy: healthcheck failed; rolled back to version 1"
		if st.State != client.UpdateRolledBack || st.Message != want || st.Version != 3 || !st.Failed() {
			t.Fatalf("status = %+v, want rolled_back version 3 with message %q", st, want)
		}
		rec := w.services["web"]
		if rec.Version != 3 || !rec.Rollback || rec.Spec.Image != "v1" || rec.Previous == nil || rec.Previous.Image != "v2" || rec.PreviousVersion != 2 {
			t.Errorf("record = version %d rollback %v image %s previous %v, want version 3 back on v1", rec.Version, rec.Rollback, rec.Spec.Image, rec.Previous)
		}
		run := w.running("web")
		if len(run) != 3 || w.count("web") != 3 {
			t.Fatalf("%d running of %d tasks, want 3:\n%s", len(run), w.count("web"), w)
		}
		for _, task := range run {
			if task.Spec.Image != "v1" || !w.statuses[task.ID].Ready {
				t.Errorf("task %s: image %s ready %v, want v1 and ready", task.ID, task.Spec.Image, w.statuses[task.ID].Ready)
			}
		}
		// Slots 2 and 3 never left version 1: their replicas were kept.
		for _, old := range before[1:] {
			if run[old.Slot-1].ID != old.ID {
				t.Errorf("slot %d: %s replaced by %s, want the version 1 replica kept", old.Slot, old.ID, run[old.Slot-1].ID)
			}
		}
		if got := h.metric("ruche_service_updates_total", "result", "rolled_back"); got != 1 {
			t.Errorf("updates rolled_back = %v, want 1", got)
		}
		assertEvents(t, h, "update_started", "rollback_started", "rolled_back")
	})
}

func TestFailedUpdatePauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v2": crashLoops(2 * time.Second)}))
		defer h.close()
		cfg := update(client.UpdateConfig{FailureAction: client.FailurePause})
		h.deploy(web("v1", 3, cfg))
		h.waitStatus("web", limit, client.UpdateCompleted)
		h.deploy(web("v2", 3, cfg))
		w := h.waitFor("paused", limit, func(w world) bool { return w.svcStatus["web"].Version == 2 && w.svcStatus["web"].Terminal() })
		st := w.svcStatus["web"]
		if st.State != client.UpdatePaused || !strings.HasPrefix(st.Message, "replica web.1 of version 2 restarted") || !strings.HasSuffix(st.Message, "; paused") {
			t.Fatalf("status = %+v, want paused on web.1 of version 2", st)
		}
		// Paused means no more progress, however long we wait.
		time.Sleep(time.Minute)
		w = h.world()
		versions := map[int64]int{}
		for _, task := range w.running("web") {
			versions[task.Version]++
		}
		if versions[1] != 2 || versions[2] != 1 || w.svcStatus["web"].State != client.UpdatePaused {
			t.Errorf("after a minute: versions %v, status %+v; want 2 of v1 and 1 of v2, still paused", versions, w.svcStatus["web"])
		}
		if w.services["web"].Version != 2 {
			t.Errorf("record version = %d, want 2 (no rollback)", w.services["web"].Version)
		}
	})
}

func TestFailedFirstDeploy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v1": crashLoops(time.Second)}))
		defer h.close()
		h.deploy(web("v1", 2))
		w := h.waitStatus("web", limit, client.UpdateFailed, client.UpdateCompleted)
		st := w.svcStatus["web"]
		if st.State != client.UpdateFailed || !strings.Contains(st.Message, " of version 1 restarted") ||
			!strings.HasSuffix(st.Message, "no previous version to roll back to") {
			t.Fatalf("status = %+v, want failed with the reason", st)
		}
		if got := h.metric("ruche_service_updates_total", "result", "failed"); got != 1 {
			t.Errorf("updates failed = %v, want 1", got)
		}
	})
}

// A rollback asked for by the user rolls like an update and ends completed.
func TestUserRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(nil))
		defer h.close()
		h.deploy(web("v1", 2))
		h.waitStatus("web", limit, client.UpdateCompleted)
		h.deploy(web("v2", 2))
		h.waitFor("version 2", limit, func(w world) bool {
			return w.svcStatus["web"].Version == 2 && w.svcStatus["web"].State == client.UpdateCompleted
		})
		h.rollback("web")
		w := h.waitFor("version 3", limit, func(w world) bool {
			return w.svcStatus["web"].Version == 3 && w.svcStatus["web"].Terminal()
		})
		st := w.svcStatus["web"]
		if st.State != client.UpdateCompleted || !strings.Contains(st.Message, "rolled back") {
			t.Errorf("status = %+v, want completed, saying it rolled back", st)
		}
		for _, task := range w.running("web") {
			if task.Spec.Image != "v1" {
				t.Errorf("task %s runs %s, want v1", task.ID, task.Spec.Image)
			}
		}
	})
}

func TestDependsOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"db": becomesReady(20 * time.Second)}))
		defer h.close()
		dbReady := false
		o := h.observe(func(w world) string {
			if w.ready("db") == 1 {
				dbReady = true
			}
			if w.count("web") > 0 && !dbReady {
				return "web scheduled before db was healthy"
			}
			return ""
		})
		h.deploy(web("v1", 2, func(s *client.ServiceSpec) {
			s.DependsOn = map[string]client.DependencySpec{"db": {Condition: client.ConditionHealthy, Required: true}}
		}))
		h.waitFor("web waiting", limit, func(w world) bool {
			return w.svcStatus["web"].Message == "waiting for db (not deployed)"
		})
		h.deploy(client.ServiceSpec{Name: "db", Image: "db", Replicas: 1})
		w := h.waitFor("web waiting for db", limit, func(w world) bool {
			return w.svcStatus["web"].Message == "waiting for db (service_healthy)"
		})
		if st := w.svcStatus["web"]; st.State != client.UpdateDeploying {
			t.Errorf("status = %+v, want deploying while waiting", st)
		}
		w = h.waitStatus("web", limit, client.UpdateCompleted, client.UpdateFailed)
		o.check(t)
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted || len(w.running("web")) != 2 {
			t.Errorf("status = %+v with %d replicas, want completed with 2", st, len(w.running("web")))
		}
	})
}

func TestDependencyConditions(t *testing.T) {
	tests := []struct {
		cond  string
		state string
		ready bool
		want  bool
	}{
		{client.ConditionStarted, client.StatePending, false, false},
		{client.ConditionStarted, client.StateStarting, false, true},
		{client.ConditionStarted, client.StateUnhealthy, false, true},
		{client.ConditionStarted, client.StateRestarting, false, false},
		{client.ConditionStarted, client.StateComplete, false, true},
		{client.ConditionHealthy, client.StateStarting, false, false},
		{client.ConditionHealthy, client.StateRunning, true, true},
		{client.ConditionCompleted, client.StateRunning, true, false},
		{client.ConditionCompleted, client.StateComplete, false, true},
		{client.ConditionCompleted, client.StateFailed, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.cond+"/"+tt.state, func(t *testing.T) {
			c := newCache()
			put := func(key string, v any, rev int64) {
				if _, err := c.apply(store.Event{Type: store.EventPut, KV: store.KV{Key: key, Value: store.Encode(v), ModRevision: rev}}, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			put(store.ServiceKey("p", "db"), store.ServiceRecord{Spec: client.ServiceSpec{Name: "db", Replicas: 2}, Version: 1}, 1)
			for slot := 1; slot <= 2; slot++ {
				id := fmt.Sprintf("p.db.%d.x", slot)
				put(store.TaskKey("n1", id), store.TaskRecord{Replica: client.Replica{ID: id, Project: "p", Service: "db", Slot: slot, Version: 1, DesiredState: client.DesiredRunning}}, 2)
				st := client.ReplicaStatus{State: client.StateRunning, Ready: true} // meets started and healthy
				if tt.cond == client.ConditionCompleted {
					st = client.ReplicaStatus{State: client.StateComplete}
				}
				if slot == 2 {
					st = client.ReplicaStatus{State: tt.state, Ready: tt.ready}
				}
				put(store.TaskStatusKey(id), st, 3)
			}
			r := &run{cache: c}
			if got, exists := r.satisfied(svcKey{"p", "db"}, tt.cond); got != tt.want || !exists {
				t.Errorf("satisfied = %v (exists %v), want %v", got, exists, tt.want)
			}
		})
	}
}

func TestServiceRemoval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(nil))
		defer h.close()
		h.deploy(web("v1", 3))
		h.waitStatus("web", limit, client.UpdateCompleted)
		h.remove("web")
		h.waitFor("web gone", limit, func(w world) bool {
			_, hasStatus := w.svcStatus["web"]
			return w.count("web") == 0 && len(w.statuses) == 0 && !hasStatus
		})
		assertEvents(t, h, "shutdown", "shutdown", "shutdown")
	})
}

// A new controller (a restart, a new leader) picks the update up where it
// was: same rollout, no replica lost or doubled.
func TestRestartMidUpdate(t *testing.T) {
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
			slots := map[int]int{}
			for _, task := range w.running("web") {
				if slots[task.Slot]++; slots[task.Slot] > 1 {
					return fmt.Sprintf("slot %d has two running tasks", task.Slot)
				}
			}
			return ""
		})
		h.deploy(web("v2", n))
		// Stop the controller in the middle of a step: once the second
		// old replica is told to shut down.
		w := h.waitFor("second slot stopping", limit, func(w world) bool {
			stopping := 0
			for _, task := range w.tasks {
				if task.Version == 1 && task.DesiredState == client.DesiredShutdown {
					stopping++
				}
			}
			return stopping > 0 && len(w.running("web")) == n-1 && w.count("web") == n
		})
		started := w.svcStatus["web"].StartedAt
		h.stopController()
		time.Sleep(30 * time.Second) // the agent goes on meanwhile
		h.startController()
		w = h.waitFor("version 2 completed", limit, func(w world) bool {
			st := w.svcStatus["web"]
			return st.Version == 2 && st.Terminal()
		})
		o.check(t)
		st := w.svcStatus["web"]
		if st.State != client.UpdateCompleted || !st.StartedAt.Equal(started) {
			t.Errorf("status = %+v, want completed, started at %v (the same rollout)", st, started)
		}
		if run := w.running("web"); len(run) != n || w.count("web") != n {
			t.Errorf("%d running of %d tasks, want %d", len(run), w.count("web"), n)
		}
	})
}

// With one node and a published port, the second replica has nowhere to
// go: the status says why, and the rollout waits (for a node to join).
func TestUnplaceableReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(nil))
		defer h.close()
		h.deploy(web("v1", 2, func(s *client.ServiceSpec) { s.Ports = []client.PortSpec{{Target: 80, Published: 8080}} }))
		want := "no node can run shop/web.2: node n1: host port 8080/tcp in use by shop/web"
		w := h.waitFor("the reason", limit, func(w world) bool { return w.svcStatus["web"].Message == want })
		if st := w.svcStatus["web"]; st.State != client.UpdateDeploying {
			t.Errorf("status = %+v, want deploying", st)
		}
		// A second node joins: the replica lands there.
		h.put(store.NodeKey("n2"), client.Node{ID: "n2", Hostname: "box2", Status: "ready", Availability: "active"})
		w = h.waitFor("web.2 on n2", limit, func(w world) bool {
			for _, task := range w.running("web") {
				if task.Slot == 2 && task.Node == "n2" {
					return true
				}
			}
			return false
		})
	})
}

// failure_action continue goes through every slot, and says at the end
// which replicas failed.
func TestFailedUpdateContinues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v2": crashLoops(2 * time.Second)}))
		defer h.close()
		cfg := update(client.UpdateConfig{FailureAction: client.FailureContinue, Parallelism: 1})
		h.deploy(web("v1", 3, cfg))
		h.waitStatus("web", limit, client.UpdateCompleted)
		h.deploy(web("v2", 3, cfg))
		w := h.waitFor("version 2 done", limit, func(w world) bool {
			return w.svcStatus["web"].Version == 2 && w.svcStatus["web"].Terminal()
		})
		st := w.svcStatus["web"]
		if st.State != client.UpdateFailed || !strings.HasPrefix(st.Message, "version 2 rolled out with failed replicas: web.1 restarted") {
			t.Errorf("status = %+v, want failed, naming the failed replicas", st)
		}
		for _, task := range w.running("web") {
			if task.Version != 2 {
				t.Errorf("slot %d runs version %d, want every slot updated", task.Slot, task.Version)
			}
		}
	})
}

// update_config.delay rests each worker between two slots.
func TestUpdateDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(nil))
		defer h.close()
		const monitor, delay = 2 * time.Second, 10 * time.Second
		cfg := update(client.UpdateConfig{Delay: client.Duration(delay), Monitor: client.Duration(monitor)})
		h.deploy(web("v1", 3, cfg))
		h.waitStatus("web", limit, client.UpdateCompleted)
		h.deploy(web("v2", 3, cfg))
		h.waitFor("version 2 completed", limit, func(w world) bool {
			return w.svcStatus["web"].Version == 2 && w.svcStatus["web"].State == client.UpdateCompleted
		})
		synctest.Wait()
		var starts []time.Time
		for _, ev := range h.world().events {
			if ev.Action == "shutdown" {
				starts = append(starts, ev.Time)
			}
		}
		if len(starts) != 3 {
			t.Fatalf("%d shutdowns, want 3", len(starts))
		}
		for i := 1; i < len(starts); i++ {
			// Each slot: stop (0.3s), start, ready (1.1s), monitor, delay.
			if gap := starts[i].Sub(starts[i-1]); gap < monitor+delay || gap > monitor+delay+3*time.Second {
				t.Errorf("slot %d started %v after the previous one, want monitor + delay (%v) plus the replica's start", i+1, gap, monitor+delay)
			}
		}
	})
}

// service_completed_successfully: a one-shot job runs to completion
// first; its own rollout completes with it.
func TestDependsOnCompletedJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"migrate": completes(5 * time.Second)}))
		defer h.close()
		// A one-shot job says on-failure: with the default (any), a
		// completed replica is restarted, then replaced.
		h.deploy(client.ServiceSpec{Name: "migrate", Image: "migrate", Replicas: 1, RestartPolicy: client.RestartPolicy{Condition: client.RestartOnFailure}})
		h.deploy(web("v1", 1, func(s *client.ServiceSpec) {
			s.DependsOn = map[string]client.DependencySpec{"migrate": {Condition: client.ConditionCompleted, Required: true}}
		}))
		w := h.waitFor("both completed", limit, func(w world) bool {
			return w.svcStatus["web"].State == client.UpdateCompleted && w.svcStatus["migrate"].State == client.UpdateCompleted
		})
		job := w.running("migrate")
		app := w.running("web")
		if len(job) != 1 || len(app) != 1 {
			t.Fatalf("tasks: migrate %d, web %d; want 1 and 1", len(job), len(app))
		}
		if got := app[0].CreatedAt.Sub(job[0].CreatedAt); got < 5*time.Second {
			t.Errorf("web created %v after migrate, want after it completed (5s)", got)
		}
	})
}

// An update whose replicas fit nowhere, even once the old ones stop, does
// not stop them: the service keeps running and the status says why.
func TestUpdateThatFitsNowhereKeepsOldReplicas(t *testing.T) {
	for _, order := range []string{client.OrderStopFirst, client.OrderStartFirst} {
		t.Run(order, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, byImage(nil))
				defer h.close()
				spec := func(image string, cpus float64) client.ServiceSpec {
					return web(image, 2, update(client.UpdateConfig{Order: order}), func(s *client.ServiceSpec) {
						s.Resources.Reservations.CPUs = cpus
					})
				}
				h.deploy(spec("v1", 1))
				h.waitStatus("web", limit, client.UpdateCompleted)
				h.deploy(spec("v2", 5)) // the node has 4
				want := "no node can run shop/web.1: node n1: not enough cpu: 5 reserved, "
				w := h.waitFor("the reason", limit, func(w world) bool { return strings.HasPrefix(w.svcStatus["web"].Message, want) })
				time.Sleep(time.Minute)
				w = h.world()
				if st := w.svcStatus["web"]; st.State != client.UpdateUpdating {
					t.Errorf("status = %+v, want updating", st)
				}
				if r := w.ready("web"); r != 2 || w.count("web") != 2 {
					t.Errorf("%d ready of %d tasks, want the 2 old replicas untouched:\n%s", r, w.count("web"), w)
				}
				h.deploy(spec("v3", 1.5))
				w = h.waitFor("v3 completed", limit, func(w world) bool {
					return w.svcStatus["web"].Version == 3 && w.svcStatus["web"].Terminal()
				})
				if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
					t.Errorf("status = %+v, want completed", st)
				}
			})
		})
	}
}
