package controller

import "github.com/ruche-platform/ruche/internal/scheduler"

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
