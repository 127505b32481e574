package controller

import (
	"fmt"
	"strconv"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/scheduler"
)

// Node health and moves (see README.md, "Nodes"): replicas of a node that
// is down are replaced elsewhere, except those bound to it by a named
// volume; replicas of a drained node, and those `ruche rebalance` marks,
// are moved start-first.

// volumeBound reports whether spec mounts a named volume: a local volume
// lives on the node where it was created, so its replicas stay there.
func volumeBound(spec client.ServiceSpec) bool {
	for _, m := range spec.Mounts {
		if m.Type == client.MountVolume && m.Source != "" {
			return true
		}
	}
	return false
}

// leaves reports whether running task t is to move off its node: its node
// is drained (unless a volume binds it there), or it is marked Moving.
func leaves(t *task) bool {
	if t.nodeGone || !t.running() {
		return false
	}
	return t.rec.Moving != "" || (t.nodeDrain && !volumeBound(t.rec.Spec))
}

// whyLeaves says why t moves, for its shutdown event.
func whyLeaves(t *task) string {
	if t.rec.Moving != "" {
		return "moved off " + t.rec.Node + ": " + t.rec.Moving
	}
	return "moved off " + t.rec.Node + ": node drained"
}

// splitLeaving takes the leaving tasks of slot s out of cur and old once
// the slot has another running task (their successor): the slot then
// looks like any slot with one replica, and the leaving ones wait in
// s.leaving until it is ready. A slot whose only tasks are leaving keeps
// them in cur/old: move gives it a successor.
func (p *pass) splitLeaving(s *slot) {
	staying := 0
	for _, t := range append(append([]*task(nil), s.cur...), s.old...) {
		if !leaves(t) {
			staying++
		}
	}
	if staying == 0 {
		return
	}
	keep := func(ts []*task) []*task {
		out := ts[:0:0]
		for _, t := range ts {
			if leaves(t) {
				s.leaving = append(s.leaving, t)
			} else {
				out = append(out, t)
			}
		}
		return out
	}
	s.cur, s.old = keep(s.cur), keep(s.old)
}

// evacuate replaces the running tasks of nodes that are down or gone. A
// slot that still has a live task only loses the dead ones. A replica
// bound to a down node by a named volume waits for its node (unless it is
// marked Moving: `ruche rebalance --force`). Like a failed replica's
// replacement, the successor is written in the same transaction as the
// shutdown, and does not wait for depends_on.
func (p *pass) evacuate(ro *rollout) {
	for _, s := range ro.slots {
		var dead []*task
		live := false
		for _, t := range append(append([]*task(nil), s.cur...), s.old...) {
			if t.nodeGone {
				dead = append(dead, t)
			} else {
				live = true
			}
		}
		if len(dead) == 0 {
			continue
		}
		if !live {
			t := dead[0]
			if t.nodeDown && volumeBound(t.rec.Spec) && t.rec.Moving == "" {
				p.waiting(t, fmt.Sprintf("%s waits for node %s (down): its volume data lives there (ruche rebalance %s --force moves it)",
					t.name(), t.rec.Node, p.v.key))
				continue
			}
			if !p.room(1+len(dead), 1+len(dead)) {
				continue // another pass follows
			}
			if !p.create(s.n, true) {
				p.waiting(t, fmt.Sprintf("%s cannot be replaced (%s): %s", t.name(), nodeGoneWhy(t), p.placeError(s.n)))
				continue
			}
			s.placed = true
		}
		for _, t := range dead {
			p.shutdown(t, nodeGoneWhy(t)+"; replaced elsewhere")
			s.cur, s.old = without(s.cur, t), without(s.old, t)
			s.down = append(s.down, t)
		}
	}
}

// nodeGoneWhy says what happened to the node of t, a task of a down or
// removed node: "node n2 is down".
func nodeGoneWhy(t *task) string {
	if t.nodeDown {
		return "node " + t.rec.Node + " is down"
	}
	return "node " + t.rec.Node + " was removed"
}

// move gives a successor to the slots whose only replicas leave their
// node, at most update_config.parallelism slots of the service at a time,
// and shuts a leaving task down once its successor is ready (start-first:
// the service never has fewer ready replicas than before the move).
func (p *pass) move(ro *rollout) {
	inFlight := 0
	for _, s := range ro.slots {
		if len(s.leaving) == 0 {
			continue
		}
		inFlight++
		if anyReady(s.cur) || anyReady(s.old) || !anyReady(s.leaving) {
			for _, t := range s.leaving {
				p.shutdown(t, whyLeaves(t))
				s.down = append(s.down, t)
			}
			s.leaving = nil
		}
	}
	for _, s := range ro.slots {
		if inFlight >= ro.cfg.Parallelism || p.full {
			return
		}
		var leaving *task
		others := false
		for _, t := range append(append([]*task(nil), s.cur...), s.old...) {
			if leaves(t) {
				leaving = t
			} else {
				others = true
			}
		}
		if leaving == nil || others || len(s.leaving) > 0 || s.downStopping() {
			continue
		}
		if p.create(s.n, true) {
			inFlight++
		} else if !p.full {
			p.waiting(leaving, "cannot move "+leaving.name()+" off "+leaving.rec.Node+": "+p.placeError(s.n))
		}
	}
}

// noteStaying says why running tasks of drained nodes that a named volume
// binds there stay.
func (p *pass) noteStaying(ro *rollout) {
	for _, s := range ro.slots {
		for _, t := range append(append([]*task(nil), s.cur...), s.old...) {
			if t.nodeDrain && t.running() && t.rec.Moving == "" && volumeBound(t.rec.Spec) {
				p.waiting(t, fmt.Sprintf("%s stays on drained node %s: its volume data lives there (ruche rebalance %s --force moves it)",
					t.name(), t.rec.Node, p.v.key))
			}
		}
	}
}

// waiting says why task t waits: in the status message while a rollout
// is in progress, and in a `replica waiting` event once per reason.
func (p *pass) waiting(t *task, why string) {
	if p.note == "" {
		p.note = why
	}
	p.waits[t.id()] = why
}

// settleWaits adds the waiting events of the pass (a reason new for its
// task) and notes which reasons to forget; the controller keeps them only
// if the pass commits (keepWaits).
func (p *pass) settleWaits() {
	for _, t := range p.v.tasks {
		why, waits := p.waits[t.id()]
		old, had := p.r.c.waits[t.id()]
		switch {
		case waits && why != old:
			p.waitsSet[t.id()] = why
			p.event("replica", "waiting", t, why)
		case !waits && had:
			p.waitsSet[t.id()] = ""
		}
	}
}

// keepWaits applies what settleWaits decided, once the pass committed.
func (c *Controller) keepWaits(set map[string]string) {
	for id, why := range set {
		if why == "" {
			delete(c.waits, id)
		} else {
			c.waits[id] = why
		}
	}
}

// downStopping: a task of the slot set to shut down has not stopped yet.
func (s *slot) downStopping() bool {
	for _, t := range s.down {
		if !t.gone() {
			return true
		}
	}
	return false
}

// placeError is why slot n of the service has no node now.
func (p *pass) placeError(n int) string {
	_, err := p.r.plan().Place(scheduler.Request{Project: p.v.key.project, Service: p.v.key.service, Slot: n, Spec: p.v.rec.Spec})
	if err == nil {
		return "no room in this pass"
	}
	return err.Error()
}

// slotRef names one slot of one service.
type slotRef struct {
	svc  svcKey
	slot int
}

func (s slotRef) String() string { return s.svc.String() + "." + strconv.Itoa(s.slot) }

// placementFilters are the controller's scheduler filters for one round,
// from the cache:
//   - a slot whose replica mounts a named volume is pinned to the node of
//     its latest task (the volume's data lives there), unless a task of the
//     slot is being moved on purpose (Moving);
//   - a slot with a task marked Moving avoids that task's node.
func (r *run) placementFilters() []scheduler.Filter {
	type pin struct {
		node string
		t    *taskEntry
	}
	pins := map[slotRef]pin{}
	avoid := map[slotRef]map[string]bool{}
	for _, te := range r.cache.tasks {
		k := slotRef{svcKey{te.rec.Project, te.rec.Service}, te.rec.Slot}
		if te.rec.Moving != "" {
			if avoid[k] == nil {
				avoid[k] = map[string]bool{}
			}
			avoid[k][te.rec.Node] = true
			continue
		}
		if !volumeBound(te.rec.Spec) {
			continue
		}
		if _, known := r.cache.nodes[te.rec.Node]; !known {
			continue // a removed node: its volume is gone with it
		}
		if cur, ok := pins[k]; !ok || newer(te, cur.t) {
			pins[k] = pin{node: te.rec.Node, t: te}
		}
	}
	if len(pins) == 0 && len(avoid) == 0 {
		return nil
	}
	return []scheduler.Filter{func(n client.Node, req scheduler.Request) string {
		k := slotRef{svcKey{req.Project, req.Service}, req.Slot}
		if avoid[k][n.ID] {
			return k.String() + " moves off this node"
		}
		if pn, ok := pins[k]; ok && avoid[k] == nil && pn.node != n.ID && volumeBound(req.Spec) {
			return "volume data of " + k.String() + " lives on node " + pn.node
		}
		return ""
	}}
}

// newer: a running task pins before a stopped one, then the latest.
func newer(a, b *taskEntry) bool {
	ar, br := a.rec.DesiredState == client.DesiredRunning, b.rec.DesiredState == client.DesiredRunning
	if ar != br {
		return ar
	}
	return a.rec.CreatedAt.After(b.rec.CreatedAt)
}
