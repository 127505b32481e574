package controller

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/scheduler"
	"github.com/ruche-platform/ruche/internal/store"
)

// slot is what one replica slot (1..Replicas) holds.
type slot struct {
	n    int
	cur  []*task // desired running, current spec
	old  []*task // desired running, an older spec
	down []*task // desired shutdown, container not gone yet
	// leaving are running tasks moved off their node (drain, rebalance)
	// whose successor is in cur or old: they are shut down once it is
	// ready (nodes.go).
	leaving []*task
	// placed: this pass already wrote a task for the slot (a replacement
	// of a dead node's replica, nodes.go), not in cur yet.
	placed bool
}

// empty: nothing runs or is wanted in the slot any more: it needs a task.
func (s *slot) empty() bool {
	return len(s.cur) == 0 && len(s.old) == 0 && !s.stopping() && !s.placed
}

// stopping: a task of the slot is still being shut down (or moved away).
func (s *slot) stopping() bool {
	if len(s.leaving) > 0 {
		return true
	}
	for _, t := range s.down {
		if !t.gone() {
			return true
		}
	}
	return false
}

// rollout is the state a pass works out for a service with a record.
type rollout struct {
	slots   []*slot
	surplus []*task // desired running outside 1..Replicas
	extra   []*task // desired shutdown outside 1..Replicas, not gone yet
	cfg     client.UpdateConfig
}

// converge drives a service with a record towards it.
func (p *pass) converge() {
	rec := p.v.rec
	ro := p.classify()
	p.begin(ro)
	if p.progressing() && p.checkFailures(ro) {
		return // rolled back: the next pass works from the new record
	}
	for _, t := range ro.surplus {
		p.shutdown(t, fmt.Sprintf("scaled down to %d", rec.Spec.Replicas))
	}
	p.evacuate(ro)
	p.replaceFailed(ro)
	if p.progressing() {
		p.progress(ro)
	}
	p.move(ro)
	p.noteStaying(ro)
	p.fill(ro)
	if p.progressing() {
		p.checkDone(ro)
	} else {
		p.checkRecovered(ro)
	}
	p.setMessage()
	p.observe(p.v.recRev)
}

// observe records that the status is about the service record at rev, so
// that a client that wrote the record at rev can trust Terminal().
func (p *pass) observe(rev int64) {
	if p.status.ObservedRevision != rev {
		p.status.ObservedRevision = rev
		p.statusSet = true
	}
}

// classify sorts the live tasks into slots.
func (p *pass) classify() *rollout {
	rec := p.v.rec
	ro := &rollout{slots: make([]*slot, max(rec.Spec.Replicas, 0)), cfg: p.config()}
	slots := make([]slot, len(ro.slots)) // one allocation for all
	for i := range ro.slots {
		slots[i].n = i + 1
		ro.slots[i] = &slots[i]
	}
	tmpl := template(rec.Spec)
	for _, t := range p.live {
		n := t.rec.Slot
		if n < 1 || n > len(ro.slots) {
			if t.running() {
				ro.surplus = append(ro.surplus, t)
			} else if !t.gone() {
				ro.extra = append(ro.extra, t)
			}
			continue
		}
		s := ro.slots[n-1]
		switch {
		case !t.running():
			s.down = append(s.down, t)
		case p.current(t, tmpl):
			s.cur = append(s.cur, t)
		default:
			s.old = append(s.old, t)
		}
	}
	// Highest slots first, so events read in scale-down order.
	sort.SliceStable(ro.surplus, func(i, j int) bool { return ro.surplus[i].rec.Slot > ro.surplus[j].rec.Slot })
	for _, s := range ro.slots {
		p.splitLeaving(s)
		p.dedupe(s)
	}
	return ro
}

// dedupe keeps one current task per slot (ready first, then of the current
// version, then the oldest) and shuts down the others. Duplicates only come
// from a lost race, but must not stay.
func (p *pass) dedupe(s *slot) {
	if len(s.cur) < 2 {
		return
	}
	v := p.v.rec.Version
	sort.SliceStable(s.cur, func(i, j int) bool {
		a, b := s.cur[i], s.cur[j]
		if a.ready() != b.ready() {
			return a.ready()
		}
		return a.rec.Version == v && b.rec.Version != v
	})
	for _, t := range s.cur[1:] {
		p.shutdown(t, "duplicate of "+s.cur[0].id())
	}
	s.cur = s.cur[:1]
}

// current reports whether t runs what the record asks for: the record's
// version with its template. A rollback also takes the replicas that still
// run the template it restores, whatever their version: they are not
// replaced for nothing. Outside rollbacks, the version decides, since a
// new version can keep the template (new content of a secret it uses).
func (p *pass) current(t *task, tmpl []byte) bool {
	if !bytes.Equal(t.tmpl, tmpl) {
		return false // also catches a task of an earlier life of the service
	}
	return t.rec.Version == p.v.rec.Version || (p.v.rec.Rollback && !t.terminal())
}

// template is the replica template of spec: everything but Replicas, as
// canonical JSON.
func template(spec client.ServiceSpec) []byte { return spec.Template() }

// config is the update config in force: the rollback config of the
// record's spec when the record is a rollback, with defaults.
func (p *pass) config() client.UpdateConfig {
	rec := p.v.rec
	cfg := rec.Spec.UpdateConfig
	if rec.Rollback {
		cfg = rec.Spec.RollbackConfig
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = 1
	}
	if cfg.Order == "" {
		cfg.Order = client.OrderStopFirst
	}
	if cfg.Monitor <= 0 {
		cfg.Monitor = client.Duration(5 * time.Second)
	}
	if cfg.FailureAction == "" {
		cfg.FailureAction = client.FailureRollback
	}
	return cfg
}

func (p *pass) progressing() bool {
	switch p.status.State {
	case client.UpdateDeploying, client.UpdateUpdating, client.UpdateScaling, client.UpdateRollingBack:
		return true
	}
	return false
}

// begin starts a new rollout when the record's version is not the one the
// status is about, and a scale when a converged service has work to do.
func (p *pass) begin(ro *rollout) {
	rec := p.v.rec
	st := p.v.status
	switch {
	case st == nil || st.Version != rec.Version:
		state := client.UpdateUpdating
		if rec.Previous == nil && !ro.anyOld() {
			state = client.UpdateDeploying
		}
		p.setStatus(client.UpdateStatus{State: state, Version: rec.Version, StartedAt: p.now})
		p.event("service", "update_started", nil, fmt.Sprintf("%s version %d, %d replicas", state, rec.Version, rec.Spec.Replicas))
	case (st.State == client.UpdateCompleted || st.State == client.UpdateRolledBack) && ro.needsWork():
		p.setStatus(client.UpdateStatus{State: client.UpdateScaling, Version: rec.Version, StartedAt: p.now})
		p.event("service", "scale_started", nil, fmt.Sprintf("scaling to %d replicas", rec.Spec.Replicas))
	}
}

func (ro *rollout) anyOld() bool {
	for _, s := range ro.slots {
		if len(s.old) > 0 {
			return true
		}
	}
	return len(ro.surplus) > 0
}

func (ro *rollout) needsWork() bool {
	for _, s := range ro.slots {
		if s.empty() || len(s.old) > 0 {
			return true
		}
	}
	return len(ro.surplus) > 0
}

func (p *pass) setStatus(st client.UpdateStatus) {
	p.status = st
	p.statusSet = true
}

// finish ends the rollout in a terminal state.
func (p *pass) finish(state, msg string) {
	p.status.State, p.status.Message, p.status.CompletedAt = state, msg, p.now
	p.statusSet = true
	result := state
	action := "update_" + state
	switch state {
	case client.UpdateRolledBack:
		action = "rolled_back"
	case client.UpdateCompleted:
		action = "update_completed"
	}
	p.results = append(p.results, result)
	p.event("service", action, nil, msg)
}

// setMessage shows why an in-progress rollout waits. A rolling_back
// status keeps the reason of the rollback, which its end repeats.
func (p *pass) setMessage() {
	if !p.progressing() || p.status.State == client.UpdateRollingBack {
		return
	}
	msg := p.note
	if msg == "" {
		switch {
		case p.status.State == client.UpdateScaling:
			msg = fmt.Sprintf("scaling to %d replicas", p.v.rec.Spec.Replicas)
		case p.v.rec.Rollback:
			msg = "rolling back to the previous spec (requested)"
		}
	}
	if msg != p.status.Message {
		p.status.Message = msg
		p.statusSet = true
	}
}

// checkFailures applies the failure action when too many replicas of the
// version being rolled out failed. It returns true when the pass must stop
// (the record was rolled back).
func (p *pass) checkFailures(ro *rollout) bool {
	rec := p.v.rec
	monitor := ro.cfg.Monitor.D()
	var failing []*task
	for _, s := range ro.slots {
		for _, t := range s.cur {
			if !t.failing() || !p.answersFor(t) {
				continue
			}
			if _, ok := t.settledAt(p.now, monitor); ok {
				continue // failed after its monitor window: not the rollout's failure
			}
			failing = append(failing, t)
		}
	}
	ratio := float64(len(failing)) / float64(max(len(ro.slots), 1))
	if len(failing) == 0 || ratio <= ro.cfg.MaxFailureRatio {
		return false
	}
	reason := fmt.Sprintf("replica %s of version %d %s", failing[0].name(), rec.Version, failing[0].failure())
	if len(failing) > 1 {
		reason += fmt.Sprintf(" (and %d more)", len(failing)-1)
	}
	action := ro.cfg.FailureAction
	switch {
	case action == client.FailureContinue:
		return false
	case p.status.State == client.UpdateScaling:
		p.finish(client.UpdateFailed, reason)
	case action == client.FailurePause:
		p.finish(client.UpdatePaused, reason+"; paused")
	case rec.Rollback:
		// A rollback that fails is not rolled back again.
		p.finish(client.UpdateFailed, "rollback failed: "+reason)
	case rec.Previous == nil:
		p.finish(client.UpdateFailed, reason+"; no previous version to roll back to")
	default:
		p.rollback(reason)
		return true
	}
	return false
}

// answersFor reports whether the rollout answers for t's failures: a
// replica of the version being rolled out, and during a scale one the
// scale added.
func (p *pass) answersFor(t *task) bool {
	if t.rec.Version != p.v.rec.Version {
		return false
	}
	return p.status.State != client.UpdateScaling || !t.rec.CreatedAt.Before(p.status.StartedAt)
}

// rollback puts the previous spec back as a new version, keeping the
// replica count: a failed template change does not undo a scale.
func (p *pass) rollback(reason string) {
	rec := *p.v.rec
	prev := *rec.Previous
	prev.Replicas = rec.Spec.Replicas
	failed := rec.Spec
	target := "the previous version"
	if rec.PreviousVersion > 0 {
		target = fmt.Sprintf("version %d", rec.PreviousVersion)
	}
	next := store.ServiceRecord{
		Spec: prev, Version: rec.Version + 1, Previous: &failed, PreviousVersion: rec.Version,
		Rollback: true, UpdatedAt: p.now,
	}
	p.ops = append(p.ops, store.Put(store.ServiceKey(p.v.key.project, p.v.key.service), store.Encode(next)))
	// ObservedRevision stays that of the failed record (this write's own
	// revision is not known before it is made); the next pass moves it on.
	p.setStatus(client.UpdateStatus{
		State: client.UpdateRollingBack, Version: next.Version, StartedAt: p.now,
		Message: reason + "; rolling back to " + target, ObservedRevision: p.v.recRev,
	})
	p.event("service", "rollback_started", nil, p.status.Message)
}

// progress moves the rolling update on: at most Parallelism slots in
// flight, each worker resting Delay after its slot settles.
func (p *pass) progress(ro *rollout) {
	rec := p.v.rec
	monitor, delay := ro.cfg.Monitor.D(), ro.cfg.Delay.D()
	inFlight := 0
	var pending []*slot
	for _, s := range ro.slots {
		switch {
		case len(s.cur) == 0 && len(s.old) > 0:
			pending = append(pending, s)
		case len(s.cur) == 0 || len(s.old) > 0 || s.stopping():
			inFlight++ // being replaced, or empty and about to be filled
		default:
			t := s.cur[0]
			if t.rec.Version != rec.Version {
				continue // already on the current spec: not part of this rollout
			}
			if t.failing() {
				// checkFailures let the rollout go on: given up on
				// (continue), tolerated (max_failure_ratio), or not the
				// rollout's (from before a scale). It holds no worker.
				continue
			}
			settled, ok := t.settledAt(p.now, monitor)
			if !ok {
				inFlight++
				if t.ready() {
					p.wakeAt(t.readySince.Add(monitor))
				}
				continue
			}
			if rested := settled.Add(delay); delay > 0 && p.now.Before(rested) {
				inFlight++
				p.wakeAt(rested)
			}
		}
	}
	// Replace broken replicas first: that costs no availability.
	sort.SliceStable(pending, func(i, j int) bool { return !anyReady(pending[i].old) && anyReady(pending[j].old) })
	free := ro.cfg.Parallelism - inFlight
	for _, s := range pending {
		if free <= 0 || p.full {
			break
		}
		if ro.cfg.Order == client.OrderStartFirst && p.create(s.n, false) {
			free--
			continue
		}
		// stop-first, or start-first with no node able to run both (a
		// host port, a full node): the old one must go first, but only
		// if the new one will have a node then.
		if !p.placeable(s) {
			continue
		}
		free--
		for _, t := range s.old {
			p.shutdown(t, fmt.Sprintf("update to version %d", rec.Version))
		}
	}
	// start-first: the old replica goes once the new one is ready.
	for _, s := range ro.slots {
		if len(s.cur) > 0 && len(s.old) > 0 && anyReady(s.cur) {
			for _, t := range s.old {
				p.shutdown(t, "replaced by "+s.cur[0].id())
			}
		}
	}
}

// placeable reports whether the new replica of slot s will find a node
// once its old tasks are gone, and books it in the round's plan. If not,
// the old replica keeps running and the status says why.
func (p *pass) placeable(s *slot) bool {
	ids := make([]string, len(s.old))
	for i, t := range s.old {
		ids[i] = t.id()
	}
	_, err := p.r.plan().Place(scheduler.Request{
		Project: p.v.key.project, Service: p.v.key.service, Slot: s.n, Spec: p.v.rec.Spec, Replaces: ids,
	})
	if err != nil {
		if p.note == "" {
			p.note = err.Error()
		}
		return false
	}
	return true
}

func anyReady(ts []*task) bool {
	for _, t := range ts {
		if t.ready() {
			return true
		}
	}
	return false
}

// fill creates the tasks of empty slots, once dependencies allow.
func (p *pass) fill(ro *rollout) {
	var empty []*slot
	for _, s := range ro.slots {
		if s.empty() {
			empty = append(empty, s)
		}
	}
	if len(empty) == 0 {
		return
	}
	if waits := p.waitingFor(); waits != "" {
		p.note = "waiting for " + waits
		return
	}
	for _, s := range empty {
		if !p.create(s.n, true) && p.full {
			return
		}
	}
}

// checkDone ends the rollout when every slot runs one settled task of the
// current spec and nothing else is left.
func (p *pass) checkDone(ro *rollout) {
	if len(ro.surplus) > 0 || len(ro.extra) > 0 || len(p.ops) > 0 {
		return // this pass changes things: not done yet
	}
	monitor := ro.cfg.Monitor.D()
	var failed []string
	done := true
	for _, s := range ro.slots {
		if len(s.cur) != 1 || len(s.old) > 0 || s.stopping() {
			done = false
			continue
		}
		t := s.cur[0]
		_, settled := t.settledAt(p.now, monitor)
		switch {
		case settled:
		case t.failing():
			// The rollout went on without it (see progress).
			if p.answersFor(t) {
				failed = append(failed, t.name()+" "+t.failure())
			}
		default:
			done = false
			if t.ready() {
				p.wakeAt(t.readySince.Add(monitor))
			}
		}
	}
	if !done {
		return
	}
	rec := p.v.rec
	switch {
	case len(failed) > 0 && ro.cfg.FailureAction == client.FailureContinue:
		p.finish(client.UpdateFailed, fmt.Sprintf("version %d rolled out with failed replicas: %s", rec.Version, strings.Join(failed, "; ")))
	case len(failed) > 0 && !rec.Rollback:
		p.finish(client.UpdateCompleted, fmt.Sprintf("%d of %d replicas of version %d ready; failed within max_failure_ratio %g: %s",
			len(ro.slots)-len(failed), len(ro.slots), rec.Version, ro.cfg.MaxFailureRatio, strings.Join(failed, "; ")))
	case p.status.State == client.UpdateRollingBack:
		p.finish(client.UpdateRolledBack, strings.Replace(p.status.Message, "; rolling back to ", "; rolled back to ", 1))
	case rec.Rollback:
		p.finish(client.UpdateCompleted, fmt.Sprintf("rolled back to the previous spec: %d replicas of version %d ready", len(ro.slots), rec.Version))
	default:
		p.finish(client.UpdateCompleted, fmt.Sprintf("%d replicas of version %d ready", len(ro.slots), rec.Version))
	}
}
