package controller

import (
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/scheduler"
	"github.com/ruche-platform/ruche/internal/store"
)

// listPrefixes are what the controller reads. Each is listed on its own
// (events and tokens are not worth listing), then one watch on store.Root
// from the lowest list revision replays what changed in between; apply is
// idempotent per key revision, so the replay converges. Statuses are
// listed before tasks: a status whose task is missing from the cache is
// then really an orphan, never a task listed too early.
var listPrefixes = []string{
	store.ProjectsPrefix, store.ServicesPrefix, store.SvcStatusPrefix,
	store.TaskStatusPrefix, store.TasksPrefix, store.NodesPrefix,
}

// entry is a decoded record and the revision it was written at.
type entry[T any] struct {
	v   T
	rev int64
}

type taskEntry struct {
	key  string
	rec  store.TaskRecord
	rev  int64
	tmpl []byte // template(rec.Spec)
	// sched is what the task holds for the scheduler, computed once:
	// every round that places builds a plan from all of them.
	sched scheduler.Task
	// status is statuses[ID], kept by apply (the one field of an entry
	// that changes: a view reads it instead of looking the ID up).
	status *statusEntry
}

type statusEntry struct {
	st  client.ReplicaStatus
	rev int64
	// readySince is when the controller first saw the replica Ready since
	// it last (re)started (its own clock, so agents' clocks do not
	// matter). A controller that starts sees every ready replica as ready
	// since then: monitor windows restart, which errs on the safe side.
	readySince time.Time
	// terminalSince is when the controller first saw the replica failed or
	// complete (same clock, same restart rule): replacement delays count
	// from it.
	terminalSince time.Time
	// wasReady is the longest stretch the replica was seen Ready without
	// failing and then stopped being so (same clock, same restart rule): a
	// replica that passed its monitor window and failed afterwards is no
	// longer the rollout's failure (task.settledAt).
	wasReady stretch
}

// stretch is a span of the controller's clock.
type stretch struct{ from, until time.Time }

func (s stretch) len() time.Duration { return s.until.Sub(s.from) }

// cache is the controller's view of the store, kept current by the watch.
type cache struct {
	rev       int64
	projects  map[string]entry[store.ProjectRecord]
	services  map[svcKey]entry[store.ServiceRecord]
	svcStatus map[svcKey]entry[client.UpdateStatus]
	tasks     map[string]*taskEntry   // by task ID
	statuses  map[string]*statusEntry // by task ID
	nodes     map[string]entry[client.Node]

	byService map[svcKey]map[string]bool // task IDs (of tasks and of statuses)
	byProject map[string]map[string]bool // service names with a record

	// orders are the services' tasks in view order, built on first use
	// and dropped when a task of the service (or an orphan status) comes
	// or goes: a status report keeps its service's order (view.go).
	orders map[svcKey]*order
	// nodeGen counts node changes: an order's node flags are refreshed
	// when it differs.
	nodeGen int64
}

func newCache() *cache {
	return &cache{
		projects:  map[string]entry[store.ProjectRecord]{},
		services:  map[svcKey]entry[store.ServiceRecord]{},
		svcStatus: map[svcKey]entry[client.UpdateStatus]{},
		tasks:     map[string]*taskEntry{},
		statuses:  map[string]*statusEntry{},
		nodes:     map[string]entry[client.Node]{},
		byService: map[svcKey]map[string]bool{},
		byProject: map[string]map[string]bool{},
		orders:    map[svcKey]*order{},
	}
}

// touch is what a change concerns: services to reconcile, or all of them.
type touch struct {
	services []svcKey
	all      bool
}

// apply folds one event into the cache. Decoding errors drop the key (and
// are returned for logging): a record the controller cannot read is one it
// cannot act on.
func (c *cache) apply(ev store.Event, now time.Time) (touch, error) {
	key := ev.KV.Key
	var err error
	var t touch
	switch {
	case strings.HasPrefix(key, store.ProjectsPrefix):
		err = applyEntry(c.projects, store.Last(key), ev)
		t.services = c.projectServices(store.Last(key))
	case strings.HasPrefix(key, store.ServicesPrefix):
		p, s, ok := store.SplitService(key)
		if !ok {
			return touch{}, nil
		}
		k := svcKey{p, s}
		err = applyEntry(c.services, k, ev)
		if _, ok := c.services[k]; ok {
			setAdd(c.byProject, p, s)
		} else {
			setDel(c.byProject, p, s)
		}
		t.services = append([]svcKey{k}, c.dependents(k)...)
	case strings.HasPrefix(key, store.SvcStatusPrefix):
		p, s, ok := store.SplitService(key)
		if !ok {
			return touch{}, nil
		}
		err = applyEntry(c.svcStatus, svcKey{p, s}, ev)
		t.services = []svcKey{{p, s}}
	case strings.HasPrefix(key, store.TasksPrefix):
		t, err = c.applyTask(ev)
	case strings.HasPrefix(key, store.TaskStatusPrefix):
		t, err = c.applyStatus(ev, now)
	case strings.HasPrefix(key, store.NodesPrefix):
		err = applyEntry(c.nodes, store.Last(key), ev)
		c.nodeGen++
		t.all = true
	}
	return t, err
}

// applyEntry puts or deletes a decoded record unless the cache already has
// a newer revision of it.
func applyEntry[K comparable, T any](m map[K]entry[T], k K, ev store.Event) error {
	cur, ok := m[k]
	if ok && cur.rev >= ev.KV.ModRevision {
		return nil
	}
	if ev.Type == store.EventDelete {
		delete(m, k)
		return nil
	}
	var v T
	if err := store.Decode(ev.KV, &v); err != nil {
		delete(m, k)
		return err
	}
	m[k] = entry[T]{v: v, rev: ev.KV.ModRevision}
	return nil
}

func (c *cache) applyTask(ev store.Event) (touch, error) {
	_, id, ok := store.SplitTask(ev.KV.Key)
	if !ok {
		return touch{}, nil
	}
	cur := c.tasks[id]
	if cur != nil && cur.rev >= ev.KV.ModRevision {
		return touch{}, nil
	}
	if ev.Type == store.EventDelete {
		if cur == nil {
			return touch{}, nil
		}
		k := svcKey{cur.rec.Project, cur.rec.Service}
		delete(c.tasks, id)
		delete(c.orders, k)
		if _, has := c.statuses[id]; !has {
			setDel(c.byService, k, id)
		}
		return touch{services: append([]svcKey{k}, c.dependents(k)...)}, nil
	}
	if cur != nil {
		delete(c.orders, svcKey{cur.rec.Project, cur.rec.Service})
	}
	var rec store.TaskRecord
	if err := store.Decode(ev.KV, &rec); err != nil {
		delete(c.tasks, id)
		return touch{}, err
	}
	c.tasks[id] = &taskEntry{key: ev.KV.Key, rec: rec, rev: ev.KV.ModRevision, tmpl: template(rec.Spec),
		sched: scheduler.TaskOf(rec.Replica, rec.Spec), status: c.statuses[id]}
	k := svcKey{rec.Project, rec.Service}
	setAdd(c.byService, k, id)
	delete(c.orders, k)
	return touch{services: append([]svcKey{k}, c.dependents(k)...)}, nil
}

func (c *cache) applyStatus(ev store.Event, now time.Time) (touch, error) {
	id := store.Last(ev.KV.Key)
	k, ok := c.serviceOf(id)
	if !ok {
		return touch{}, nil
	}
	cur := c.statuses[id]
	if cur != nil && cur.rev >= ev.KV.ModRevision {
		return touch{}, nil
	}
	t := touch{services: append([]svcKey{k}, c.dependents(k)...)}
	te := c.tasks[id]
	if te == nil {
		delete(c.orders, k) // an orphan comes or goes
	} else {
		te.status = nil // set again below unless the status goes
	}
	if ev.Type == store.EventDelete {
		delete(c.statuses, id)
		if _, has := c.tasks[id]; !has {
			setDel(c.byService, k, id)
		}
		return t, nil
	}
	var st client.ReplicaStatus
	if err := store.Decode(ev.KV, &st); err != nil {
		delete(c.statuses, id)
		return t, err
	}
	e := &statusEntry{st: st, rev: ev.KV.ModRevision}
	if cur != nil {
		e.wasReady = cur.wasReady
		if healthy(&cur.st) && !healthy(&st) {
			if s := (stretch{cur.readySince, now}); s.len() > e.wasReady.len() {
				e.wasReady = s
			}
		}
	}
	if st.Ready {
		e.readySince = now
		// A restart ends the stretch, even one whose not-ready report
		// was never seen (the agent reports what is, not every step).
		if cur != nil && cur.st.Ready && st.Restarts == cur.st.Restarts {
			e.readySince = cur.readySince
		}
	}
	if terminalState(st.State) {
		e.terminalSince = now
		if cur != nil && terminalState(cur.st.State) {
			e.terminalSince = cur.terminalSince
		}
	}
	c.statuses[id] = e
	if te != nil {
		te.status = e
	}
	setAdd(c.byService, k, id)
	return t, nil
}

// serviceOf is the service a task ID belongs to: from its record when the
// cache has it, else from the ID itself.
func (c *cache) serviceOf(id string) (svcKey, bool) {
	if t := c.tasks[id]; t != nil {
		return svcKey{t.rec.Project, t.rec.Service}, true
	}
	k, _, ok := parseTaskID(id)
	return k, ok
}

func (c *cache) projectServices(p string) []svcKey {
	var out []svcKey
	for s := range c.byProject[p] {
		out = append(out, svcKey{p, s})
	}
	return out
}

// dependents are the services of k's project whose depends_on names k:
// a change of k may let them start.
func (c *cache) dependents(k svcKey) []svcKey {
	var out []svcKey
	for s := range c.byProject[k.project] {
		if _, ok := c.services[svcKey{k.project, s}].v.Spec.DependsOn[k.service]; ok {
			out = append(out, svcKey{k.project, s})
		}
	}
	return out
}

// allServices is every service with a record, a status or a task.
func (c *cache) allServices() []svcKey {
	seen := map[svcKey]bool{}
	var out []svcKey
	add := func(k svcKey) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for k := range c.services {
		add(k)
	}
	for k := range c.svcStatus {
		add(k)
	}
	for k := range c.byService {
		add(k)
	}
	return out
}

func setAdd[K comparable](m map[K]map[string]bool, k K, v string) {
	s := m[k]
	if s == nil {
		s = map[string]bool{}
		m[k] = s
	}
	s[v] = true
}

func setDel[K comparable](m map[K]map[string]bool, k K, v string) {
	if s := m[k]; s != nil {
		delete(s, v)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}
