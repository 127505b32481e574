package controller

import (
	"sort"
	"strconv"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// task is one task of a service as a reconcile pass sees it: the
// assignment, the agent's report (if any) and the revisions to compare.
// rec and status point into the cache, whose entries are replaced, never
// changed: a pass must not write through them (what it decides for a task
// goes in its own fields, like desired).
type task struct {
	key        string
	rec        *store.TaskRecord
	desired    string // rec.DesiredState, or shutdown once this pass decided so
	rev        int64
	tmpl       []byte                // replica template of rec.Spec
	status     *client.ReplicaStatus // nil until the agent reports
	statusRev  int64
	readySince time.Time
	// terminalSince is when the controller saw it fail or complete.
	terminalSince time.Time
	wasReady      stretch // see statusEntry
	nodeGone      bool    // its node is down or unknown: no report will come
	nodeDown      bool    // its node's record says down (it may come back)
	nodeDrain     bool    // its node is being drained
}

func (t *task) id() string    { return t.rec.ID }
func (t *task) name() string  { return t.rec.Replica.Name() }
func (t *task) running() bool { return t.desired == client.DesiredRunning }
func (t *task) ready() bool   { return t.status != nil && t.status.Ready }
func (t *task) state() string {
	if t.status == nil {
		return client.StatePending
	}
	return t.status.State
}

// terminal: the agent gave up on it (restart policy) or it completed.
func (t *task) terminal() bool { return terminalState(t.state()) }

// terminalState: the agent will do nothing more with a replica in state s.
func terminalState(s string) bool { return s == client.StateFailed || s == client.StateComplete }

// gone: its container is removed, or can no longer be waited for.
func (t *task) gone() bool { return t.state() == client.StateShutdown || t.nodeGone }

// settled: Ready for the whole monitor window (or completed, for one-shot
// services).
func (t *task) settled(now time.Time, monitor time.Duration) bool {
	if t.state() == client.StateComplete {
		return true
	}
	return t.ready() && !t.failing() && !now.Before(t.readySince.Add(monitor))
}

// steady: Ready and running for the whole monitor window since it last
// became so (or completed). Unlike settled, an earlier restart in place
// does not count: Restarts is the replica's lifetime count, and a restart
// starts a new stretch (cache.applyStatus). A failed status recovers on it.
func (t *task) steady(now time.Time, monitor time.Duration) bool {
	if t.state() == client.StateComplete {
		return true
	}
	return t.ready() && t.state() == client.StateRunning && !now.Before(t.readySince.Add(monitor))
}

// settledAt reports whether t has passed its monitor window, and when: it
// completed, or it was Ready without failing for the whole window, now or
// in an earlier stretch. A rollout is done with such a replica: should it
// fail afterwards, its restart policy answers for it, not failure_action.
func (t *task) settledAt(now time.Time, monitor time.Duration) (time.Time, bool) {
	switch {
	case t.state() == client.StateComplete:
		return time.Time{}, true
	case t.wasReady.len() >= monitor:
		return t.wasReady.from.Add(monitor), true
	case t.settled(now, monitor):
		return t.readySince.Add(monitor), true
	}
	return time.Time{}, false
}

// failing says why a task counts as a failed replica during a rollout, or "".
func (t *task) failing() bool { return t.failure() != "" }

func (t *task) failure() string { return failure(t.status) }

// healthy: Ready, and not failing.
func healthy(st *client.ReplicaStatus) bool { return st.Ready && failure(st) == "" }

// failure says why a replica in status st counts as failed, or "".
func failure(st *client.ReplicaStatus) string {
	if st == nil {
		return ""
	}
	detail := ""
	if st.Message != "" {
		detail = ": " + st.Message
	}
	switch {
	case st.State == client.StateFailed:
		if detail == "" && st.ExitCode != 0 {
			detail = ": exit code " + strconv.Itoa(st.ExitCode)
		}
		return "failed" + detail
	case st.State == client.StateUnhealthy:
		return "became unhealthy" + detail
	case st.State == client.StateRestarting, st.Restarts > 0:
		return "restarted" + detail
	}
	return ""
}

// view is everything one reconcile pass of a service reads.
type view struct {
	key       svcKey
	rec       *store.ServiceRecord // nil: the service was removed
	recRev    int64
	status    *client.UpdateStatus // nil: never written
	statusRev int64
	project   store.ProjectRecord
	tasks     []*task // sorted by slot, then creation
	orphans   []orphan
}

// orphan is a status key whose task key is gone (a late report).
type orphan struct {
	id  string
	rev int64
}

// order is a service's tasks in view order (slot, then creation, then
// ID) and its orphan status keys, kept by the cache (cache.orders) until a
// task of the service, or an orphan, comes or goes. A status report of a
// task it holds keeps it: the report is read at view time. Node flags are
// refreshed when the nodes have changed since (nodeGen).
type order struct {
	tasks   []orderedTask
	orphans []string // sorted
	nodeGen int64
}

type orderedTask struct {
	te                            *taskEntry
	nodeGone, nodeDown, nodeDrain bool
}

// order returns k's order, built if the cache holds none.
func (c *cache) order(k svcKey) *order {
	o := c.orders[k]
	if o == nil {
		o = &order{nodeGen: c.nodeGen - 1} // flags set below
		for id := range c.byService[k] {
			if te := c.tasks[id]; te != nil {
				o.tasks = append(o.tasks, orderedTask{te: te})
			} else if c.statuses[id] != nil {
				o.orphans = append(o.orphans, id)
			}
		}
		sort.Slice(o.tasks, func(i, j int) bool {
			a, b := &o.tasks[i].te.rec, &o.tasks[j].te.rec // pointers: a TaskRecord is large
			if a.Slot != b.Slot {
				return a.Slot < b.Slot
			}
			if !a.CreatedAt.Equal(b.CreatedAt) {
				return a.CreatedAt.Before(b.CreatedAt)
			}
			return a.ID < b.ID
		})
		sort.Strings(o.orphans)
		c.orders[k] = o
	}
	if o.nodeGen != c.nodeGen {
		for i := range o.tasks {
			ot := &o.tasks[i]
			ot.nodeGone, ot.nodeDown, ot.nodeDrain = false, false, false
			n, ok := c.nodes[ot.te.rec.Node]
			switch {
			case !ok:
				ot.nodeGone = true
			case n.v.Status == client.NodeDown:
				ot.nodeGone, ot.nodeDown = true, true
			case n.v.Availability == client.AvailabilityDrain:
				ot.nodeDrain = true
			}
		}
		o.nodeGen = c.nodeGen
	}
	return o
}

// view is what a pass of k reads now. Its tasks are new (a pass may
// change their own fields); what they point to is the cache's.
func (c *cache) view(k svcKey) *view {
	v := &view{key: k, project: c.projects[k.project].v}
	if e, ok := c.services[k]; ok {
		rec := e.v
		v.rec, v.recRev = &rec, e.rev
	}
	if e, ok := c.svcStatus[k]; ok {
		st := e.v
		v.status, v.statusRev = &st, e.rev
	}
	o := c.order(k)
	ts := make([]task, len(o.tasks)) // one allocation for all
	v.tasks = make([]*task, len(o.tasks))
	for i := range o.tasks {
		ot := &o.tasks[i]
		te := ot.te
		t := &ts[i]
		*t = task{key: te.key, rec: &te.rec, desired: te.rec.DesiredState, rev: te.rev, tmpl: te.tmpl,
			nodeGone: ot.nodeGone, nodeDown: ot.nodeDown, nodeDrain: ot.nodeDrain}
		if se := te.status; se != nil {
			t.status, t.statusRev, t.readySince, t.terminalSince, t.wasReady = &se.st, se.rev, se.readySince, se.terminalSince, se.wasReady
		}
		v.tasks[i] = t
	}
	for _, id := range o.orphans {
		if se := c.statuses[id]; se != nil {
			v.orphans = append(v.orphans, orphan{id: id, rev: se.rev})
		}
	}
	return v
}
