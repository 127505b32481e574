package controller

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// failsAtOnce: the agent could not prepare or create the replica (an
// image that is not there, a name conflict): failed at once, for good.
func failsAtOnce(msg string) []step {
	return []step{{100 * time.Millisecond, client.ReplicaStatus{State: client.StateFailed, Message: msg}}}
}

// readyThenFails: ready after ready, then the agent gives up (its own
// max_attempts) after readyFor.
func readyThenFails(ready, readyFor time.Duration) []step {
	return append(becomesReady(ready), step{readyFor, client.ReplicaStatus{
		State: client.StateFailed, ExitCode: 1, Restarts: 2, Message: "exited with code 1; gave up after 2 restarts",
	}})
}

// byAttempt plays, for the n-th task of a slot running image, the n-th
// script of scripts[image] (the last one once they run out); other
// images become ready after a second.
func byAttempt(scripts map[string][][]step) script {
	var mu sync.Mutex
	seen := map[string]int{}
	return func(rec store.TaskRecord) []step {
		mu.Lock()
		defer mu.Unlock()
		s, ok := scripts[rec.Spec.Image]
		if !ok {
			return becomesReady(time.Second)
		}
		k := fmt.Sprintf("%s/%s/%d", rec.Service, rec.Spec.Image, rec.Slot)
		n := seen[k]
		seen[k]++
		return s[min(n, len(s)-1)]
	}
}

// life is one task as the history saw it.
type life struct {
	id      string
	slot    int
	version int64
	image   string
	created time.Time
	ended   time.Time // when the agent reported it failed or complete
}

// history records every task a service ever had and the states its
// status went through, from an observer.
type history struct {
	mu       sync.Mutex
	service  string
	tasks    map[string]*life
	statuses []client.UpdateStatus
}

func (h *harness) history(service string) *history {
	hs := &history{service: service, tasks: map[string]*life{}}
	o := h.observe(func(w world) string {
		hs.mu.Lock()
		defer hs.mu.Unlock()
		for id, t := range w.tasks {
			if t.Service != service {
				continue
			}
			l := hs.tasks[id]
			if l == nil {
				l = &life{id: id, slot: t.Slot, version: t.Version, image: t.Spec.Image, created: t.CreatedAt}
				hs.tasks[id] = l
			}
			if st, ok := w.statuses[id]; ok && l.ended.IsZero() && terminalState(st.State) {
				l.ended = st.UpdatedAt
			}
		}
		if st, ok := w.svcStatus[service]; ok {
			if n := len(hs.statuses); n == 0 || hs.statuses[n-1].State != st.State || hs.statuses[n-1].Message != st.Message {
				hs.statuses = append(hs.statuses, st)
			}
		}
		return ""
	})
	_ = o
	return hs
}

// slot returns the tasks of slot n, oldest first.
func (hs *history) slot(n int) []life {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	var out []life
	for _, l := range hs.tasks {
		if l.slot == n {
			out = append(out, *l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out
}

// delays are the waits between a task of slot n ending and the next one
// of the slot being created.
func (hs *history) delays(n int) []time.Duration {
	var out []time.Duration
	ts := hs.slot(n)
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].created.Sub(ts[i-1].ended))
	}
	return out
}

func (hs *history) states() []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	var out []string
	for _, st := range hs.statuses {
		out = append(out, st.State)
	}
	return out
}

// createdAll waits until slot n of the history has had count tasks.
func (h *harness) createdAll(hs *history, n, count int) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d tasks in slot %d", count, n), 10*limit, func(world) bool {
		synctest.Wait() // the history's observer has seen this revision
		return len(hs.slot(n)) >= count
	})
}

// converged waits until service's status is terminal and about its
// record as it is now.
func (h *harness) converged(service string) world {
	h.t.Helper()
	kv, err := h.st.Get(h.ctx, store.ServiceKey(project, service))
	if err != nil {
		h.t.Fatal(err)
	}
	return h.waitFor(service+" converged", limit, func(w world) bool {
		st := w.svcStatus[service]
		return st.ObservedRevision >= kv.ModRevision && st.Terminal()
	})
}

// sameDelays compares replacement delays; the clock is synctest's, so
// they are exact up to the fake agent's own steps.
func sameDelays(got, want []time.Duration) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] < want[i] || got[i] > want[i]+50*time.Millisecond {
			return false
		}
	}
	return true
}

func policy(p client.RestartPolicy) func(*client.ServiceSpec) {
	return func(s *client.ServiceSpec) { s.RestartPolicy = p }
}

func TestReplaceable(t *testing.T) {
	tests := []struct {
		cond, state string
		want        bool
	}{
		{"", client.StateFailed, true},
		{"", client.StateComplete, true},
		{client.RestartAny, client.StateFailed, true},
		{client.RestartAny, client.StateComplete, true},
		{client.RestartOnFailure, client.StateFailed, true},
		{client.RestartOnFailure, client.StateComplete, false},
		{client.RestartNone, client.StateFailed, false},
		{client.RestartNone, client.StateComplete, false},
		{client.RestartAny, client.StateRunning, false},
		{client.RestartAny, client.StateRestarting, false},
	}
	for _, tt := range tests {
		t.Run(tt.cond+"/"+tt.state, func(t *testing.T) {
			if got := replaceable(tt.cond, tt.state); got != tt.want {
				t.Errorf("replaceable(%q, %q) = %v, want %v", tt.cond, tt.state, got, tt.want)
			}
		})
	}
}

func TestReplaceDelay(t *testing.T) {
	s := time.Second
	tests := []struct {
		base time.Duration
		want []time.Duration // for attempts 0, 1, 2, ...
	}{
		{0, []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s}},
		{45 * s, []time.Duration{45 * s, 60 * s, 60 * s}},
		{90 * s, []time.Duration{90 * s, 90 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.base.String(), func(t *testing.T) {
			for n, want := range tt.want {
				if got := replaceDelay(tt.base, n); got != want {
					t.Errorf("replaceDelay(%v, %d) = %v, want %v", tt.base, n, got, want)
				}
			}
		})
	}
}

// A replica that fails at once is replaced after the policy's delay,
// doubled for each consecutive replacement, up to a minute.
func TestReplacementDelaysDouble(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		delay time.Duration
		want  []time.Duration
	}{
		{"default", 0, []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s}},
		{"delay 45s", 45 * s, []time.Duration{45 * s, 60 * s, 60 * s}},
		{"delay 90s, longer than the cap", 90 * s, []time.Duration{90 * s, 90 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, byImage(map[string][]step{"v1": failsAtOnce("pull v1: not found")}))
				defer h.close()
				hs := h.history("web")
				h.deploy(web("v1", 1, policy(client.RestartPolicy{Delay: client.Duration(tt.delay)})))
				h.createdAll(hs, 1, len(tt.want)+1)
				if got := hs.delays(1); !sameDelays(got, tt.want) {
					t.Errorf("delays before each replacement = %v, want %v", got, tt.want)
				}
				w := h.world()
				if run := w.running("web"); len(run) != 1 || run[0].Slot != 1 {
					t.Errorf("running = %+v, want one task in slot 1", run)
				}
				if got := h.metric("ruche_controller_replicas_replaced_total"); got < float64(len(tt.want)) {
					t.Errorf("replicas replaced = %v, want >= %d", got, len(tt.want))
				}
			})
		})
	}
}

// max_attempts bounds the replacements of each slot; the failed replica
// then stays, and an event says why.
func TestMaxAttemptsStopsReplacements(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v1": failsAtOnce("pull v1: not found")}))
		defer h.close()
		hs := h.history("web")
		h.deploy(web("v1", 2, policy(client.RestartPolicy{MaxAttempts: 2})))
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		for slot := 1; slot <= 2; slot++ {
			if got := len(hs.slot(slot)); got != 3 {
				t.Errorf("slot %d had %d tasks, want 3 (the first and 2 replacements)", slot, got)
			}
		}
		if got := hs.delays(1); !sameDelays(got, []time.Duration{time.Second, 2 * time.Second}) {
			t.Errorf("delays = %v, want 1s 2s", got)
		}
		w := h.world()
		run := w.running("web")
		if len(run) != 2 || w.count("web") != 2 {
			t.Fatalf("%d running of %d tasks, want the 2 last failed ones:\n%s", len(run), w.count("web"), w)
		}
		for _, task := range run {
			if st := w.statuses[task.ID]; st.State != client.StateFailed {
				t.Errorf("task %s is %s, want failed (left as it is)", task.ID, st.State)
			}
		}
		if got := h.metric("ruche_controller_replicas_replaced_total"); got != 4 {
			t.Errorf("replicas replaced = %v, want 4", got)
		}
		gaveUp := 0
		for _, ev := range w.events {
			if ev.Action == "gave_up" {
				gaveUp++
				if !strings.Contains(ev.Message, "max_attempts 2 reached") {
					t.Errorf("gave_up event %q, want it to name max_attempts", ev.Message)
				}
			}
		}
		if gaveUp != 2 {
			t.Errorf("%d gave_up events, want one per slot", gaveUp)
		}
		if st := w.svcStatus["web"]; st.State != client.UpdateFailed {
			t.Errorf("status = %+v, want failed", st)
		}
	})
}

// The restart condition says which terminal replicas are replaced.
func TestReplacementConditions(t *testing.T) {
	tests := []struct {
		cond     string
		ends     []step
		replaced bool
	}{
		{client.RestartAny, failsAtOnce("create: conflict"), true},
		{client.RestartAny, completes(time.Second), true},
		{client.RestartOnFailure, failsAtOnce("create: conflict"), true},
		{client.RestartOnFailure, readyThenFails(time.Second, time.Minute), true},
		{client.RestartOnFailure, completes(time.Second), false},
		{client.RestartNone, failsAtOnce("create: conflict"), false},
		{client.RestartNone, readyThenFails(time.Second, time.Minute), false},
		{client.RestartNone, completes(time.Second), false},
	}
	for _, tt := range tests {
		end := tt.ends[len(tt.ends)-1].st.State
		t.Run(fmt.Sprintf("%s/%s/%d", tt.cond, end, len(tt.ends)), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, byAttempt(map[string][][]step{"v1": {tt.ends, becomesReady(time.Second)}}))
				defer h.close()
				hs := h.history("web")
				h.deploy(web("v1", 1, policy(client.RestartPolicy{Condition: tt.cond})))
				time.Sleep(5 * time.Minute)
				synctest.Wait()
				tasks := hs.slot(1)
				w := h.world()
				if !tt.replaced {
					if len(tasks) != 1 || w.count("web") != 1 {
						t.Fatalf("slot 1 had %d tasks, want 1 (not replaced):\n%s", len(tasks), w)
					}
					if st := w.statuses[tasks[0].id]; st.State != end || w.tasks[tasks[0].id].DesiredState != client.DesiredRunning {
						t.Errorf("task is %s, want %s and left alone", st.State, end)
					}
					return
				}
				if len(tasks) != 2 {
					t.Fatalf("slot 1 had %d tasks, want 2 (replaced once, then ready)", len(tasks))
				}
				if r := w.ready("web"); r != 1 || w.count("web") != 1 {
					t.Errorf("%d ready of %d tasks, want the replacement alone and ready:\n%s", r, w.count("web"), w)
				}
				if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
					t.Errorf("status = %+v, want completed", st)
				}
				// A replacement is not a scale: the slot is never empty.
				if states := strings.Join(hs.states(), " "); strings.Contains(states, client.UpdateScaling) {
					t.Errorf("states = %s, want no scaling", states)
				}
				assertEvents(t, h, "update_started", "scheduled", "shutdown", "scheduled")
			})
		})
	}
}

// A slot whose replica stayed Ready for the window starts its backoff
// afresh; a shorter run does not reset it.
func TestRecoveredSlotResetsBackoff(t *testing.T) {
	s := time.Second
	tests := []struct {
		name     string
		window   time.Duration
		readyFor time.Duration
		want     []time.Duration
	}{
		{"ready longer than the default window", 0, 30 * s, []time.Duration{s, 2 * s, s, 2 * s}},
		{"ready shorter than the default window", 0, 5 * s, []time.Duration{s, 2 * s, 4 * s, 8 * s}},
		{"ready longer than a 3s window", 3 * s, 5 * s, []time.Duration{s, 2 * s, s, 2 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fail := failsAtOnce("create: conflict")
				h := newHarness(t, byAttempt(map[string][][]step{"v1": {
					fail, fail, readyThenFails(s, tt.readyFor), fail, becomesReady(s),
				}}))
				defer h.close()
				hs := h.history("web")
				h.deploy(web("v1", 1, policy(client.RestartPolicy{Window: client.Duration(tt.window)})))
				h.createdAll(hs, 1, 5)
				if got := hs.delays(1); !sameDelays(got, tt.want) {
					t.Errorf("delays = %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// A first deploy whose replicas fail reports failed (the deploy command
// exits 1), and the replacements go on: once every slot is ready, the
// status moves on to completed.
func TestFailedFirstDeployRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byAttempt(map[string][][]step{"v1": {failsAtOnce("create: name conflict"), becomesReady(time.Second)}}))
		defer h.close()
		hs := h.history("web")
		h.deploy(web("v1", 3))
		rec, err := h.st.Get(h.ctx, store.ServiceKey(project, "web"))
		if err != nil {
			t.Fatal(err)
		}
		w := h.waitStatus("web", limit, client.UpdateFailed, client.UpdateCompleted)
		st := w.svcStatus["web"]
		if st.State != client.UpdateFailed || !st.Terminal() || !st.Failed() || st.ObservedRevision < rec.ModRevision {
			t.Fatalf("status = %+v, want failed, terminal, about revision %d", st, rec.ModRevision)
		}
		if !strings.Contains(st.Message, "of version 1 failed: create: name conflict") || !strings.HasSuffix(st.Message, "no previous version to roll back to") {
			t.Errorf("message = %q, want the reason", st.Message)
		}
		w = h.waitStatus("web", limit, client.UpdateCompleted)
		synctest.Wait() // the history has seen it too
		st = w.svcStatus["web"]
		if st.Failed() || st.Version != 1 || !strings.HasPrefix(st.Message, "recovered: 3 replicas of version 1 ready") || st.ObservedRevision < rec.ModRevision {
			t.Errorf("status = %+v, want completed, recovered", st)
		}
		if r := w.ready("web"); r != 3 || w.count("web") != 3 {
			t.Errorf("%d ready of %d tasks, want 3 of 3:\n%s", r, w.count("web"), w)
		}
		// Recovered means settled: every replacement Ready (1.1s after its
		// creation) for the whole monitor window (5s).
		for slot := 1; slot <= 3; slot++ {
			ts := hs.slot(slot)
			if len(ts) != 2 {
				t.Fatalf("slot %d had %d tasks, want 2", slot, len(ts))
			}
			if settled := ts[1].created.Add(1100*time.Millisecond + 5*time.Second); st.CompletedAt.Before(settled) {
				t.Errorf("recovered at %v, before slot %d settled (%v)", st.CompletedAt, slot, settled)
			}
		}
		if got, want := strings.Join(hs.states(), " "), "deploying failed completed"; got != want {
			t.Errorf("states = %s, want %s", got, want)
		}
		if got := h.metric("ruche_service_updates_total", "result", "failed"); got != 1 {
			t.Errorf("updates failed = %v, want 1", got)
		}
		if got := h.metric("ruche_service_updates_total", "result", "completed"); got != 0 {
			t.Errorf("updates completed = %v, want 0 (a recovery is not a rollout)", got)
		}
		if got := h.metric("ruche_controller_replicas_replaced_total"); got != 3 {
			t.Errorf("replicas replaced = %v, want 3", got)
		}
		assertEvents(t, h, "update_started", "update_failed", "shutdown", "scheduled", "recovered")
	})
}

// A replica restarted in place within its monitor window fails the
// rollout, and the agent keeps it: nothing is replaced. Once every replica
// has run Ready for the window since, the failed status recovers, like
// one whose failed replicas were replaced: a restart before that stretch
// no longer counts (Restarts is the replica's lifetime count).
func TestFailedRolloutRecoversFromRestarts(t *testing.T) {
	const monitor = 5 * time.Second
	restarts := restartsAfter(time.Second, 2*time.Second) // within its window
	tests := []struct {
		name     string
		replicas int
		script   script
		update   bool   // v1 completes, then v2 fails and is rolled back
		restart  int    // the slot that restarts
		failed   string // the failed status's message, its start
		states   string
	}{
		{"first deploy", 1, bySlot(map[string]map[int][]step{"v1": {1: restarts}}), false, 1,
			"replica web.1 of version 1 restarted", "deploying failed completed"},
		{"first deploy, one of three", 3, bySlot(map[string]map[int][]step{"v1": {2: restarts}}), false, 2,
			"replica web.2 of version 1 restarted", "deploying failed completed"},
		// The rollback's own replica of slot 1 (the slot's second task of
		// v1) restarts: the rollback fails, then recovers.
		{"rollback", 3, byAttempt(map[string][][]step{"v1": {becomesReady(time.Second), restarts}, "v2": {failsAtOnce("pull v2: not found")}}), true, 1,
			"rollback failed: replica web.1 of version 3 restarted", "completed updating rolling_back failed completed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, tt.script)
				defer h.close()
				cfg := update(client.UpdateConfig{Monitor: client.Duration(monitor)})
				image, version := "v1", int64(1)
				if tt.update {
					h.deploy(web("v1", tt.replicas, cfg))
					h.waitStatus("web", limit, client.UpdateCompleted)
					image, version = "v2", 3 // v2, rolled back as version 3
				}
				hs := h.history("web")
				h.deploy(web(image, tt.replicas, cfg))
				w := h.waitVersion(version)
				st := w.svcStatus["web"]
				if st.State != client.UpdateFailed || !st.Failed() || !strings.HasPrefix(st.Message, tt.failed) {
					t.Fatalf("status = %+v, want failed: %s", st, tt.failed)
				}
				w = h.waitStatus("web", limit, client.UpdateCompleted)
				synctest.Wait() // the history has seen it too
				st = w.svcStatus["web"]
				want := fmt.Sprintf("recovered: %d replicas of version %d ready", tt.replicas, version)
				if st.Failed() || st.Version != version || st.Message != want {
					t.Errorf("status = %+v, want completed, %q", st, want)
				}
				if got := strings.Join(hs.states(), " "); got != tt.states {
					t.Errorf("states = %s, want %s", got, tt.states)
				}
				// Recovered in place, once the restarted replica had been
				// Ready again for its whole window.
				if r := w.ready("web"); r != tt.replicas || w.count("web") != tt.replicas {
					t.Errorf("%d ready of %d tasks, want %d of %d:\n%s", r, w.count("web"), tt.replicas, tt.replicas, w)
				}
				again := w.statuses[w.running("web")[tt.restart-1].ID]
				if again.Restarts != 1 || st.CompletedAt.Before(again.UpdatedAt.Add(monitor)) {
					t.Errorf("recovered at %v; web.%d restarted %d times, ready again at %v: want 1, and the window (%v) passed",
						st.CompletedAt, tt.restart, again.Restarts, again.UpdatedAt, monitor)
				}
				if got := h.metric("ruche_controller_replicas_replaced_total"); got != 0 {
					t.Errorf("replicas replaced = %v, want 0 (restarted in place)", got)
				}
			})
		})
	}
}

// During an update, a failed replica of the new version is the rollout's
// business (failure_action), not replaced behind its back; once the
// rollout has ended, it is.
func TestFailedNewVersionNotReplacedDuringRollout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byAttempt(map[string][][]step{"v2": {readyThenFails(time.Second, 3*time.Second), becomesReady(time.Second)}}))
		defer h.close()
		cfg := update(client.UpdateConfig{FailureAction: client.FailureContinue})
		h.deploy(web("v1", 3, cfg))
		h.waitStatus("web", limit, client.UpdateCompleted)
		hs := h.history("web")
		h.deploy(web("v2", 3, cfg))
		w := h.waitFor("version 2 done", limit, func(w world) bool {
			return w.svcStatus["web"].Version == 2 && w.svcStatus["web"].Terminal()
		})
		st := w.svcStatus["web"]
		if st.State != client.UpdateFailed || !strings.HasPrefix(st.Message, "version 2 rolled out with failed replicas: web.1 failed") {
			t.Fatalf("status = %+v, want failed, naming web.1", st)
		}
		for slot := 1; slot <= 3; slot++ {
			n := 0
			for _, l := range hs.slot(slot) {
				if l.version == 2 && l.created.Before(st.CompletedAt) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("slot %d: %d tasks of version 2 during the rollout, want 1 (no replacement then)", slot, n)
			}
		}
		w = h.waitFor("recovered", limit, func(w world) bool { return w.svcStatus["web"].State == client.UpdateCompleted })
		if r := w.ready("web"); r != 3 {
			t.Errorf("%d ready, want 3 once replaced", r)
		}
		for _, task := range w.running("web") {
			if task.Version != 2 {
				t.Errorf("slot %d runs version %d, want 2", task.Slot, task.Version)
			}
		}
	})
}

// An update whose new replicas fail rolls back as before: the failed
// replica of the new version is not replaced by another of that version.
func TestFailedUpdateRollsBackWithoutReplacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v2": failsAtOnce("pull v2: not found")}))
		defer h.close()
		h.deploy(web("v1", 3))
		h.waitStatus("web", limit, client.UpdateCompleted)
		hs := h.history("web")
		h.deploy(web("v2", 3))
		w := h.waitFor("version 2 rolled back", limit, func(w world) bool {
			st := w.svcStatus["web"]
			return st.Version >= 2 && st.Terminal()
		})
		if st := w.svcStatus["web"]; st.State != client.UpdateRolledBack {
			t.Fatalf("status = %+v, want rolled_back", st)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		v2 := 0
		for slot := 1; slot <= 3; slot++ {
			for _, l := range hs.slot(slot) {
				if l.image == "v2" {
					v2++
				}
			}
		}
		if v2 != 1 {
			t.Errorf("%d tasks of v2 created, want 1 (the failure rolled back, no replacement)", v2)
		}
		w = h.world()
		if r := w.ready("web"); r != 3 || w.count("web") != 3 {
			t.Errorf("%d ready of %d tasks, want 3 of v1", r, w.count("web"))
		}
		if got := h.metric("ruche_controller_replicas_replaced_total"); got != 0 {
			t.Errorf("replicas replaced = %v, want 0 (the rollback replaced it)", got)
		}
	})
}

// During a scale, a replica that was there before it and fails is
// replaced, and the scale completes.
func TestReplacedDuringScale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byAttempt(map[string][][]step{"v1": {readyThenFails(time.Second, 10*time.Second), becomesReady(time.Second)}}))
		defer h.close()
		start := time.Now()
		h.deploy(web("v1", 1))
		// Ready at 1.1s, settled at 6.1s, fails at 11.1s: scale at 11s.
		h.waitStatus("web", limit, client.UpdateCompleted)
		time.Sleep(time.Until(start.Add(11 * time.Second)))
		h.deploy(web("v1", 3))
		w := h.converged("web")
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
			t.Fatalf("status = %+v, want completed", st)
		}
		if r := w.ready("web"); r != 3 || w.count("web") != 3 {
			t.Errorf("%d ready of %d tasks, want 3 of 3:\n%s", r, w.count("web"), w)
		}
		if got := h.metric("ruche_controller_replicas_replaced_total"); got != 1 {
			t.Errorf("replicas replaced = %v, want 1", got)
		}
	})
}

// A controller restart only resets the backoff: the next replacement
// comes a base delay after the restart, and a slot never has two
// replicas.
func TestRestartResetsBackoffOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v1": failsAtOnce("pull v1: not found")}))
		defer h.close()
		o := h.observe(func(w world) string {
			if n := len(w.running("web")); n > 1 {
				return fmt.Sprintf("%d running tasks, want at most 1", n)
			}
			return ""
		})
		hs := h.history("web")
		h.deploy(web("v1", 1))
		h.createdAll(hs, 1, 4) // delays 1s 2s 4s; the next would be 8s
		h.waitFor("the fourth failed", limit, func(w world) bool {
			run := w.running("web")
			return len(run) == 1 && w.statuses[run[0].ID].State == client.StateFailed
		})
		h.stopController()
		time.Sleep(30 * time.Second)
		if got := len(hs.slot(1)); got != 4 {
			t.Fatalf("%d tasks while no controller ran, want 4", got)
		}
		restart := time.Now()
		h.startController()
		h.createdAll(hs, 1, 6)
		o.check(t)
		ts := hs.slot(1)
		if got := ts[4].created.Sub(restart); got != time.Second {
			t.Errorf("first replacement %v after the restart, want 1s (backoff reset)", got)
		}
		if got := ts[5].created.Sub(ts[4].ended); got != 2*time.Second {
			t.Errorf("second replacement after %v, want 2s", got)
		}
	})
}

// A new version starts every slot's count afresh: replicas of version 2
// are replaced even though version 1 used up max_attempts.
func TestNewVersionResetsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{
			"v1": failsAtOnce("pull v1: not found"),
			"v2": failsAtOnce("pull v2: not found"),
		}))
		defer h.close()
		hs := h.history("web")
		spec := func(image string) client.ServiceSpec {
			return web(image, 1, policy(client.RestartPolicy{MaxAttempts: 1}), update(client.UpdateConfig{FailureAction: client.FailureContinue}))
		}
		h.deploy(spec("v1"))
		time.Sleep(time.Minute)
		h.deploy(spec("v2"))
		time.Sleep(time.Minute)
		synctest.Wait()
		count := map[string]int{}
		for _, l := range hs.slot(1) {
			count[l.image]++
		}
		if count["v1"] != 2 || count["v2"] != 2 {
			t.Errorf("tasks by image = %v, want 2 of each (the first and one replacement)", count)
		}
	})
}

// A paused start-first update keeps the old replica next to the failed
// new one: the slot has a live replica and gets no other.
func TestPausedStartFirstSlotNotReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(map[string][]step{"v2": failsAtOnce("pull v2: not found")}))
		defer h.close()
		cfg := update(client.UpdateConfig{Order: client.OrderStartFirst, FailureAction: client.FailurePause})
		h.deploy(web("v1", 2, cfg))
		h.waitStatus("web", limit, client.UpdateCompleted)
		hs := h.history("web")
		h.deploy(web("v2", 2, cfg))
		h.waitStatus("web", limit, client.UpdatePaused)
		time.Sleep(time.Minute)
		synctest.Wait()
		v2 := 0
		for _, l := range hs.slot(1) {
			if l.image == "v2" {
				v2++
			}
		}
		if v2 != 1 {
			t.Errorf("%d tasks of v2 in slot 1, want 1 (the v1 replica still serves it)", v2)
		}
		if r := h.world().ready("web"); r != 2 {
			t.Errorf("%d ready, want the 2 v1 replicas", r)
		}
	})
}
