package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// BenchmarkPlace10kOn1k places 10,000 replicas (100 services of 100) on
// 1,000 nodes in one plan, as a first deploy of a large cluster would.
func BenchmarkPlace10kOn1k(b *testing.B) { benchPlace(b, 1000, 100, 100, 0) }

// BenchmarkPlace10kOn1kExhaustive is the same plan scoring every feasible
// node (Options.Sample < 0): the cost sampling saves.
func BenchmarkPlace10kOn1kExhaustive(b *testing.B) { benchPlace(b, 1000, 100, 100, -1) }

// BenchmarkPlace100kOn5k places 100,000 replicas (100 services of 1,000)
// on 5,000 nodes in one plan: issue 4's scale, without the store.
func BenchmarkPlace100kOn5k(b *testing.B) { benchPlace(b, 5000, 100, 1000, 0) }

// benchPlace places services × perService replicas on n nodes in one plan:
// a mix of constraints, hard spread and host ports. It reports
// placements/s.
func benchPlace(b *testing.B, n, services, perService, sample int) {
	nodes := make([]client.Node, n)
	for i := range nodes {
		zone := []string{"home", "cloud", "school"}[i%3]
		nodes[i] = node(fmt.Sprintf("n%05d", i), capa(8, 16<<30), labels("zone", zone),
			load(float64(i%7)))
	}
	reqs := make([]Request, 0, services*perService)
	for s := range services {
		mods := []func(*client.ServiceSpec){replicas(perService), reserve(0.05, 64<<20)}
		switch s % 4 {
		case 1:
			mods = append(mods, constraints("node.labels.zone != school"))
		case 2:
			mods = append(mods, spreadMax)
		case 3:
			mods = append(mods, publish(uint16(10000+s)))
		}
		for slot := 1; slot <= perService; slot++ {
			reqs = append(reqs, req(fmt.Sprintf("svc%02d", s), slot, mods...))
		}
	}
	b.ResetTimer()
	for b.Loop() {
		p := NewPlanner(Snapshot{Nodes: nodes}, Options{Rand: rand.New(rand.NewPCG(1, 1)), Sample: sample})
		for _, r := range reqs {
			if _, err := p.Place(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(reqs)*b.N)/b.Elapsed().Seconds(), "placements/s")
}

// BenchmarkRound10On5kWith100k is a controller round that places 10
// replicas on a cluster of 5,000 nodes already running 100,000: building
// the plan from the snapshot dominates, so it folds a node's tasks only
// when a placement looks at the node.
func BenchmarkRound10On5kWith100k(b *testing.B) {
	nodes := make([]client.Node, 5000)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("n%05d", i), capa(8, 16<<30))
	}
	tasks := make([]Task, 0, 100000)
	for i := range 100000 {
		tasks = append(tasks, task(nodes[i%len(nodes)].ID, "p", fmt.Sprintf("svc%02d", i%100), i/100+1, withCPU(0.05), withPort(uint16(20000+i%100))))
	}
	b.ResetTimer()
	for b.Loop() {
		p := NewPlanner(Snapshot{Nodes: nodes, Tasks: tasks}, Options{Rand: rand.New(rand.NewPCG(1, 1))})
		for slot := 1; slot <= 10; slot++ {
			if _, err := p.Place(req("new", slot, reserve(0.05, 0))); err != nil {
				b.Fatal(err)
			}
		}
	}
}
