// Package scheduler decides which node runs a replica. It is pure: a
// snapshot of nodes and of the replicas already on them goes in, placements
// with a reason (or an error naming each node's reason) come out. No I/O, no
// goroutines, no clock; randomness (ties) comes from the caller. See
// README.md for the design.
package scheduler

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"

	"github.com/ruche-platform/ruche/client"
)

// Task is a replica that holds a node's resources: assigned, starting,
// running or still stopping. The caller leaves out replicas whose container
// is gone (shut down, failed, complete).
type Task struct {
	ID       string
	Node     string
	Project  string
	Service  string
	Slot     int
	Reserved client.ResourceAmounts
	Ports    []Port
}

// Port is a published host port: a port and protocol can be bound once per
// node, whatever the host IP (a conservative reading, see README.md).
type Port struct {
	Number   uint16
	Protocol string // "tcp" or "udp"
}

func (p Port) String() string { return strconv.Itoa(int(p.Number)) + "/" + p.Protocol }

// HostPorts returns the fixed host ports spec publishes; ephemeral ports
// (Published 0) never conflict and are left out.
func HostPorts(spec client.ServiceSpec) []Port {
	var out []Port
	seen := map[Port]bool{}
	for _, p := range spec.Ports {
		if p.Published == 0 {
			continue
		}
		port := Port{Number: p.Published, Protocol: p.Protocol}
		if port.Protocol == "" {
			port.Protocol = "tcp"
		}
		if !seen[port] {
			seen[port] = true
			out = append(out, port)
		}
	}
	return out
}

// TaskOf returns the Task that replica r of spec holds on r.Node.
func TaskOf(r client.Replica, spec client.ServiceSpec) Task {
	return Task{
		ID: r.ID, Node: r.Node, Project: r.Project, Service: r.Service, Slot: r.Slot,
		Reserved: spec.Resources.Reservations, Ports: HostPorts(spec),
	}
}

// Snapshot is the cluster as the scheduler sees it.
type Snapshot struct {
	Nodes []client.Node
	Tasks []Task // tasks whose Node is not in Nodes are ignored
}

// Request asks for a node for one replica: slot Slot of Project/Service,
// running Spec.
type Request struct {
	Project string
	Service string
	Slot    int
	Spec    client.ServiceSpec
	// Replaces are the IDs of tasks this replica replaces and that stop
	// before it starts (a stop-first update): their host ports and
	// reservations count as free for it.
	Replaces []string
}

func (r Request) replica() string { return r.Project + "/" + r.Service + "." + strconv.Itoa(r.Slot) }

// Placement is where a replica goes, and why (for `ruche deploy --dry-run`
// and events).
type Placement struct {
	Project string
	Service string
	Slot    int
	Node    string // node ID
	Why     string
}

// Filter is an extra feasibility check: it returns why node cannot take
// req, or "" if it can. It is the hook for checks that need data the
// snapshot does not carry, such as volumes pinned to a node.
type Filter func(node client.Node, req Request) (reason string)

// Options tune a Planner.
type Options struct {
	// Rand breaks ties between equally good nodes. Nil means a fixed seed,
	// which is fine for tests and dry runs but herds in production.
	Rand *rand.Rand
	// Filters run after the built-in ones.
	Filters []Filter
	// Sample bounds how many feasible nodes a placement scores: when more
	// nodes than that pass the node-state and constraint filters, Place
	// walks them from a random point and scores the first Sample that
	// pass every filter (README.md, Cost). 0 means DefaultSample; a
	// negative value scores every feasible node.
	Sample int
}

// DefaultSample is Options.Sample's default: the best of 64 feasible
// nodes is within a few percent of the best of all (README.md, Cost).
const DefaultSample = 64

// Planner places replicas one by one on a snapshot. Each placement is
// booked on its node, so later placements of the same plan see it (in
// flight). A Planner is not safe for concurrent use.
type Planner struct {
	nodes       []*nodeState
	rng         *rand.Rand
	filters     []Filter
	sample      int                     // 0: never sample
	constraints map[string]Constraint   // parse cache
	candidates  map[string][]*nodeState // ready, active nodes matching a constraint set, by set
	pool        []*nodeState            // scratch for sampled placements
}

// NewPlanner returns a Planner over snap.
func NewPlanner(snap Snapshot, opts Options) *Planner {
	p := &Planner{rng: opts.Rand, filters: opts.Filters, sample: opts.Sample,
		constraints: map[string]Constraint{}, candidates: map[string][]*nodeState{}}
	switch {
	case p.sample == 0:
		p.sample = DefaultSample
	case p.sample < 0:
		p.sample = 0
	}
	if p.rng == nil {
		p.rng = rand.New(rand.NewPCG(1, 2))
	}
	byID := make(map[string]*nodeState, len(snap.Nodes))
	for _, n := range snap.Nodes {
		ns := newNodeState(n)
		p.nodes = append(p.nodes, ns)
		byID[n.ID] = ns
	}
	sort.Slice(p.nodes, func(i, j int) bool { return p.nodes[i].node.ID < p.nodes[j].node.ID })
	for i := range snap.Tasks {
		if ns := byID[snap.Tasks[i].Node]; ns != nil {
			ns.pending = append(ns.pending, &snap.Tasks[i])
		}
	}
	return p
}

// Place picks a node for req and books the replica there. The error is
// a NoNodeError (wrapping ErrNoNode) naming each node's reason, or wraps
// ErrInvalidConstraint.
func (p *Planner) Place(req Request) (Placement, error) {
	cons, err := p.parse(req.Spec.Placement.Constraints)
	if err != nil {
		return Placement{}, fmt.Errorf("place %s: %w", req.replica(), err)
	}
	d := newDemand(req)
	if p.sample > 0 {
		if cand := p.candidatesFor(req.Spec.Placement.Constraints, cons); len(cand) > p.sample {
			return p.placeSampled(req, d, cons, cand)
		}
	}
	var eligible []*nodeState
	for _, n := range p.nodes {
		if p.check(n, req, d, cons, false) == "" {
			eligible = append(eligible, n)
		}
	}
	softSpread := false
	var spreadOut []*nodeState
	if req.Spec.Ruche.Spread == client.SpreadMaxAvailability {
		if len(eligible) >= max(req.Spec.Replicas, 1) {
			eligible, spreadOut = spreadHard(eligible, d)
		} else {
			softSpread = true
		}
	}
	if len(eligible) == 0 {
		return Placement{}, p.explain(req, d, cons, spreadOut)
	}
	best, sc, ties := p.pick(eligible, d, softSpread)
	best.add(d.task(req, best.node.ID), true)
	return Placement{
		Project: req.Project, Service: req.Service, Slot: req.Slot, Node: best.node.ID,
		Why: why(best, sc, fmt.Sprintf("%d eligible nodes", len(eligible)), len(p.nodes)-len(eligible), ties, d),
	}, nil
}

// explain builds the NoNodeError of a replica no node can take.
func (p *Planner) explain(req Request, d demand, cons []Constraint, spreadOut []*nodeState) error {
	var reasons []NodeReason
	for _, n := range p.nodes {
		if r := p.check(n, req, d, cons, true); r != "" {
			reasons = append(reasons, NodeReason{Node: n.name(), Reason: r})
		}
	}
	for _, n := range spreadOut {
		reasons = append(reasons, NodeReason{Node: n.name(), Reason: spreadReason(n, d)})
	}
	sort.SliceStable(reasons, func(i, j int) bool { return reasons[i].Node < reasons[j].Node })
	return &NoNodeError{Replica: req.replica(), Reasons: reasons}
}

func (p *Planner) parse(cs []string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(cs))
	for _, s := range cs {
		c, ok := p.constraints[s]
		if !ok {
			var err error
			if c, err = ParseConstraint(s); err != nil {
				return nil, err
			}
			p.constraints[s] = c
		}
		out = append(out, c)
	}
	return out, nil
}

// pick returns the eligible node with the lowest score, a random one of
// those tied, and how many tied.
func (p *Planner) pick(eligible []*nodeState, d demand, softSpread bool) (*nodeState, score, int) {
	var best *nodeState
	var bestScore score
	ties := 0
	for _, n := range eligible {
		sc := scoreNode(n, d, softSpread)
		switch {
		case best == nil || sc.total < bestScore.total-epsilon:
			best, bestScore, ties = n, sc, 1
		case sc.total <= bestScore.total+epsilon:
			ties++
			if p.rng.IntN(ties) == 0 { // reservoir sampling: each tie equally likely
				best, bestScore = n, sc
			}
		}
	}
	return best, bestScore, ties
}

func why(n *nodeState, sc score, of string, rejected, ties int, d demand) string {
	s := fmt.Sprintf("node %s: lowest score of %s (%.2f: reserved %.0f%%, load %.0f%%, %d other replicas of %s)",
		n.name(), of, sc.total, sc.fill*100, sc.load*100, sc.others, d.service)
	if n.inFlight > 1 {
		s += fmt.Sprintf(", %d placed there by this plan", n.inFlight-1)
	}
	if ties > 1 {
		s += fmt.Sprintf(", tie of %d broken at random", ties)
	}
	if rejected > 0 {
		s += fmt.Sprintf("; %d nodes filtered out", rejected)
	}
	return s
}
