package controller

import (
	"context"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// step is one status change of a fake replica, after a pause.
type step struct {
	after time.Duration
	st    client.ReplicaStatus
}

// script returns what a replica does once its task is assigned.
type script func(rec store.TaskRecord) []step

// becomesReady: starting at once, ready after d.
func becomesReady(d time.Duration) []step {
	return []step{
		{100 * time.Millisecond, client.ReplicaStatus{State: client.StateStarting}},
		{d, client.ReplicaStatus{State: client.StateRunning, Ready: true, Health: "healthy"}},
	}
}

// turnsUnhealthy: ready after ready, unhealthy sick later.
func turnsUnhealthy(ready, sick time.Duration) []step {
	return append(becomesReady(ready), step{sick, client.ReplicaStatus{State: client.StateUnhealthy, Health: "unhealthy", Message: "healthcheck failed"}})
}

// crashLoops: exits 1 after d and is restarted, over and over.
func crashLoops(d time.Duration) []step {
	s := []step{{100 * time.Millisecond, client.ReplicaStatus{State: client.StateStarting}}}
	for i := 1; i <= 3; i++ {
		s = append(s,
			step{d, client.ReplicaStatus{State: client.StateRestarting, ExitCode: 1, Restarts: i}},
			step{time.Second, client.ReplicaStatus{State: client.StateStarting, Restarts: i}})
	}
	return s
}

// completes: runs for d and exits 0.
func completes(d time.Duration) []step {
	return []step{
		{100 * time.Millisecond, client.ReplicaStatus{State: client.StateStarting}},
		{d, client.ReplicaStatus{State: client.StateComplete}},
	}
}

// fakeAgent plays the agent of one node: it watches the node's tasks and
// writes their statuses as the script says; a task set to shutdown stops
// after stopTime and reports shutdown.
type fakeAgent struct {
	st       store.Store
	node     string
	script   script
	stopTime time.Duration

	mu    sync.Mutex
	tasks map[string]*fakeReplica
	wg    sync.WaitGroup
}

type fakeReplica struct {
	cancel   context.CancelFunc
	stopping bool
}

func newFakeAgent(st store.Store, node string, s script) *fakeAgent {
	return &fakeAgent{st: st, node: node, script: s, stopTime: 300 * time.Millisecond, tasks: map[string]*fakeReplica{}}
}

// run blocks until ctx ends and every replica goroutine is gone.
func (a *fakeAgent) run(ctx context.Context) {
	defer a.wg.Wait()
	prefix := store.NodeTasksPrefix(a.node)
	kvs, rev, err := a.st.List(ctx, prefix)
	if err != nil {
		return
	}
	for _, kv := range kvs {
		a.handle(ctx, store.Event{Type: store.EventPut, KV: kv})
	}
	for resp := range a.st.Watch(ctx, prefix, rev+1) {
		for _, ev := range resp.Events {
			a.handle(ctx, ev)
		}
	}
}

func (a *fakeAgent) handle(ctx context.Context, ev store.Event) {
	_, id, _ := store.SplitTask(ev.KV.Key)
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.tasks[id]
	if ev.Type == store.EventDelete {
		if r != nil {
			r.cancel()
			delete(a.tasks, id)
		}
		return
	}
	var rec store.TaskRecord
	if err := store.Decode(ev.KV, &rec); err != nil {
		panic(err)
	}
	switch {
	case rec.DesiredState == client.DesiredRunning && r == nil:
		rctx, cancel := context.WithCancel(ctx)
		a.tasks[id] = &fakeReplica{cancel: cancel}
		a.play(rctx, ev.KV.Key, id, a.script(rec))
	case rec.DesiredState == client.DesiredShutdown && (r == nil || !r.stopping):
		if r != nil {
			r.cancel()
		}
		rctx, cancel := context.WithCancel(ctx)
		a.tasks[id] = &fakeReplica{cancel: cancel, stopping: true}
		a.play(rctx, ev.KV.Key, id, []step{
			{0, client.ReplicaStatus{State: client.StateStopping}},
			{a.stopTime, client.ReplicaStatus{State: client.StateShutdown}},
		})
	}
}

// play writes steps in order, each only while the task key exists (as a
// real agent, it has nothing to report on a deleted task).
func (a *fakeAgent) play(ctx context.Context, taskKey, id string, steps []step) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for _, s := range steps {
			if s.after > 0 {
				t := time.NewTimer(s.after)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			if ctx.Err() != nil {
				return
			}
			st := s.st
			st.UpdatedAt = time.Now()
			_, _ = a.st.Txn(ctx, []store.Cmp{store.KeyExists(taskKey)}, store.Put(store.TaskStatusKey(id), store.Encode(st)))
		}
	}()
}
