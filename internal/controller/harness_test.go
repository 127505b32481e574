package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/store"
)

const project = "shop"

// harness runs a controller and a fake agent on an in-memory store, inside
// a synctest bubble.
type harness struct {
	t          *testing.T
	st         store.Store
	closeStore func()
	reg        *prometheus.Registry
	ctx        context.Context
	stop       context.CancelFunc
	wg         sync.WaitGroup
	agent      *fakeAgent

	cfg      Config // of the controllers the harness starts
	ctrlStop context.CancelFunc
	ctrlDone chan struct{}
}

func newHarness(t *testing.T, s script) *harness {
	t.Helper()
	return newHarnessWith(t, s, Config{Seed: 1})
}

func newHarnessWith(t *testing.T, s script, cfg Config) *harness {
	t.Helper()
	mem := store.NewMemory()
	return newHarnessOn(t, mem, mem.Close, s, cfg)
}

func newHarnessOn(t *testing.T, st store.Store, closeStore func(), s script, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, st: st, closeStore: closeStore, reg: prometheus.NewRegistry(), cfg: cfg}
	h.ctx, h.stop = context.WithCancel(context.Background())
	h.put(store.NodeKey("n1"), client.Node{
		ID: "n1", Hostname: "box", Role: "manager+agent", Status: "ready", Availability: "active",
		Capacity: client.ResourceAmounts{CPUs: 4, Memory: 8 << 30},
	})
	h.put(store.ProjectKey(project), store.ProjectRecord{
		Name:     project,
		Networks: map[string]client.NetworkSpec{"default": {Name: "default"}},
		Volumes:  map[string]client.VolumeSpec{"data": {Name: "data"}},
	})
	h.agent = newFakeAgent(st, "n1", s)
	h.wg.Add(1)
	go func() { defer h.wg.Done(); h.agent.run(h.ctx) }()
	h.startController()
	return h
}

// close stops everything and waits for every goroutine.
func (h *harness) close() {
	h.stopController()
	h.stop()
	h.wg.Wait()
	h.closeStore()
}

func (h *harness) startController() {
	h.startControllerWith(h.st)
}

func (h *harness) startControllerWith(st store.Store) {
	log := slog.New(slog.NewTextHandler(h.t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := New(h.cfg, Deps{Store: st, Log: log, Metrics: h.reg, Events: events.NewRecorder(h.st, log)})
	ctx, cancel := context.WithCancel(h.ctx)
	h.ctrlStop, h.ctrlDone = cancel, make(chan struct{})
	go func() {
		defer close(h.ctrlDone)
		if err := c.Run(ctx); err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}()
}

func (h *harness) stopController() {
	if h.ctrlStop == nil {
		return
	}
	h.ctrlStop()
	<-h.ctrlDone
	h.ctrlStop = nil
}

func (h *harness) put(key string, v any) {
	h.t.Helper()
	if _, err := h.st.Txn(h.ctx, nil, store.Put(key, store.Encode(v))); err != nil {
		h.t.Fatal(err)
	}
}

// deploy writes a service record the way the API does: a new version when
// the template changes, a scale when only Replicas does.
func (h *harness) deploy(spec client.ServiceSpec) {
	h.t.Helper()
	key := store.ServiceKey(project, spec.Name)
	var rec store.ServiceRecord
	rev, err := store.GetJSON(h.ctx, h.st, key, &rec)
	switch {
	case errors.Is(err, store.ErrNotFound):
		rec = store.ServiceRecord{Spec: spec, Version: 1}
	case err != nil:
		h.t.Fatal(err)
	case !bytes.Equal(template(rec.Spec), template(spec)):
		old := rec.Spec
		rec = store.ServiceRecord{Spec: spec, Version: rec.Version + 1, Previous: &old, PreviousVersion: rec.Version}
	default:
		rec.Spec.Replicas = spec.Replicas
	}
	rec.UpdatedAt = time.Now()
	if _, err := h.st.Txn(h.ctx, []store.Cmp{store.ModRevisionIs(key, rev)}, store.Put(key, store.Encode(rec))); err != nil {
		h.t.Fatal(err)
	}
}

// rollback does what `ruche rollback` does.
func (h *harness) rollback(service string) {
	h.t.Helper()
	key := store.ServiceKey(project, service)
	var rec store.ServiceRecord
	rev, err := store.GetJSON(h.ctx, h.st, key, &rec)
	if err != nil || rec.Previous == nil {
		h.t.Fatalf("rollback %s: %v (previous %v)", service, err, rec.Previous)
	}
	cur := rec.Spec
	next := store.ServiceRecord{Spec: *rec.Previous, Version: rec.Version + 1, Previous: &cur, PreviousVersion: rec.Version, Rollback: true, UpdatedAt: time.Now()}
	if _, err := h.st.Txn(h.ctx, []store.Cmp{store.ModRevisionIs(key, rev)}, store.Put(key, store.Encode(next))); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) remove(service string) {
	h.t.Helper()
	if _, err := h.st.Txn(h.ctx, nil, store.Delete(store.ServiceKey(project, service))); err != nil {
		h.t.Fatal(err)
	}
}

// world is the whole store, decoded.
type world struct {
	rev       int64
	services  map[string]store.ServiceRecord
	svcStatus map[string]client.UpdateStatus
	tasks     map[string]store.TaskRecord
	statuses  map[string]client.ReplicaStatus
	events    []client.Event
}

func (h *harness) world() world {
	h.t.Helper()
	kvs, rev, err := h.st.List(h.ctx, store.Root)
	if err != nil {
		h.t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	w := decodeWorld(m)
	w.rev = rev
	return w
}

func decodeWorld(m map[string][]byte) world {
	w := world{services: map[string]store.ServiceRecord{}, svcStatus: map[string]client.UpdateStatus{}, tasks: map[string]store.TaskRecord{}, statuses: map[string]client.ReplicaStatus{}}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv := store.KV{Key: k, Value: m[k]}
		var err error
		switch {
		case strings.HasPrefix(k, store.ServicesPrefix):
			var v store.ServiceRecord
			err = store.Decode(kv, &v)
			w.services[strings.TrimPrefix(k, store.ServicesPrefix+project+"/")] = v
		case strings.HasPrefix(k, store.SvcStatusPrefix):
			var v client.UpdateStatus
			err = store.Decode(kv, &v)
			w.svcStatus[strings.TrimPrefix(k, store.SvcStatusPrefix+project+"/")] = v
		case strings.HasPrefix(k, store.TasksPrefix):
			var v store.TaskRecord
			err = store.Decode(kv, &v)
			w.tasks[v.ID] = v
		case strings.HasPrefix(k, store.TaskStatusPrefix):
			var v client.ReplicaStatus
			err = store.Decode(kv, &v)
			w.statuses[store.Last(k)] = v
		case strings.HasPrefix(k, store.EventsPrefix):
			var v client.Event
			err = store.Decode(kv, &v)
			w.events = append(w.events, v)
		}
		if err != nil {
			panic(err)
		}
	}
	return w
}

// running lists the tasks of service with desired state running, by slot.
func (w world) running(service string) []store.TaskRecord {
	var out []store.TaskRecord
	for _, t := range w.tasks {
		if t.Service == service && t.DesiredState == client.DesiredRunning {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out
}

// ready counts the tasks of service wanted running and reported ready.
func (w world) ready(service string) int {
	n := 0
	for _, t := range w.running(service) {
		if w.statuses[t.ID].Ready {
			n++
		}
	}
	return n
}

// count is every task key of service, whatever its state.
func (w world) count(service string) int {
	n := 0
	for _, t := range w.tasks {
		if t.Service == service {
			n++
		}
	}
	return n
}

func (w world) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rev %d\n", w.rev)
	for s, st := range w.svcStatus {
		fmt.Fprintf(&b, "  %s: %+v\n", s, st)
	}
	ids := make([]string, 0, len(w.tasks))
	for id := range w.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := w.tasks[id]
		fmt.Fprintf(&b, "  task %s v%d %s: %+v\n", id, t.Version, t.DesiredState, w.statuses[id])
	}
	return b.String()
}

// waitFor blocks until cond holds on the store, or fails the test after
// limit of (fake) time.
func (h *harness) waitFor(what string, limit time.Duration, cond func(w world) bool) world {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	w := h.world()
	watch := h.st.Watch(ctx, store.Root, w.rev+1)
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for !cond(w) {
		select {
		case <-watch:
			w = h.world()
		case <-deadline.C:
			h.t.Fatalf("after %v, still waiting for %s; store:\n%s", limit, what, w)
		}
	}
	return w
}

func (h *harness) waitStatus(service string, limit time.Duration, states ...string) world {
	h.t.Helper()
	return h.waitFor(service+" status "+strings.Join(states, "|"), limit, func(w world) bool {
		st, ok := w.svcStatus[service]
		if !ok {
			return false
		}
		for _, s := range states {
			if st.State == s {
				return true
			}
		}
		return false
	})
}

// observer checks an invariant after every revision of the store.
type observer struct {
	mu         sync.Mutex
	violations []string
	done       chan struct{}
}

func (h *harness) observe(check func(w world) string) *observer {
	o := &observer{done: make(chan struct{})}
	ctx := h.ctx
	kvs, rev, err := h.st.List(ctx, store.Root)
	if err != nil {
		h.t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	watch := h.st.Watch(ctx, store.Root, rev+1)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(o.done)
		for resp := range watch {
			// One response can span revisions: check each of them.
			evs := resp.Events
			for i := 0; i < len(evs); {
				r := evs[i].KV.ModRevision
				for ; i < len(evs) && evs[i].KV.ModRevision == r; i++ {
					if evs[i].Type == store.EventDelete {
						delete(m, evs[i].KV.Key)
					} else {
						m[evs[i].KV.Key] = evs[i].KV.Value
					}
				}
				w := decodeWorld(m)
				w.rev = r
				if v := check(w); v != "" {
					o.mu.Lock()
					o.violations = append(o.violations, fmt.Sprintf("rev %d: %s\n%s", r, v, w))
					o.mu.Unlock()
				}
			}
		}
	}()
	return o
}

// check reports violations seen so far, once every goroutine of the
// bubble has caught up.
func (o *observer) check(t *testing.T) {
	t.Helper()
	synctest.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.violations) > 0 {
		t.Errorf("%d invariant violations; first:\n%s", len(o.violations), o.violations[0])
	}
}

func web(image string, replicas int, mods ...func(*client.ServiceSpec)) client.ServiceSpec {
	s := client.ServiceSpec{Name: "web", Image: image, Replicas: replicas}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func update(c client.UpdateConfig) func(*client.ServiceSpec) {
	return func(s *client.ServiceSpec) { s.UpdateConfig = c }
}

// byImage plays a script chosen by the task's image; other images become
// ready after a second.
func byImage(scripts map[string][]step) script {
	return func(rec store.TaskRecord) []step {
		if s, ok := scripts[rec.Spec.Image]; ok {
			return s
		}
		return becomesReady(time.Second)
	}
}

// metric returns the value of a counter of the registry. The controller
// counts after its transaction: the bubble settles first, so that a test
// that saw the write also sees the count.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	synctest.Wait()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
