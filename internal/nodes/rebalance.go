package nodes

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/scheduler"
	"github.com/ruche-platform/ruche/internal/store"
)

// RebalanceTask is a task as rebalance sees it: its assignment and whether
// its replica is ready.
type RebalanceTask struct {
	Rec   store.TaskRecord
	Ready bool
}

// RebalanceOptions narrow a rebalance.
type RebalanceOptions struct {
	Project, Service string // empty: every project, every service
	// Force also moves replicas bound to their node by a named volume:
	// those of the service on down or drained nodes, and they count for
	// the spread rule like any other.
	Force bool
	// Busy are the services ("project/service") with a rollout in
	// progress: left alone, as are those with a replica still Moving.
	Busy map[string]bool
	Rand *rand.Rand // ties of the scheduler; nil: fixed seed
}

// PlanRebalance decides which running replicas `ruche rebalance` moves
// (see README.md, "Rebalance"). It is pure: the moves are marked on the
// tasks by the caller, and made by the controller. Each service is looked
// at on its own; for it, a replica on the node holding the most of its
// replicas is moved when the scheduler, asked for a node for it anywhere
// but there, picks a node t such that, with h its current node and c the
// service's replica counts, total the nodes' replica counts (all
// services):
//
//	c[t] <= c[h] - 2                          (the service spreads better), or
//	c[t] <= c[h] - 1 and total[t] <= total[h] - 2  (the nodes even out, the service no worse)
//
// Either way the move is never undone by the next rebalance: there is no
// flapping. Moves are simulated one after the other on one plan.
func PlanRebalance(nodes []client.Node, tasks []RebalanceTask, opts RebalanceOptions) []client.Move {
	status := map[string]client.Node{}
	for _, n := range nodes {
		status[n.ID] = n
	}
	usable := func(id string) bool {
		n, ok := status[id]
		return ok && n.Status == client.NodeReady && (n.Availability == "" || n.Availability == client.AvailabilityActive)
	}
	var snap scheduler.Snapshot
	snap.Nodes = nodes
	total := map[string]int{}
	type svc struct{ project, service string }
	bySvc := map[svc][]RebalanceTask{}
	moving := map[string]bool{} // services with a move in progress: left alone
	for _, t := range tasks {
		if t.Rec.Moving != "" && t.Rec.DesiredState == client.DesiredRunning {
			moving[t.Rec.Project+"/"+t.Rec.Service] = true
		}
	}
	for _, t := range tasks {
		r := t.Rec
		if r.DesiredState != client.DesiredRunning {
			continue
		}
		snap.Tasks = append(snap.Tasks, scheduler.TaskOf(r.Replica, r.Spec))
		total[r.Node]++
		if (opts.Project != "" && r.Project != opts.Project) || (opts.Service != "" && r.Service != opts.Service) {
			continue
		}
		if opts.Busy[r.Project+"/"+r.Service] || moving[r.Project+"/"+r.Service] {
			continue
		}
		bySvc[svc{r.Project, r.Service}] = append(bySvc[svc{r.Project, r.Service}], t)
	}
	var exclude string
	p := scheduler.NewPlanner(snap, scheduler.Options{Rand: opts.Rand, Sample: -1, Filters: []scheduler.Filter{
		func(n client.Node, req scheduler.Request) string {
			if n.ID == exclude {
				return "the replica moves off this node"
			}
			return ""
		},
	}})
	keys := make([]svc, 0, len(bySvc))
	for k := range bySvc {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].project != keys[j].project {
			return keys[i].project < keys[j].project
		}
		return keys[i].service < keys[j].service
	})
	var moves []client.Move
	move := func(t RebalanceTask, reason string) {
		r := t.Rec
		moves = append(moves, client.Move{Replica: r.ID, Name: r.Replica.Name(), Project: r.Project, Service: r.Service, From: r.Node, Reason: reason})
	}
	for _, k := range keys {
		ts := bySvc[k]
		sort.Slice(ts, func(i, j int) bool { return ts[i].Rec.Slot > ts[j].Rec.Slot })
		count := map[string]int{}
		var candidates []RebalanceTask
		for _, t := range ts {
			count[t.Rec.Node]++
			bound := volumeBound(t.Rec.Spec)
			switch {
			case bound && !opts.Force:
			case !usable(t.Rec.Node):
				if bound { // forced: a volume-bound replica stuck on a down or drained node
					move(t, fmt.Sprintf("forced: node %s is %s", t.Rec.Node, nodeState(status[t.Rec.Node])))
				}
			case t.Ready:
				candidates = append(candidates, t)
			}
		}
		for {
			// The replica on the node with the most of the service's
			// replicas (then the most replicas in all).
			sort.SliceStable(candidates, func(i, j int) bool {
				a, b := candidates[i].Rec.Node, candidates[j].Rec.Node
				if count[a] != count[b] {
					return count[a] > count[b]
				}
				return total[a] > total[b]
			})
			moved := false
			for i, t := range candidates {
				h := t.Rec.Node
				exclude = h
				pl, err := p.Place(scheduler.Request{Project: k.project, Service: k.service, Slot: t.Rec.Slot, Spec: t.Rec.Spec, Replaces: []string{t.Rec.ID}})
				exclude = ""
				if err != nil {
					continue
				}
				to := pl.Node
				var reason string
				switch {
				case count[to] <= count[h]-2:
					reason = fmt.Sprintf("%s runs %d replicas of %s/%s, %s %d", h, count[h], k.project, k.service, to, count[to])
				case count[to] <= count[h]-1 && total[to] <= total[h]-2:
					reason = fmt.Sprintf("%s runs %d replicas in all, %s %d", h, total[h], to, total[to])
				default:
					continue
				}
				move(t, reason)
				count[h]--
				count[to]++
				total[h]--
				total[to]++
				candidates = append(candidates[:i], candidates[i+1:]...)
				moved = true
				break
			}
			if !moved {
				break
			}
		}
	}
	return moves
}

func nodeState(n client.Node) string {
	if n.Status != client.NodeReady {
		if n.Status == "" {
			return "unknown"
		}
		return n.Status
	}
	return "drained"
}

// volumeBound reports whether spec mounts a named volume (which lives on
// the node where it was created).
func volumeBound(spec client.ServiceSpec) bool {
	for _, m := range spec.Mounts {
		if m.Type == client.MountVolume && m.Source != "" {
			return true
		}
	}
	return false
}
