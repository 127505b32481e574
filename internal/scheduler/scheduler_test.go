package scheduler

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

func node(id string, mods ...func(*client.Node)) client.Node {
	n := client.Node{ID: id, Hostname: id, Status: "ready", Availability: "active"}
	for _, m := range mods {
		m(&n)
	}
	return n
}

func labels(kv ...string) func(*client.Node) {
	return func(n *client.Node) {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func capa(cpus float64, mem int64) func(*client.Node) {
	return func(n *client.Node) { n.Capacity = client.ResourceAmounts{CPUs: cpus, Memory: mem} }
}

func load(load1 float64) func(*client.Node) {
	return func(n *client.Node) { n.Load = &client.NodeLoad{Load1: load1} }
}

func task(nodeID, project, service string, slot int, mods ...func(*Task)) Task {
	t := Task{ID: project + "." + service, Node: nodeID, Project: project, Service: service, Slot: slot}
	for _, m := range mods {
		m(&t)
	}
	return t
}

func withPort(n uint16) func(*Task) {
	return func(t *Task) { t.Ports = append(t.Ports, Port{Number: n, Protocol: "tcp"}) }
}

func withCPU(c float64) func(*Task) {
	return func(t *Task) { t.Reserved.CPUs = c }
}

func req(service string, slot int, mods ...func(*client.ServiceSpec)) Request {
	spec := client.ServiceSpec{Name: service, Image: "img", Replicas: 1}
	for _, m := range mods {
		m(&spec)
	}
	return Request{Project: "shop", Service: service, Slot: slot, Spec: spec}
}

func replacing(r Request, ids ...string) Request {
	r.Replaces = ids
	return r
}

func constraints(cs ...string) func(*client.ServiceSpec) {
	return func(s *client.ServiceSpec) { s.Placement.Constraints = cs }
}

func publish(port uint16) func(*client.ServiceSpec) {
	return func(s *client.ServiceSpec) {
		s.Ports = append(s.Ports, client.PortSpec{Target: 80, Published: port})
	}
}

func reserve(cpus float64, mem int64) func(*client.ServiceSpec) {
	return func(s *client.ServiceSpec) {
		s.Resources.Reservations = client.ResourceAmounts{CPUs: cpus, Memory: mem}
	}
}

func replicas(n int) func(*client.ServiceSpec) {
	return func(s *client.ServiceSpec) { s.Replicas = n }
}

func spreadMax(s *client.ServiceSpec) { s.Ruche.Spread = client.SpreadMaxAvailability }

func TestPlaceFilters(t *testing.T) {
	tests := []struct {
		name    string
		nodes   []client.Node
		tasks   []Task
		req     Request
		filters []Filter
		want    string // node ID, or "" for an error
		wantErr string // exact error message
	}{
		{
			name:  "down and draining nodes are skipped",
			nodes: []client.Node{node("a", func(n *client.Node) { n.Status = "down" }), node("b", func(n *client.Node) { n.Availability = "drain" }), node("c")},
			req:   req("web", 1),
			want:  "c",
		},
		{
			name:    "no node at all",
			req:     req("web", 1),
			wantErr: "no node can run shop/web.1: no nodes",
		},
		{
			name:  "label constraint",
			nodes: []client.Node{node("a", labels("zone", "cloud")), node("b", labels("zone", "home"))},
			req:   req("web", 1, constraints("node.labels.zone == home")),
			want:  "b",
		},
		{
			name:  "hostname and id constraints",
			nodes: []client.Node{node("a"), node("b"), node("c")},
			req:   req("web", 1, constraints("node.hostname != a", "node.id != c")),
			want:  "b",
		},
		{
			name:  "host port in use",
			nodes: []client.Node{node("a"), node("b")},
			tasks: []Task{task("a", "shop", "api", 1, withPort(8080))},
			req:   req("web", 1, publish(8080)),
			want:  "b",
		},
		{
			name:  "udp does not conflict with tcp",
			nodes: []client.Node{node("a")},
			tasks: []Task{task("a", "shop", "api", 1, func(t *Task) { t.Ports = []Port{{8080, "udp"}} })},
			req:   req("web", 1, publish(8080)),
			want:  "a",
		},
		{
			name:  "ephemeral ports never conflict",
			nodes: []client.Node{node("a")},
			tasks: []Task{task("a", "shop", "api", 1)},
			req:   req("web", 1, func(s *client.ServiceSpec) { s.Ports = []client.PortSpec{{Target: 80}} }),
			want:  "a",
		},
		{
			name:  "reserved cpu against capacity",
			nodes: []client.Node{node("a", capa(2, 0)), node("b", capa(4, 0))},
			tasks: []Task{task("a", "shop", "db", 1, withCPU(1.5)), task("b", "shop", "db", 2, withCPU(3.8))},
			req:   req("web", 1, reserve(0.5, 0)),
			want:  "a", // exactly fills a; b has only 0.2 free
		},
		{
			name:  "unknown capacity is no limit",
			nodes: []client.Node{node("a")},
			tasks: []Task{task("a", "shop", "db", 1, withCPU(64))},
			req:   req("web", 1, reserve(32, 1<<40)),
			want:  "a",
		},
		{
			name:    "every node rejected, each with its reason",
			nodes:   []client.Node{node("b", labels("zone", "home")), node("a"), node("c", capa(1, 1<<30)), node("d", func(n *client.Node) { n.Status = "down" })},
			tasks:   []Task{task("a", "shop", "web", 1, withPort(8080))},
			req:     req("web", 2, publish(8080), reserve(0, 2<<30), constraints("node.labels.zone != home")),
			wantErr: "no node can run shop/web.2: node a: host port 8080/tcp in use by shop/web; node b: constraint node.labels.zone != home; node c: not enough memory: 2048MiB reserved, 1024MiB of 1024MiB free; node d: node is down",
		},
		{
			name:    "constraint reason",
			nodes:   []client.Node{node("b"), node("a", labels("zone", "cloud"))},
			req:     req("web", 1, constraints("node.labels.zone == home")),
			wantErr: "no node can run shop/web.1: node a: constraint node.labels.zone == home; node b: constraint node.labels.zone == home",
		},
		{
			name:    "bad constraint",
			nodes:   []client.Node{node("a")},
			req:     req("web", 1, constraints("zone=home")),
			wantErr: `place shop/web.1: invalid placement constraint "zone=home": want <field> == <value> or <field> != <value>`,
		},
		{
			name:  "extra filter hook",
			nodes: []client.Node{node("a"), node("b")},
			req:   req("web", 1),
			filters: []Filter{func(n client.Node, r Request) string {
				return map[bool]string{true: "volume data lives on node b"}[n.ID == "a"]
			}},
			want: "b",
		},
		{
			name:  "max_availability is hard when nodes suffice",
			nodes: []client.Node{node("a", capa(8, 0)), node("b", capa(1, 0))},
			tasks: []Task{task("a", "shop", "web", 1), task("b", "shop", "db", 1, withCPU(0.9))},
			req:   req("web", 2, replicas(2), spreadMax),
			want:  "b", // although a is far emptier
		},
		{
			name:    "max_availability hard reason",
			nodes:   []client.Node{node("c"), node("a"), node("b", labels("zone", "x"))},
			tasks:   []Task{task("a", "shop", "web", 1), task("a", "shop", "web", 3), task("c", "shop", "web", 4)},
			req:     req("web", 2, replicas(2), spreadMax, constraints("node.labels.zone != x")),
			wantErr: "no node can run shop/web.2: node a: spread max_availability: already runs shop/web.1, shop/web.3; node b: constraint node.labels.zone != x; node c: spread max_availability: already runs shop/web.4",
		},
		{
			name:  "max_availability is soft when nodes are fewer than replicas",
			nodes: []client.Node{node("a"), node("b")},
			tasks: []Task{task("a", "shop", "web", 1), task("b", "shop", "web", 2), task("b", "shop", "web", 3)},
			req:   req("web", 4, replicas(4), spreadMax),
			want:  "a",
		},
		{
			name:  "a replaced task leaves its host port",
			nodes: []client.Node{node("a")},
			tasks: []Task{task("a", "shop", "web", 1, withPort(8080), func(t *Task) { t.ID = "shop.web.1.old" })},
			req:   replacing(req("web", 1, publish(8080)), "shop.web.1.old"),
			want:  "a",
		},
		{
			name:    "replacing another task frees nothing of this one",
			nodes:   []client.Node{node("a")},
			tasks:   []Task{task("a", "shop", "web", 1, withPort(8080), func(t *Task) { t.ID = "shop.web.1.old" })},
			req:     replacing(req("web", 2, publish(8080)), "shop.web.2.old"),
			wantErr: "no node can run shop/web.2: node a: host port 8080/tcp in use by shop/web",
		},
		{
			name:  "a replaced task leaves its reservations",
			nodes: []client.Node{node("a", capa(2, 0))},
			tasks: []Task{task("a", "shop", "web", 1, withCPU(1.5), func(t *Task) { t.ID = "shop.web.1.old" })},
			req:   replacing(req("web", 1, reserve(2, 0)), "shop.web.1.old"),
			want:  "a",
		},
		{
			name:    "reservations that do not fit even once the old one stops",
			nodes:   []client.Node{node("a", capa(2, 0))},
			tasks:   []Task{task("a", "shop", "web", 1, withCPU(1.5), func(t *Task) { t.ID = "shop.web.1.old" }), task("a", "shop", "db", 1, withCPU(0.5))},
			req:     replacing(req("web", 1, reserve(2, 0)), "shop.web.1.old"),
			wantErr: "no node can run shop/web.1: node a: not enough cpu: 2 reserved, 1.5 of 2 free",
		},
		{
			name:  "the replica being replaced does not repel its successor",
			nodes: []client.Node{node("a", capa(4, 4<<30)), node("b", capa(4, 4<<30))},
			tasks: []Task{task("a", "shop", "web", 1), task("b", "shop", "web", 2), task("b", "shop", "db", 1, withCPU(1))},
			req:   req("web", 2, replicas(2), spreadMax),
			want:  "b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPlanner(Snapshot{Nodes: tt.nodes, Tasks: tt.tasks}, Options{Filters: tt.filters})
			got, err := p.Place(tt.req)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Place = %+v, want error %q", got, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("error = %q\nwant    %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			if got.Node != tt.want {
				t.Errorf("Node = %q, want %q (why: %s)", got.Node, tt.want, got.Why)
			}
			if got.Why == "" || got.Slot != tt.req.Slot || got.Service != tt.req.Service {
				t.Errorf("placement = %+v, want slot, service and why set", got)
			}
		})
	}
}

func TestPlaceErrorKinds(t *testing.T) {
	p := NewPlanner(Snapshot{Nodes: []client.Node{node("a", func(n *client.Node) { n.Status = "down" })}}, Options{})
	_, err := p.Place(req("web", 1))
	var nn *NoNodeError
	if !errors.As(err, &nn) || !errors.Is(err, ErrNoNode) {
		t.Fatalf("err = %v, want a NoNodeError wrapping ErrNoNode", err)
	}
	if got, want := nn.Reasons, []NodeReason{{Node: "a", Reason: "node is down"}}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("Reasons = %v, want %v", got, want)
	}
	_, err = p.Place(req("web", 1, constraints("bogus")))
	if !errors.Is(err, ErrInvalidConstraint) {
		t.Errorf("err = %v, want ErrInvalidConstraint", err)
	}
}

func TestNoNodeErrorIsBounded(t *testing.T) {
	var nodes []client.Node
	for _, id := range strings.Split("a b c d e f g h i j k l", " ") {
		nodes = append(nodes, node(id, labels("zone", "x")))
	}
	_, err := NewPlanner(Snapshot{Nodes: nodes}, Options{}).Place(req("web", 1, constraints("node.labels.zone == y")))
	if err == nil || !strings.HasSuffix(err.Error(), "; and 4 more nodes") || strings.Count(err.Error(), "node.labels.zone == y") != maxReasons {
		t.Errorf("err = %v, want %d reasons then the count of the rest", err, maxReasons)
	}
}

// Placements of one plan are booked: host ports, capacity and the spread
// see them.
func TestPlaceBooksInFlight(t *testing.T) {
	t.Run("host port", func(t *testing.T) {
		p := NewPlanner(Snapshot{Nodes: []client.Node{node("a")}}, Options{})
		if _, err := p.Place(req("web", 1, publish(80))); err != nil {
			t.Fatal(err)
		}
		_, err := p.Place(req("web", 2, publish(80)))
		if err == nil || !strings.Contains(err.Error(), "host port 80/tcp in use by shop/web") {
			t.Errorf("second placement error = %v, want a host port conflict", err)
		}
	})
	t.Run("capacity", func(t *testing.T) {
		p := NewPlanner(Snapshot{Nodes: []client.Node{node("a", capa(1, 0))}}, Options{})
		for slot := 1; slot <= 2; slot++ {
			if _, err := p.Place(req("web", slot, reserve(0.5, 0))); err != nil {
				t.Fatalf("slot %d: %v", slot, err)
			}
		}
		if _, err := p.Place(req("web", 3, reserve(0.5, 0))); !errors.Is(err, ErrNoNode) {
			t.Errorf("third 0.5 cpu on a 1 cpu node: err = %v, want ErrNoNode", err)
		}
	})
	t.Run("spread over equal nodes", func(t *testing.T) {
		nodes := []client.Node{node("a"), node("b"), node("c")}
		p := NewPlanner(Snapshot{Nodes: nodes}, Options{Rand: rand.New(rand.NewPCG(7, 7))})
		count := map[string]int{}
		for slot := 1; slot <= 9; slot++ {
			pl, err := p.Place(req("web", slot, replicas(9)))
			if err != nil {
				t.Fatal(err)
			}
			count[pl.Node]++
		}
		for _, n := range nodes {
			if got, want := count[n.ID], 3; got != want {
				t.Errorf("replicas on %s = %d, want %d (all: %v)", n.ID, got, want, count)
			}
		}
	})
}

func TestPlaceScore(t *testing.T) {
	tests := []struct {
		name  string
		nodes []client.Node
		tasks []Task
		req   Request
		want  string
	}{
		{
			name:  "least reserved fraction wins",
			nodes: []client.Node{node("a", capa(4, 8<<30)), node("b", capa(4, 8<<30))},
			tasks: []Task{task("a", "shop", "db", 1, withCPU(2))},
			req:   req("web", 1),
			want:  "b",
		},
		{
			name:  "fraction, not absolute amount",
			nodes: []client.Node{node("a", capa(2, 4<<30)), node("b", capa(16, 32<<30))},
			tasks: []Task{task("a", "shop", "db", 1, withCPU(0.5)), task("b", "shop", "db", 2, withCPU(2))},
			req:   req("web", 1),
			want:  "b",
		},
		{
			name:  "live load breaks what reservations do not",
			nodes: []client.Node{node("a", capa(4, 8<<30), load(3.5)), node("b", capa(4, 8<<30), load(0.2))},
			req:   req("web", 1),
			want:  "b",
		},
		{
			name:  "live load is only a second weight",
			nodes: []client.Node{node("a", capa(4, 8<<30), load(4)), node("b", capa(4, 8<<30), load(0))},
			tasks: []Task{task("b", "shop", "db", 1, withCPU(3)), task("b", "shop", "cache", 1, func(t *Task) { t.Reserved.Memory = 6 << 30 })},
			req:   req("web", 1),
			want:  "a",
		},
		{
			name:  "spread penalty for replicas of the same service",
			nodes: []client.Node{node("a", capa(4, 8<<30)), node("b", capa(4, 8<<30))},
			tasks: []Task{task("a", "shop", "web", 1), task("b", "shop", "db", 1, withCPU(1))},
			req:   req("web", 2),
			want:  "b",
		},
		{
			name:  "spread penalty gives way to a nearly full node",
			nodes: []client.Node{node("a", capa(4, 8<<30)), node("b", capa(4, 8<<30))},
			tasks: []Task{task("a", "shop", "web", 1), task("b", "shop", "db", 1, withCPU(3.9), func(t *Task) { t.Reserved.Memory = 7 << 30 })},
			req:   req("web", 2),
			want:  "a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewPlanner(Snapshot{Nodes: tt.nodes, Tasks: tt.tasks}, Options{}).Place(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got.Node != tt.want {
				t.Errorf("Node = %q, want %q (why: %s)", got.Node, tt.want, got.Why)
			}
		})
	}
}

// Ties are broken by the caller's random source: over many seeds, every
// tied node gets picked, and the same seed gives the same plan.
func TestPlaceTiesAtRandom(t *testing.T) {
	nodes := []client.Node{node("a"), node("b"), node("c")}
	seen := map[string]int{}
	for seed := range uint64(60) {
		p := NewPlanner(Snapshot{Nodes: nodes}, Options{Rand: rand.New(rand.NewPCG(seed, 0))})
		pl, err := p.Place(req("web", 1))
		if err != nil {
			t.Fatal(err)
		}
		seen[pl.Node]++
		again, _ := NewPlanner(Snapshot{Nodes: nodes}, Options{Rand: rand.New(rand.NewPCG(seed, 0))}).Place(req("web", 1))
		if again.Node != pl.Node {
			t.Fatalf("seed %d: placed on %s then %s, want the same node", seed, pl.Node, again.Node)
		}
		if !strings.Contains(pl.Why, "tie of 3 broken at random") {
			t.Errorf("why = %q, want the tie mentioned", pl.Why)
		}
	}
	for _, n := range nodes {
		if seen[n.ID] < 5 {
			t.Errorf("node %s picked %d times of 60, want a fair share (all: %v)", n.ID, seen[n.ID], seen)
		}
	}
}

func TestHostPorts(t *testing.T) {
	spec := client.ServiceSpec{Ports: []client.PortSpec{
		{Target: 80, Published: 8080},
		{Target: 80, Published: 8080, Protocol: "tcp"},
		{Target: 53, Published: 53, Protocol: "udp"},
		{Target: 9000},
	}}
	got := HostPorts(spec)
	want := []Port{{8080, "tcp"}, {53, "udp"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("HostPorts = %v, want %v", got, want)
	}
}
