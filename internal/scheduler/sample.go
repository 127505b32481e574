package scheduler

import (
	"fmt"
	"strings"

	"github.com/ruche-platform/ruche/client"
)

// candidatesFor returns the nodes that are ready, active and match cons,
// sorted by ID. Node records do not change during a plan, so the answer is
// computed once per constraint set: an index of feasible nodes by
// constraint, as far as the node record alone decides.
func (p *Planner) candidatesFor(raw []string, cons []Constraint) []*nodeState {
	key := strings.Join(raw, "\x00")
	if c, ok := p.candidates[key]; ok {
		return c
	}
	c := make([]*nodeState, 0, len(p.nodes))
	for _, n := range p.nodes {
		if staticCheck(n, cons, false) == "" {
			c = append(c, n)
		}
	}
	p.candidates[key] = c
	return c
}

// placeSampled places req on the best of p.sample feasible nodes: it walks
// cand (the nodes the static filters accept) from a random point, keeps the
// first p.sample that pass the dynamic filters (host ports, reservations,
// extra filters, hard spread) and scores only those. Every node it keeps
// passed every filter, so the placement is as correct as an exhaustive
// one; only the ranking is approximate. A walk that reaches its start
// again has seen every node and is exact, including the choice between
// hard and soft spread.
func (p *Planner) placeSampled(req Request, d demand, cons []Constraint, cand []*nodeState) (Placement, error) {
	spread := req.Spec.Ruche.Spread == client.SpreadMaxAvailability
	pool := p.pool[:0]
	var crowded []*nodeState // feasible, but running another replica (spread)
	feasible, visited := 0, 0
	start := p.rng.IntN(len(cand))
	for i := 0; i < len(cand) && len(pool) < p.sample; i++ {
		n := cand[(start+i)%len(cand)]
		visited++
		if p.dynamicCheck(n, req, d, false) != "" {
			continue
		}
		feasible++
		if spread && n.others(d.service, d.slot) > 0 {
			crowded = append(crowded, n)
			continue
		}
		pool = append(pool, n)
	}
	p.pool = pool
	softSpread := false
	if len(pool) == 0 && spread && feasible > 0 && feasible < max(req.Spec.Replicas, 1) {
		// The walk saw every node: fewer feasible nodes than replicas,
		// so spread is soft (README.md, Feasibility 6).
		pool, softSpread = crowded, true
	}
	if len(pool) == 0 {
		return Placement{}, p.explain(req, d, cons, crowded)
	}
	best, sc, ties := p.pick(pool, d, softSpread)
	of := fmt.Sprintf("%d feasible nodes sampled from %d ready nodes matching its constraints", len(pool), len(cand))
	if visited == len(cand) {
		of = fmt.Sprintf("%d eligible nodes", len(pool))
	}
	best.add(d.task(req, best.node.ID), true)
	return Placement{
		Project: req.Project, Service: req.Service, Slot: req.Slot, Node: best.node.ID,
		Why: why(best, sc, of, len(p.nodes)-len(cand)+visited-len(pool), ties, d),
	}, nil
}
