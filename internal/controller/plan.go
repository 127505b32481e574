package controller

import (
	"sort"

	"github.com/ruche-platform/ruche/internal/scheduler"
)

// plan returns the round's scheduler plan, built on first use: most rounds
// (a replica reported ready, a status written) place nothing, and building
// a plan reads every task of the cluster (O(tasks): ~50 ms at 100,000).
// The cache does not change during a round, so a plan built late in the
// round sees what one built at its start would have.
func (r *run) plan() *scheduler.Planner {
	if r.planner == nil {
		r.planner = scheduler.NewPlanner(r.snapshot(), scheduler.Options{Rand: r.c.rng, Filters: r.placementFilters()})
	}
	return r.planner
}

// changedFirst orders a round's services: those whose record the
// controller has not acted on yet (a deploy, a scale: no status, or a
// status that observed an older revision) first, the rest (replicas
// reporting, timers) after, each group by name. A new deploy then waits
// for no status bookkeeping of other services: its placement latency is
// one pass, not a round.
func (r *run) changedFirst(keys []svcKey) {
	changed := func(k svcKey) bool {
		rec, ok := r.cache.services[k]
		if !ok {
			return false
		}
		st, ok := r.cache.svcStatus[k]
		return !ok || st.v.ObservedRevision < rec.rev
	}
	sort.SliceStable(keys, func(i, j int) bool { return changed(keys[i]) && !changed(keys[j]) })
}
