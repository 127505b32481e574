package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/scheduler"
	"github.com/ruche-platform/ruche/internal/store"
)

// pass is one reconcile of one service: it reads a view, decides, and
// collects the writes of one transaction. It does no I/O itself; commit
// does.
type pass struct {
	r   *run
	v   *view
	now time.Time

	cmps    []store.Cmp
	ops     []store.Op
	bytes   int             // size of the task records in ops (MaxTxnBytes)
	written map[string]bool // keys already written in this pass
	live    []*task         // tasks not garbage-collected by this pass

	status    client.UpdateStatus // what the status should be
	statusSet bool                // status differs from the stored one
	note      string              // why the service waits (depends_on, no node)

	events   []client.Event
	results  []string // update results, for metrics
	created  int
	replaced int       // failed replicas replaced
	wake     time.Time // when the service wants another pass
	full     bool      // the transaction budget ran out: another pass follows

	// backoff is this pass's copy of the service's replacement
	// bookkeeping; the run keeps it only if the pass commits.
	backoff    map[int]slotBackoff
	backoffSet bool

	waits    map[string]string // why tasks wait for their node, by ID (nodes.go)
	waitsSet map[string]string // changes to Controller.waits ("" deletes)
}

func newPass(r *run, v *view, now time.Time) *pass {
	p := &pass{r: r, v: v, now: now, written: map[string]bool{}, waits: map[string]string{}, waitsSet: map[string]string{}}
	if v.status != nil {
		p.status = *v.status
	}
	p.backoff = maps.Clone(r.c.backoff[v.key])
	return p
}

// room reports whether ops more operations and cmps more compares fit in
// the transaction, keeping two of each for the service and status records.
// etcd refuses transactions past --max-txn-ops (128 by default).
func (p *pass) room(ops, cmps int) bool {
	limit := p.r.c.cfg.MaxTxnOps - 2
	if len(p.ops)+ops > limit || len(p.cmps)+cmps > limit || p.bytes >= p.r.c.cfg.MaxTxnBytes {
		p.full = true
		return false
	}
	return true
}

func (p *pass) wakeAt(t time.Time) {
	if t.After(p.now) && (p.wake.IsZero() || t.Before(p.wake)) {
		p.wake = t
	}
}

func (p *pass) event(typ, action string, t *task, msg string) {
	ev := client.Event{Time: p.now, Type: typ, Action: action, Project: p.v.key.project, Service: p.v.key.service, Message: msg}
	if t != nil {
		ev.Replica, ev.Node = t.name(), t.rec.Node
	}
	p.events = append(p.events, ev)
}

// reconcile decides everything for the service.
func (p *pass) reconcile() {
	defer p.settleWaits()
	p.collectGarbage()
	if p.v.rec == nil {
		p.removeService()
		return
	}
	p.converge()
}

// collectGarbage deletes tasks the agent has shut down, with their status
// key, and status keys whose task is gone.
func (p *pass) collectGarbage() {
	for _, t := range p.v.tasks {
		if !t.running() && t.state() == client.StateShutdown && p.room(2, 1) {
			p.cmps = append(p.cmps, store.ModRevisionIs(t.key, t.rev))
			p.ops = append(p.ops, store.Delete(t.key), store.Delete(store.TaskStatusKey(t.id())))
			p.written[t.key] = true
			continue
		}
		p.live = append(p.live, t)
	}
	for _, o := range p.v.orphans {
		if p.room(1, 1) {
			k := store.TaskStatusKey(o.id)
			p.cmps = append(p.cmps, store.ModRevisionIs(k, o.rev))
			p.ops = append(p.ops, store.Delete(k))
		}
	}
}

// removeService shuts down the tasks of a service that has no record
// left, and deletes its status once no task is left.
func (p *pass) removeService() {
	p.forgetBackoff()
	for _, t := range p.live {
		if t.running() {
			p.shutdown(t, "service removed")
		}
	}
	if len(p.live) == 0 && p.v.status != nil && !p.full {
		// commit compares the status revision.
		p.ops = append(p.ops, store.Delete(store.SvcStatusKey(p.v.key.project, p.v.key.service)))
	}
}

// shutdown sets a task's desired state to shutdown.
func (p *pass) shutdown(t *task, why string) {
	if p.written[t.key] || !t.running() || !p.room(1, 1) {
		return
	}
	rec := *t.rec
	rec.DesiredState = client.DesiredShutdown
	p.cmps = append(p.cmps, store.ModRevisionIs(t.key, t.rev))
	val := store.Encode(rec)
	p.ops = append(p.ops, store.Put(t.key, val))
	p.bytes += len(val)
	p.written[t.key] = true
	t.desired = client.DesiredShutdown
	p.event("replica", "shutdown", t, fmt.Sprintf("%s shut down: %s", t.name(), why))
}

// create places a new task in slot and writes it. It returns false when no
// node can take it, with the reason in p.note if explain.
func (p *pass) create(slot int, explain bool) bool {
	if !p.room(1, 1) {
		return false
	}
	rec := p.v.rec
	pl, err := p.r.plan().Place(scheduler.Request{
		Project: p.v.key.project, Service: p.v.key.service, Slot: slot, Spec: rec.Spec,
	})
	if err != nil {
		if explain && p.note == "" {
			p.note = err.Error()
		}
		return false
	}
	id := newTaskID(p.v.key, slot)
	t := store.TaskRecord{
		Replica: client.Replica{
			ID: id, Project: p.v.key.project, Service: p.v.key.service, Slot: slot,
			Version: rec.Version, Node: pl.Node, DesiredState: client.DesiredRunning, CreatedAt: p.now,
		},
		Spec: rec.Spec,
	}
	t.Volumes, t.Networks = projectResources(p.v.project, rec.Spec)
	key := store.TaskKey(pl.Node, id)
	p.cmps = append(p.cmps, store.ModRevisionIs(key, 0))
	val := store.Encode(t)
	p.ops = append(p.ops, store.Put(key, val))
	p.bytes += len(val)
	p.written[key] = true
	p.created++
	p.events = append(p.events, client.Event{
		Time: p.now, Type: "replica", Action: "scheduled", Project: p.v.key.project, Service: p.v.key.service,
		Replica: t.Replica.Name(), Node: pl.Node, Message: fmt.Sprintf("%s of version %d scheduled on %s", t.Replica.Name(), rec.Version, pl.Why),
	})
	return true
}

// projectResources picks the project volumes and networks spec uses, so
// that the agent needs nothing else.
func projectResources(proj store.ProjectRecord, spec client.ServiceSpec) (map[string]client.VolumeSpec, map[string]client.NetworkSpec) {
	var vols map[string]client.VolumeSpec
	for _, m := range spec.Mounts {
		if m.Type != client.MountVolume || m.Source == "" {
			continue
		}
		v, ok := proj.Volumes[m.Source]
		if !ok {
			v = client.VolumeSpec{Name: m.Source}
		}
		if vols == nil {
			vols = map[string]client.VolumeSpec{}
		}
		vols[m.Source] = v
	}
	nets := map[string]client.NetworkSpec{}
	names := make([]string, 0, len(spec.Networks))
	for n := range spec.Networks {
		names = append(names, n)
	}
	if len(names) == 0 {
		names = []string{"default"}
	}
	for _, n := range names {
		v, ok := proj.Networks[n]
		if !ok {
			v = client.NetworkSpec{Name: n}
		}
		nets[n] = v
	}
	return vols, nets
}

// writes reports whether commit has anything to write.
func (p *pass) writes() bool { return p.statusSet || len(p.ops) > 0 }

// commit writes the pass in one transaction. The compares cover the
// service record and the status (whether written or not), so that a
// concurrent API write makes the pass start over on fresh state.
func (p *pass) commit(ctx context.Context) (int64, error) {
	k := p.v.key
	if p.statusSet {
		p.ops = append(p.ops, store.Put(store.SvcStatusKey(k.project, k.service), store.Encode(p.status)))
	}
	if len(p.ops) == 0 {
		return 0, nil
	}
	cmps := append([]store.Cmp{
		store.ModRevisionIs(store.ServiceKey(k.project, k.service), p.v.recRev),
		store.ModRevisionIs(store.SvcStatusKey(k.project, k.service), p.v.statusRev),
	}, p.cmps...)
	rev, err := p.r.c.st.Txn(ctx, cmps, p.ops...)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", k, err)
	}
	return rev, nil
}
