package controller

import (
	"fmt"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// Replacement of failed replicas, following the service's restart_policy
// (see README.md, "Failed replicas"). The agent restarts a container in
// place; once it gives up (max_attempts, a prepare or create error), the
// task is terminal and only a new task can bring the slot back.

// Replacement backoff defaults (see client.RestartPolicy).
const (
	defaultReplaceDelay  = time.Second
	defaultReplaceWindow = 10 * time.Second
	maxReplaceDelay      = time.Minute
)

// slotBackoff is the replacement bookkeeping of one slot.
type slotBackoff struct {
	version  int64 // the record version it counts for: a new version starts afresh
	attempts int   // consecutive replacements of the slot
	gaveUp   bool  // max_attempts reached and said so
}

// replaceable reports whether a terminal replica in state is replaced
// under restart condition cond: any (the default) replaces failed and
// complete replicas, on-failure failed ones (a non-zero exit, or a
// replica that could not be prepared or created), none nothing.
func replaceable(cond, state string) bool {
	switch cond {
	case client.RestartNone:
		return false
	case client.RestartOnFailure:
		return state == client.StateFailed
	}
	return state == client.StateFailed || state == client.StateComplete
}

// replaceDelay is the wait before replacement number attempts+1 of a
// slot: base doubled for each replacement before it, capped at a minute
// (or at base if longer), like the agent's restart delay.
func replaceDelay(base time.Duration, attempts int) time.Duration {
	if base <= 0 {
		base = defaultReplaceDelay
	}
	limit := max(maxReplaceDelay, base)
	d := base
	for i := 0; i < attempts && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func replaceWindow(p client.RestartPolicy) time.Duration {
	if w := p.Window.D(); w > 0 {
		return w
	}
	return defaultReplaceWindow
}

// replaceFailed replaces the terminal replicas the rollout logic does not
// answer for: all of them outside a rollout, during a scale those that
// were there before it. During an update or a rollback, a failed replica
// of the version being rolled out is the rollout's failure (failure
// action), and an old one is replaced by the rollout itself.
func (p *pass) replaceFailed(ro *rollout) {
	rec := p.v.rec
	for n, b := range p.backoff {
		if n > len(ro.slots) || b.version != rec.Version {
			delete(p.backoff, n) // scaled away, or a new version: start afresh
			p.backoffSet = true
		}
	}
	scaling := p.status.State == client.UpdateScaling
	if p.progressing() && !scaling {
		return
	}
	for _, s := range ro.slots {
		p.resetIfSteady(s)
		var dead []*task
		live := false
		for _, t := range append(append([]*task(nil), s.cur...), s.old...) {
			switch {
			case !t.terminal():
				live = true
			case !scaling:
				dead = append(dead, t)
			case contains(s.cur, t) && t.rec.CreatedAt.Before(p.status.StartedAt):
				dead = append(dead, t) // the scale answers for the replicas it adds only
			}
		}
		// A slot that still has a live replica (an old one kept by a
		// paused start-first update) is not given another.
		if !live && len(dead) > 0 {
			p.replace(s, dead)
		}
	}
}

// resetIfSteady forgets the backoff of slot s once one of its replicas has
// been Ready for the restart policy's window, and otherwise asks for a
// pass when that will be the case.
func (p *pass) resetIfSteady(s *slot) {
	if _, ok := p.backoff[s.n]; !ok {
		return
	}
	for _, t := range append(append([]*task(nil), s.cur...), s.old...) {
		if !t.ready() {
			continue
		}
		at := t.readySince.Add(replaceWindow(t.rec.Spec.RestartPolicy))
		if p.now.Before(at) {
			p.wakeAt(at)
			continue
		}
		delete(p.backoff, s.n)
		p.backoffSet = true
		return
	}
}

// replace shuts the terminal tasks of slot s down and creates their
// successor in the same transaction, once the restart policy allows and
// its delay has passed. One transaction, so that the slot is never seen
// empty: a replacement is not a scale, and a controller restarted in
// between finds either the failed task or its successor.
func (p *pass) replace(s *slot, dead []*task) {
	t := dead[0] // the policy and the delay go by the first to have given up
	for _, d := range dead[1:] {
		if d.terminalSince.Before(t.terminalSince) {
			t = d
		}
	}
	pol := t.rec.Spec.RestartPolicy
	if !replaceable(pol.Condition, t.state()) {
		return
	}
	b := p.backoff[s.n]
	b.version = p.v.rec.Version
	if pol.MaxAttempts > 0 && b.attempts >= pol.MaxAttempts {
		if !b.gaveUp {
			b.gaveUp = true
			p.setBackoff(s.n, b)
			p.event("replica", "gave_up", t, fmt.Sprintf("%s %s; not replaced: restart_policy max_attempts %d reached", t.name(), outcome(t), pol.MaxAttempts))
		}
		return
	}
	due := t.terminalSince.Add(replaceDelay(pol.Delay.D(), b.attempts))
	if p.now.Before(due) {
		p.wakeAt(due)
		return
	}
	if !p.room(1+len(dead), 1+len(dead)) {
		return // another pass follows
	}
	evs := len(p.events)
	if !p.create(s.n, true) {
		// No node can run it: the service's note says why while a
		// rollout shows it; the event says it at any time.
		p.waiting(t, fmt.Sprintf("%s cannot be replaced (%s): %s", t.name(), outcome(t), p.placeError(s.n)))
		return
	}
	b.attempts++
	b.gaveUp = false
	p.setBackoff(s.n, b)
	p.replaced++
	for _, d := range dead {
		p.shutdown(d, fmt.Sprintf("%s; replaced (attempt %d)", outcome(d), b.attempts))
		s.cur, s.old = without(s.cur, d), without(s.old, d)
		s.down = append(s.down, d)
	}
	// Events read in order: the failed replica shut down, then its
	// successor scheduled.
	scheduled := p.events[evs]
	copy(p.events[evs:], p.events[evs+1:])
	p.events[len(p.events)-1] = scheduled
}

func (p *pass) setBackoff(n int, b slotBackoff) {
	if p.backoff == nil {
		p.backoff = map[int]slotBackoff{}
	}
	p.backoff[n] = b
	p.backoffSet = true
}

// forgetBackoff drops the bookkeeping of a removed service.
func (p *pass) forgetBackoff() {
	if len(p.backoff) > 0 {
		p.backoff = nil
		p.backoffSet = true
	}
}

// outcome says how a terminal replica ended: "failed: exit code 1",
// "completed".
func outcome(t *task) string {
	if f := t.failure(); f != "" {
		return f
	}
	return "completed"
}

func contains(ts []*task, t *task) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func without(ts []*task, t *task) []*task {
	out := ts[:0:0]
	for _, x := range ts {
		if x != t {
			out = append(out, x)
		}
	}
	return out
}

// checkRecovered moves a failed status on to completed once every slot
// runs one steady replica of the record's spec: replacements, or restarts
// in place, brought the service back. The deploy that failed was told
// when it did (failed is terminal); the status now says how the service
// is.
func (p *pass) checkRecovered(ro *rollout) {
	if st := p.v.status; st == nil || st.State != client.UpdateFailed || p.status.State != client.UpdateFailed {
		return
	}
	if len(ro.surplus) > 0 || len(ro.extra) > 0 || len(p.ops) > 0 {
		return
	}
	monitor := ro.cfg.Monitor.D()
	for _, s := range ro.slots {
		if len(s.cur) != 1 || len(s.old) > 0 || s.stopping() {
			return
		}
		if t := s.cur[0]; !t.steady(p.now, monitor) {
			if t.ready() {
				p.wakeAt(t.readySince.Add(monitor))
			}
			return
		}
	}
	msg := fmt.Sprintf("recovered: %d replicas of version %d ready", len(ro.slots), p.v.rec.Version)
	p.status.State, p.status.Message, p.status.CompletedAt = client.UpdateCompleted, msg, p.now
	p.statusSet = true
	p.event("service", "recovered", nil, msg)
}
