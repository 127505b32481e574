package scheduler

import (
	"github.com/ruche-platform/ruche/client"
)

// nodeState is a node and what is booked on it: the snapshot's tasks plus
// the placements of this plan.
type nodeState struct {
	node     client.Node
	reserved client.ResourceAmounts // sum of reservations, for the capacity filter
	scoreCPU float64                // sum of scoring amounts (see demand)
	scoreMem float64
	inFlight int                     // placements of this plan
	ports    map[Port]portUse        // host ports in use
	services map[string]map[int]bool // "project/service" -> slots on this node
	tasks    map[string]Task         // the snapshot's tasks on this node, by ID
	// pending are snapshot tasks not folded into the fields above yet:
	// a plan folds a node's tasks when it first looks at the node, so
	// building a plan is O(tasks) appends, and a sampled plan folds only
	// the nodes it visits.
	pending []*Task // into the Snapshot's slice, which the plan never writes
}

// fold books the node's pending snapshot tasks. Every method that reads
// the booked state calls it first.
func (n *nodeState) fold() {
	if n.pending == nil {
		return
	}
	ts := n.pending
	n.pending = nil
	for _, t := range ts {
		n.add(*t, false)
	}
}

func newNodeState(n client.Node) *nodeState {
	return &nodeState{node: n, ports: map[Port]portUse{}, services: map[string]map[int]bool{}, tasks: map[string]Task{}}
}

// name is how reasons and explanations name the node: its ID, the name
// `ruche node ls` shows and the commands take (host names need not be
// unique: cloned VMs often share one).
func (n *nodeState) name() string { return n.node.ID }

func (n *nodeState) add(t Task, inFlight bool) {
	n.fold()
	n.reserved.CPUs += t.Reserved.CPUs
	n.reserved.Memory += t.Reserved.Memory
	cpu, mem := scoringAmounts(t.Reserved)
	n.scoreCPU += cpu
	n.scoreMem += mem
	svc := t.Project + "/" + t.Service
	for _, p := range t.Ports {
		n.ports[p] = portUse{service: svc, task: t.ID}
	}
	if t.ID != "" {
		n.tasks[t.ID] = t
	}
	slots := n.services[svc]
	if slots == nil {
		slots = map[int]bool{}
		n.services[svc] = slots
	}
	slots[t.Slot] = true
	if inFlight {
		n.inFlight++
	}
}

// others counts the replicas of service on n in slots other than slot: the
// replica a rolling update replaces does not repel its successor.
func (n *nodeState) others(service string, slot int) int {
	n.fold()
	slots := n.services[service]
	if slots[slot] {
		return len(slots) - 1
	}
	return len(slots)
}

// portUse is who holds a host port.
type portUse struct {
	service string // "project/service"
	task    string // task ID; "" for a placement of this plan
}

// freed is what the tasks d replaces hold on n: stopped before the replica
// starts, they leave it to it.
func (n *nodeState) freed(d demand) client.ResourceAmounts {
	n.fold()
	var r client.ResourceAmounts
	for _, id := range d.replaces {
		if t, ok := n.tasks[id]; ok {
			r.CPUs += t.Reserved.CPUs
			r.Memory += t.Reserved.Memory
		}
	}
	return r
}

// demand is what one replica asks of a node.
type demand struct {
	service  string // "project/service"
	slot     int
	reserved client.ResourceAmounts
	ports    []Port
	replaces []string // task IDs
	scoreCPU float64
	scoreMem float64
}

func (d demand) replacing(id string) bool {
	for _, r := range d.replaces {
		if r == id && id != "" {
			return true
		}
	}
	return false
}

func newDemand(req Request) demand {
	d := demand{
		service:  req.Project + "/" + req.Service,
		slot:     req.Slot,
		reserved: req.Spec.Resources.Reservations,
		ports:    HostPorts(req.Spec),
		replaces: req.Replaces,
	}
	d.scoreCPU, d.scoreMem = scoringAmounts(d.reserved)
	return d
}

func (d demand) task(req Request, node string) Task {
	return Task{Node: node, Project: req.Project, Service: req.Service, Slot: req.Slot, Reserved: d.reserved, Ports: d.ports}
}
