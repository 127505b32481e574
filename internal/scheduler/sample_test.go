package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// cluster returns n ready nodes; the IDs in home get the label zone=home.
func cluster(n int, home ...int) []client.Node {
	nodes := make([]client.Node, n)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("n%05d", i), capa(8, 16<<30))
	}
	for _, i := range home {
		nodes[i].Labels = map[string]string{"zone": "home"}
	}
	return nodes
}

func TestSampledFiltersHold(t *testing.T) {
	home := []int{3, 517, 1200, 1999}
	var many []int // 40 of 2,000: more than the sample, so the walk samples them
	for i := 7; i < 2000; i += 50 {
		many = append(many, i)
	}
	tests := []struct {
		name    string
		nodes   []client.Node
		reqs    []Request
		want    func(t *testing.T, got []Placement) // checks the placements
		wantErr int                                 // index of the first request that must fail, -1 none
	}{
		{
			name:    "a constraint few nodes match still finds them",
			nodes:   cluster(2000, home...),
			reqs:    slots("web", 40, constraints("node.labels.zone == home")),
			want:    onNodes(home...),
			wantErr: -1,
		},
		{
			name:    "hard spread on a constraint matching more nodes than the sample",
			nodes:   cluster(2000, many...),
			reqs:    slots("web", 41, replicas(40), spreadMax, constraints("node.labels.zone == home")),
			want:    both(onNodes(many...), distinct(40)),
			wantErr: 40,
		},
		{
			name:    "hard spread on the few matching nodes, then no node",
			nodes:   cluster(2000, home...),
			reqs:    slots("web", 5, replicas(4), spreadMax, constraints("node.labels.zone == home")),
			want:    distinct(4),
			wantErr: 4,
		},
		{
			name:    "soft spread when the matching nodes are fewer than replicas",
			nodes:   cluster(2000, home...),
			reqs:    slots("web", 8, replicas(8), spreadMax, constraints("node.labels.zone == home")),
			want:    evenly(4, 2),
			wantErr: -1,
		},
		{
			name:    "hard spread over many nodes",
			nodes:   cluster(300),
			reqs:    slots("web", 300, replicas(300), spreadMax),
			want:    distinct(300),
			wantErr: -1,
		},
		{
			name:    "a host port is bound once per node until no node is left",
			nodes:   cluster(200),
			reqs:    slots("web", 201, publish(8080)),
			want:    distinct(200),
			wantErr: 200,
		},
		{
			name:    "reservations never overbook a node",
			nodes:   cluster(100),
			reqs:    slots("web", 801, reserve(1, 0)),
			want:    evenly(100, 8),
			wantErr: 800,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlanner(Snapshot{Nodes: tt.nodes}, Options{Rand: rand.New(rand.NewPCG(7, 7)), Sample: 16})
			var got []Placement
			for i, r := range tt.reqs {
				pl, err := p.Place(r)
				if i == tt.wantErr {
					if !errors.Is(err, ErrNoNode) {
						t.Fatalf("request %d: got %v, want ErrNoNode", i, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				got = append(got, pl)
			}
			if tt.wantErr >= 0 {
				t.Fatalf("request %d placed, want ErrNoNode", tt.wantErr)
			}
			tt.want(t, got)
		})
	}
}

func slots(service string, n int, mods ...func(*client.ServiceSpec)) []Request {
	out := make([]Request, n)
	for i := range out {
		out[i] = req(service, i+1, mods...)
	}
	return out
}

func onNodes(idx ...int) func(*testing.T, []Placement) {
	return func(t *testing.T, got []Placement) {
		ok := map[string]bool{}
		for _, i := range idx {
			ok[fmt.Sprintf("n%05d", i)] = true
		}
		for _, pl := range got {
			if !ok[pl.Node] {
				t.Errorf("slot %d on %s, want one of %v", pl.Slot, pl.Node, idx)
			}
		}
	}
}

func both(a, b func(*testing.T, []Placement)) func(*testing.T, []Placement) {
	return func(t *testing.T, got []Placement) { a(t, got); b(t, got) }
}

// distinct wants n placements on n distinct nodes.
func distinct(n int) func(*testing.T, []Placement) {
	return evenly(n, 1)
}

// evenly wants the placements on exactly nodes nodes, each holding per.
func evenly(nodes, per int) func(*testing.T, []Placement) {
	return func(t *testing.T, got []Placement) {
		count := map[string]int{}
		for _, pl := range got {
			count[pl.Node]++
		}
		if len(count) != nodes {
			t.Errorf("placed on %d nodes, want %d", len(count), nodes)
		}
		for n, c := range count {
			if c != per {
				t.Errorf("node %s holds %d, want %d", n, c, per)
			}
		}
	}
}

func TestSampledWhy(t *testing.T) {
	nodes := cluster(1000)
	tests := []struct {
		name   string
		sample int
		want   string
	}{
		{"sampled", 32, "lowest score of 32 feasible nodes sampled from 1000 ready nodes matching its constraints"},
		{"exhaustive", -1, "lowest score of 1000 eligible nodes"},
		{"sample larger than the cluster", 5000, "lowest score of 1000 eligible nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlanner(Snapshot{Nodes: nodes}, Options{Sample: tt.sample})
			pl, err := p.Place(req("web", 1))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(pl.Why, tt.want) {
				t.Errorf("why = %q, want it to contain %q", pl.Why, tt.want)
			}
		})
	}
}

// TestSampledPrefersEmptyNodes checks the ranking still works on a sample:
// with half the nodes full of reservations, placements go to the other
// half. A sample of 32 consecutive feasible nodes holds 16 odd ones; with
// at most 200 of the 500 taken (one replica of web repels the next as much
// as 6 reserved cpus), all 16 are taken with probability below 0.4^16.
func TestSampledPrefersEmptyNodes(t *testing.T) {
	nodes := cluster(1000)
	var tasks []Task
	for i := 0; i < len(nodes); i += 2 {
		tasks = append(tasks, task(nodes[i].ID, "other", "big", i, withCPU(6)))
	}
	p := NewPlanner(Snapshot{Nodes: nodes, Tasks: tasks}, Options{Rand: rand.New(rand.NewPCG(3, 3)), Sample: 32})
	for slot := 1; slot <= 200; slot++ {
		pl, err := p.Place(req("web", slot, reserve(0.5, 0)))
		if err != nil {
			t.Fatal(err)
		}
		var i int
		fmt.Sscanf(pl.Node, "n%05d", &i)
		if i%2 == 0 {
			t.Fatalf("slot %d on %s, a node with 6 of 8 cpus reserved", slot, pl.Node)
		}
	}
}
