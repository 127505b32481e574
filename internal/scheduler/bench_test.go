package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// BenchmarkPlace10kOn1k places 10,000 replicas (100 services of 100) on
// 1,000 nodes in one plan, as a first deploy of a large cluster would.
func BenchmarkPlace10kOn1k(b *testing.B) {
	nodes := make([]client.Node, 1000)
	for i := range nodes {
		zone := []string{"home", "cloud", "school"}[i%3]
		nodes[i] = node(fmt.Sprintf("n%04d", i), capa(8, 16<<30), labels("zone", zone),
			load(float64(i%7)))
	}
	reqs := make([]Request, 0, 10000)
	for s := range 100 {
		mods := []func(*client.ServiceSpec){replicas(100), reserve(0.05, 64<<20)}
		switch s % 4 {
		case 1:
			mods = append(mods, constraints("node.labels.zone != school"))
		case 2:
			mods = append(mods, spreadMax)
		case 3:
			mods = append(mods, publish(uint16(10000+s)))
		}
		for slot := 1; slot <= 100; slot++ {
			reqs = append(reqs, req(fmt.Sprintf("svc%02d", s), slot, mods...))
		}
	}
	b.ResetTimer()
	for b.Loop() {
		p := NewPlanner(Snapshot{Nodes: nodes}, Options{Rand: rand.New(rand.NewPCG(1, 1))})
		for _, r := range reqs {
			if _, err := p.Place(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
