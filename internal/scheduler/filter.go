package scheduler

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/ruche-platform/ruche/client"
)

// rejected is what check returns when it is not asked to explain: the
// words of a reason cost more than the check itself on large clusters, and
// are only needed when no node is left.
const rejected = "rejected"

// check runs the built-in filters, then the extra ones, and returns the
// first reason n cannot take the replica (or just "rejected" unless
// explain), or "" if it can.
func (p *Planner) check(n *nodeState, req Request, d demand, cons []Constraint, explain bool) string {
	if r := staticCheck(n, cons, explain); r != "" {
		return r
	}
	return p.dynamicCheck(n, req, d, explain)
}

// staticCheck runs the filters that depend on the node record alone (its
// state and the constraints): their answer does not change during a plan.
func staticCheck(n *nodeState, cons []Constraint, explain bool) string {
	if n.node.Status != "ready" {
		return pick(explain, func() string { return "node is " + orUnknown(n.node.Status) })
	}
	if a := n.node.Availability; a != "" && a != "active" {
		return pick(explain, func() string { return "node availability is " + a })
	}
	for _, c := range cons {
		if !c.Match(n.node) {
			return pick(explain, func() string { return "constraint " + c.String() })
		}
	}
	return ""
}

// dynamicCheck runs the filters whose answer changes as the plan books
// placements (host ports, reservations) and the extra filters.
func (p *Planner) dynamicCheck(n *nodeState, req Request, d demand, explain bool) string {
	n.fold()
	for _, port := range d.ports {
		if use, used := n.ports[port]; used && !d.replacing(use.task) {
			return pick(explain, func() string { return "host port " + port.String() + " in use by " + use.service })
		}
	}
	if !fits(n, d) {
		return pick(explain, func() string { return resources(n, d) })
	}
	for _, f := range p.filters {
		if r := f(n.node, req); r != "" {
			return r
		}
	}
	return ""
}

// booked is what n has reserved, less what the tasks d replaces free.
func booked(n *nodeState, d demand) client.ResourceAmounts {
	used := n.reserved
	if len(d.replaces) > 0 {
		f := n.freed(d)
		used.CPUs -= f.CPUs
		used.Memory -= f.Memory
	}
	return used
}

func pick(explain bool, reason func() string) string {
	if explain {
		return reason()
	}
	return rejected
}

// fits checks reservations against capacity. A capacity of 0 means the node
// did not report it: no limit.
func fits(n *nodeState, d demand) bool {
	capa, used := n.node.Capacity, booked(n, d)
	if want := d.reserved.CPUs; want > 0 && capa.CPUs > 0 && used.CPUs+want > capa.CPUs+1e-9 {
		return false
	}
	if want := d.reserved.Memory; want > 0 && capa.Memory > 0 && used.Memory+want > capa.Memory {
		return false
	}
	return true
}

// resources says why d does not fit on n.
func resources(n *nodeState, d demand) string {
	capa, used := n.node.Capacity, booked(n, d)
	if want := d.reserved.CPUs; want > 0 && capa.CPUs > 0 && used.CPUs+want > capa.CPUs+1e-9 {
		return fmt.Sprintf("not enough cpu: %s reserved, %s of %s free",
			cpus(want), cpus(max(capa.CPUs-used.CPUs, 0)), cpus(capa.CPUs))
	}
	if want := d.reserved.Memory; want > 0 && capa.Memory > 0 && used.Memory+want > capa.Memory {
		return fmt.Sprintf("not enough memory: %s reserved, %s of %s free",
			mib(want), mib(max(capa.Memory-used.Memory, 0)), mib(capa.Memory))
	}
	return ""
}

// spreadHard keeps the nodes that run no other replica of the service.
func spreadHard(eligible []*nodeState, d demand) (kept, out []*nodeState) {
	kept = eligible[:0:0]
	for _, n := range eligible {
		if n.others(d.service, d.slot) == 0 {
			kept = append(kept, n)
		} else {
			out = append(out, n)
		}
	}
	return kept, out
}

func spreadReason(n *nodeState, d demand) string {
	return "spread max_availability: already runs " + replicasOn(n, d)
}

// replicasOn names the replicas of d's service on n: "shop/web.1, shop/web.3".
func replicasOn(n *nodeState, d demand) string {
	n.fold()
	var slots []int
	for s := range n.services[d.service] {
		if s != d.slot {
			slots = append(slots, s)
		}
	}
	sort.Ints(slots)
	out := ""
	for i, s := range slots {
		if i > 0 {
			out += ", "
		}
		out += d.service + "." + strconv.Itoa(s)
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "in an unknown state"
	}
	return s
}

func cpus(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func mib(b int64) string { return strconv.FormatInt(b>>20, 10) + "MiB" }
