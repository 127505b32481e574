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
	ports    map[Port]string         // host port -> "project/service" using it
	services map[string]map[int]bool // "project/service" -> slots on this node
}

func newNodeState(n client.Node) *nodeState {
	return &nodeState{node: n, ports: map[Port]string{}, services: map[string]map[int]bool{}}
}

func (n *nodeState) name() string {
	if n.node.Hostname != "" {
		return n.node.Hostname
	}
	return n.node.ID
}

func (n *nodeState) add(t Task, inFlight bool) {
	n.reserved.CPUs += t.Reserved.CPUs
	n.reserved.Memory += t.Reserved.Memory
	cpu, mem := scoringAmounts(t.Reserved)
	n.scoreCPU += cpu
	n.scoreMem += mem
	svc := t.Project + "/" + t.Service
	for _, p := range t.Ports {
		n.ports[p] = svc
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
	slots := n.services[service]
	if slots[slot] {
		return len(slots) - 1
	}
	return len(slots)
}

// demand is what one replica asks of a node.
type demand struct {
	service  string // "project/service"
	slot     int
	reserved client.ResourceAmounts
	ports    []Port
	scoreCPU float64
	scoreMem float64
}

func newDemand(req Request) demand {
	d := demand{
		service:  req.Project + "/" + req.Service,
		slot:     req.Slot,
		reserved: req.Spec.Resources.Reservations,
		ports:    HostPorts(req.Spec),
	}
	d.scoreCPU, d.scoreMem = scoringAmounts(d.reserved)
	return d
}

func (d demand) task(req Request, node string) Task {
	return Task{Node: node, Project: req.Project, Service: req.Service, Slot: req.Slot, Reserved: d.reserved, Ports: d.ports}
}
