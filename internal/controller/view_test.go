package controller

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// freshView is what a view was before orders were kept: every task and
// status looked up and sorted anew. The oracle for the kept orders.
func freshView(c *cache, k svcKey) *view {
	v := &view{key: k, project: c.projects[k.project].v}
	if e, ok := c.services[k]; ok {
		rec := e.v
		v.rec, v.recRev = &rec, e.rev
	}
	if e, ok := c.svcStatus[k]; ok {
		st := e.v
		v.status, v.statusRev = &st, e.rev
	}
	for id := range c.byService[k] {
		te, se := c.tasks[id], c.statuses[id]
		if te == nil {
			if se != nil {
				v.orphans = append(v.orphans, orphan{id: id, rev: se.rev})
			}
			continue
		}
		rec := te.rec
		t := &task{key: te.key, rec: &rec, desired: rec.DesiredState, rev: te.rev, tmpl: te.tmpl}
		if se != nil {
			st := se.st
			t.status, t.statusRev, t.readySince, t.terminalSince = &st, se.rev, se.readySince, se.terminalSince
		}
		n, ok := c.nodes[te.rec.Node]
		switch {
		case !ok:
			t.nodeGone = true
		case n.v.Status == client.NodeDown:
			t.nodeGone, t.nodeDown = true, true
		case n.v.Availability == client.AvailabilityDrain:
			t.nodeDrain = true
		}
		v.tasks = append(v.tasks, t)
	}
	sort.Slice(v.tasks, func(i, j int) bool {
		a, b := v.tasks[i].rec, v.tasks[j].rec
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	sort.Slice(v.orphans, func(i, j int) bool { return v.orphans[i].id < v.orphans[j].id })
	return v
}

// cacheEvents writes records into a cache the way the watch does, one
// revision per event.
type cacheEvents struct {
	t   *testing.T
	c   *cache
	rev int64
	now time.Time
}

func (e *cacheEvents) put(key string, v any) {
	e.t.Helper()
	e.rev++
	if _, err := e.c.apply(store.Event{Type: store.EventPut, KV: store.KV{Key: key, Value: store.Encode(v), ModRevision: e.rev}}, e.now); err != nil {
		e.t.Fatalf("apply %s: %v", key, err)
	}
}

func (e *cacheEvents) del(key string) {
	e.t.Helper()
	e.rev++
	if _, err := e.c.apply(store.Event{Type: store.EventDelete, KV: store.KV{Key: key, ModRevision: e.rev}}, e.now); err != nil {
		e.t.Fatalf("apply delete %s: %v", key, err)
	}
}

func viewTask(k svcKey, slot int, node string, created time.Time) store.TaskRecord {
	return store.TaskRecord{
		Replica: client.Replica{
			ID: newTaskID(k, slot), Project: k.project, Service: k.service, Slot: slot, Version: 1,
			Node: node, DesiredState: client.DesiredRunning, CreatedAt: created,
		},
		Spec: client.ServiceSpec{Image: "img", Replicas: 3},
	}
}

// A status report of a known task keeps its service's order (no rebuild,
// no sort); the view still shows the new report. A task or an orphan
// status coming or going drops the order.
func TestViewStatusReportKeepsOrder(t *testing.T) {
	k := svcKey{"p", "web"}
	ev := &cacheEvents{t: t, c: newCache(), now: time.Unix(1000, 0)}
	ev.put(store.NodeKey("n1"), client.Node{ID: "n1", Status: client.NodeReady, Availability: client.AvailabilityActive})
	ev.put(store.ServiceKey(k.project, k.service), store.ServiceRecord{Version: 1, Spec: client.ServiceSpec{Image: "img", Replicas: 3}})
	a := viewTask(k, 1, "n1", ev.now)
	ev.put(store.TaskKey("n1", a.ID), a)

	ev.c.view(k)
	kept := ev.c.orders[k]
	if kept == nil {
		t.Fatal("no order kept after a view")
	}
	ev.put(store.TaskStatusKey(a.ID), client.ReplicaStatus{State: client.StateRunning, Ready: true})
	if got := ev.c.orders[k]; got != kept {
		t.Fatal("a status report of a known task dropped the order")
	}
	v := ev.c.view(k)
	if got, want := v.tasks[0].ready(), true; got != want {
		t.Fatalf("ready after the report: got %v, want %v", got, want)
	}
	if got, want := v.tasks[0].readySince, ev.now; !got.Equal(want) {
		t.Fatalf("readySince: got %v, want %v", got, want)
	}

	steps := []struct {
		name string
		do   func()
		drop bool
	}{
		{"status report again", func() {
			ev.put(store.TaskStatusKey(a.ID), client.ReplicaStatus{State: client.StateRunning, Ready: false})
		}, false},
		{"node drained", func() {
			ev.put(store.NodeKey("n1"), client.Node{ID: "n1", Status: client.NodeReady, Availability: client.AvailabilityDrain})
		}, false},
		{"new task", func() {
			b := viewTask(k, 2, "n1", ev.now)
			ev.put(store.TaskKey("n1", b.ID), b)
		}, true},
		{"task rewritten", func() {
			a.DesiredState = client.DesiredShutdown
			ev.put(store.TaskKey("n1", a.ID), a)
		}, true},
		{"orphan status", func() {
			ev.put(store.TaskStatusKey("p.web.9.zzzz"), client.ReplicaStatus{State: client.StateRunning})
		}, true},
		{"task deleted", func() { ev.del(store.TaskKey("n1", a.ID)) }, true},
	}
	for _, s := range steps {
		ev.c.view(k)
		kept := ev.c.orders[k]
		s.do()
		if got := ev.c.orders[k] != kept; got != s.drop {
			t.Fatalf("%s: order dropped: got %v, want %v", s.name, got, s.drop)
		}
		if got, want := ev.c.view(k), freshView(ev.c, k); !sameView(got, want) {
			t.Fatalf("%s: view differs from one built afresh:\ngot  %s\nwant %s", s.name, dumpView(got), dumpView(want))
		}
	}
}

// Whatever the events, a view from a kept order is the view built afresh.
func TestViewMatchesFreshView(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed))
			services := []svcKey{{"p", "web"}, {"p", "db"}, {"q", "web"}}
			nodes := []string{"n1", "n2", "n3"}
			ev := &cacheEvents{t: t, c: newCache(), now: time.Unix(1000, 0)}
			for _, k := range services {
				ev.put(store.ServiceKey(k.project, k.service), store.ServiceRecord{Version: 1, Spec: client.ServiceSpec{Image: "img", Replicas: 3}})
			}
			var tasks []store.TaskRecord
			states := []string{client.StatePending, client.StateRunning, client.StateFailed, client.StateShutdown, client.StateComplete}
			for i := range 300 {
				ev.now = ev.now.Add(time.Second)
				switch r := rng.IntN(10); {
				case r < 3 || len(tasks) == 0: // a new task
					k := services[rng.IntN(len(services))]
					tr := viewTask(k, 1+rng.IntN(4), nodes[rng.IntN(len(nodes))], ev.now.Add(-time.Duration(rng.IntN(3))*time.Second))
					tasks = append(tasks, tr)
					ev.put(store.TaskKey(tr.Node, tr.ID), tr)
				case r < 6: // a status report (sometimes of a task gone: an orphan)
					tr := tasks[rng.IntN(len(tasks))]
					ev.put(store.TaskStatusKey(tr.ID), client.ReplicaStatus{State: states[rng.IntN(len(states))], Ready: rng.IntN(2) == 0})
				case r < 7: // a task shut down
					j := rng.IntN(len(tasks))
					tasks[j].DesiredState = client.DesiredShutdown
					ev.put(store.TaskKey(tasks[j].Node, tasks[j].ID), tasks[j])
				case r < 8: // a task deleted, its status sometimes too
					j := rng.IntN(len(tasks))
					tr := tasks[j]
					tasks = append(tasks[:j], tasks[j+1:]...)
					ev.del(store.TaskKey(tr.Node, tr.ID))
					if rng.IntN(2) == 0 {
						ev.del(store.TaskStatusKey(tr.ID))
					}
				case r < 9: // a node changes
					n := nodes[rng.IntN(len(nodes))]
					switch rng.IntN(4) {
					case 0:
						ev.del(store.NodeKey(n))
					case 1:
						ev.put(store.NodeKey(n), client.Node{ID: n, Status: client.NodeDown, Availability: client.AvailabilityActive})
					case 2:
						ev.put(store.NodeKey(n), client.Node{ID: n, Status: client.NodeReady, Availability: client.AvailabilityDrain})
					default:
						ev.put(store.NodeKey(n), client.Node{ID: n, Status: client.NodeReady, Availability: client.AvailabilityActive})
					}
				default: // a status deleted
					tr := tasks[rng.IntN(len(tasks))]
					ev.del(store.TaskStatusKey(tr.ID))
				}
				for _, k := range services {
					if rng.IntN(3) == 0 {
						continue // not every service is viewed after every event
					}
					if got, want := ev.c.view(k), freshView(ev.c, k); !sameView(got, want) {
						t.Fatalf("event %d, %s: view differs from one built afresh:\ngot  %s\nwant %s", i, k, dumpView(got), dumpView(want))
					}
				}
			}
		})
	}
}

// A pass that shuts a task down changes its own task only: the cache's
// record and the next view are untouched.
func TestPassShutdownLeavesCache(t *testing.T) {
	k := svcKey{"p", "web"}
	ev := &cacheEvents{t: t, c: newCache(), now: time.Unix(1000, 0)}
	ev.put(store.NodeKey("n1"), client.Node{ID: "n1", Status: client.NodeReady, Availability: client.AvailabilityActive})
	a := viewTask(k, 1, "n1", ev.now)
	ev.put(store.TaskKey("n1", a.ID), a)
	c := New(Config{}, Deps{})
	p := newPass(&run{c: c, cache: ev.c}, ev.c.view(k), ev.now)
	p.shutdown(p.v.tasks[0], "test")
	if got, want := p.v.tasks[0].running(), false; got != want {
		t.Fatalf("pass's task running after shutdown: got %v, want %v", got, want)
	}
	if got, want := ev.c.tasks[a.ID].rec.DesiredState, client.DesiredRunning; got != want {
		t.Fatalf("cache's desired state: got %q, want %q", got, want)
	}
	if got, want := ev.c.view(k).tasks[0].running(), true; got != want {
		t.Fatalf("next view's task running: got %v, want %v", got, want)
	}
	want := a
	want.DesiredState = client.DesiredShutdown
	if got, want := p.ops, []store.Op{store.Put(store.TaskKey("n1", a.ID), store.Encode(want))}; !reflect.DeepEqual(got, want) {
		t.Fatalf("written: got %+v, want %+v", got, want)
	}
}

// sameView compares what a pass reads of two views, pointers followed.
func sameView(a, b *view) bool {
	if a.key != b.key || a.recRev != b.recRev || a.statusRev != b.statusRev || !reflect.DeepEqual(deref(a.rec), deref(b.rec)) ||
		!reflect.DeepEqual(deref(a.status), deref(b.status)) || !reflect.DeepEqual(a.project, b.project) ||
		!reflect.DeepEqual(a.orphans, b.orphans) || len(a.tasks) != len(b.tasks) {
		return false
	}
	for i, x := range a.tasks {
		y := b.tasks[i]
		if x.key != y.key || x.desired != y.desired || x.rev != y.rev || string(x.tmpl) != string(y.tmpl) ||
			x.statusRev != y.statusRev || !x.readySince.Equal(y.readySince) || !x.terminalSince.Equal(y.terminalSince) ||
			x.nodeGone != y.nodeGone || x.nodeDown != y.nodeDown || x.nodeDrain != y.nodeDrain ||
			!reflect.DeepEqual(deref(x.status), deref(y.status)) || !reflect.DeepEqual(*x.rec, *y.rec) {
			return false
		}
	}
	return true
}

// dumpView prints what a pass reads of a view, pointers followed.
func dumpView(v *view) string {
	s := fmt.Sprintf("rec=%+v@%d status=%+v@%d orphans=%+v tasks:", deref(v.rec), v.recRev, deref(v.status), v.statusRev, v.orphans)
	for _, t := range v.tasks {
		s += fmt.Sprintf("\n  %s %s rev=%d desired=%s tmpl=%s status=%+v@%d ready=%v terminal=%v gone=%v down=%v drain=%v rec=%+v",
			t.key, t.id(), t.rev, t.desired, t.tmpl, deref(t.status), t.statusRev, t.readySince, t.terminalSince,
			t.nodeGone, t.nodeDown, t.nodeDrain, *t.rec)
	}
	return s
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
