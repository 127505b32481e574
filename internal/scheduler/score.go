package scheduler

import "github.com/ruche-platform/ruche/client"

// Scoring weights and amounts; README.md explains the choices. A lower
// score is better.
const (
	// loadWeight scales the live-load term against reservations: live
	// load is a second opinion, since it lags behind placements.
	loadWeight = 0.5
	// spreadWeight is the penalty per other replica of the same service on
	// a node: half a node's worth of fill.
	spreadWeight = 0.5
	// softSpreadWeight replaces spreadWeight for max_availability when
	// there are fewer eligible nodes than replicas: spreading then beats
	// any difference of fill.
	softSpreadWeight = 10.0

	// A replica that reserves nothing still uses something: for scoring
	// only (never for the capacity filter) it counts as this much, as
	// Kubernetes does for pods without requests.
	defaultCPU    = 0.1
	defaultMemory = 128 << 20

	// A node that reports no capacity is scored as if it had this much.
	nominalCPU    = 4.0
	nominalMemory = 4 << 30

	epsilon = 1e-9
)

// score is a node's score for one replica, with its terms for "why".
type score struct {
	total  float64
	fill   float64 // reserved fraction after placing the replica
	load   float64 // live load fraction
	others int     // other replicas of the same service on the node
}

func scoringAmounts(r client.ResourceAmounts) (cpu, mem float64) {
	cpu, mem = r.CPUs, float64(r.Memory)
	if cpu <= 0 {
		cpu = defaultCPU
	}
	if mem <= 0 {
		mem = defaultMemory
	}
	return cpu, mem
}

func capacity(n client.Node) (cpu, mem float64) {
	cpu, mem = n.Capacity.CPUs, float64(n.Capacity.Memory)
	if cpu <= 0 {
		cpu = nominalCPU
	}
	if mem <= 0 {
		mem = nominalMemory
	}
	return cpu, mem
}

func scoreNode(n *nodeState, d demand, softSpread bool) score {
	n.fold()
	capCPU, capMem := capacity(n.node)
	var sc score
	// Reservations, including this plan's placements still in flight,
	// and this replica itself.
	sc.fill = ((n.scoreCPU+d.scoreCPU)/capCPU + (n.scoreMem+d.scoreMem)/capMem) / 2
	// Live load: Load1 is the kernel's exponentially smoothed one-minute
	// load average, so a short spike does not swing placements.
	if l := n.node.Load; l != nil {
		sc.load = min(max((l.Load1/capCPU+float64(l.Memory)/capMem)/2, 0), 2)
	}
	sc.others = n.others(d.service, d.slot)
	w := spreadWeight
	if softSpread {
		w = softSpreadWeight
	}
	sc.total = sc.fill + loadWeight*sc.load + w*float64(sc.others)
	return sc
}
