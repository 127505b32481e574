package nodes

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

func rbNode(id string, mods ...func(*client.Node)) client.Node {
	n := client.Node{ID: id, Status: client.NodeReady, Availability: client.AvailabilityActive,
		Capacity: client.ResourceAmounts{CPUs: 4, Memory: 8 << 30}}
	for _, m := range mods {
		m(&n)
	}
	return n
}

// rbTasks makes ready running tasks: "web:n1,n1,n2" is web.1 and web.2 on
// n1, web.3 on n2.
func rbTasks(specs ...string) []RebalanceTask {
	var out []RebalanceTask
	for _, s := range specs {
		name, list, _ := strings.Cut(s, ":")
		vol := strings.HasSuffix(name, "+vol")
		name = strings.TrimSuffix(name, "+vol")
		for i, node := range strings.Split(list, ",") {
			spec := client.ServiceSpec{Name: name, Image: "app", Replicas: len(strings.Split(list, ","))}
			if vol {
				spec.Mounts = []client.MountSpec{{Type: client.MountVolume, Source: "data", Target: "/data"}}
			}
			out = append(out, RebalanceTask{Ready: true, Rec: store.TaskRecord{
				Replica: client.Replica{ID: fmt.Sprintf("p.%s.%d.x", name, i+1), Project: "p", Service: name, Slot: i + 1,
					Node: node, DesiredState: client.DesiredRunning},
				Spec: spec,
			}})
		}
	}
	return out
}

func TestPlanRebalance(t *testing.T) {
	three := []client.Node{rbNode("n1"), rbNode("n2"), rbNode("n3")}
	down := func(n *client.Node) { n.Status = client.NodeDown }
	tests := []struct {
		name  string
		nodes []client.Node
		tasks []RebalanceTask
		opts  RebalanceOptions
		want  []string // "name from->count change", order-free: name@from
	}{
		{"balanced: nothing", three, rbTasks("web:n1,n2,n3"), RebalanceOptions{}, nil},
		{"off by one: nothing", three, rbTasks("web:n1,n1,n2,n3"), RebalanceOptions{}, nil},
		{"piled on n1", three, rbTasks("web:n1,n1,n1,n2"), RebalanceOptions{}, []string{"web@n1"}},
		{"all on n1", three, rbTasks("web:n1,n1,n1"), RebalanceOptions{}, []string{"web@n1", "web@n1"}},
		{"one-replica services even out the nodes", []client.Node{rbNode("n1"), rbNode("n2")},
			rbTasks("a:n1", "b:n1", "c:n1", "d:n1"), RebalanceOptions{}, []string{"a@n1", "b@n1"}},
		{"three on n1 of two nodes: one moves", []client.Node{rbNode("n1"), rbNode("n2")},
			rbTasks("a:n1", "b:n1", "c:n1"), RebalanceOptions{}, []string{"a@n1"}},
		{"one service only", three, rbTasks("web:n1,n1,n1", "api:n1,n1,n1"), RebalanceOptions{Project: "p", Service: "api"}, []string{"api@n1", "api@n1"}},
		{"volume-bound: never without force", three, rbTasks("db+vol:n1,n1,n1"), RebalanceOptions{}, nil},
		{"volume-bound with force", three, rbTasks("db+vol:n1,n1,n1"), RebalanceOptions{Force: true}, []string{"db@n1", "db@n1"}},
		{"forced off a down node", []client.Node{rbNode("n1"), rbNode("n2", down), rbNode("n3")},
			rbTasks("db+vol:n1,n2,n3"), RebalanceOptions{Force: true}, []string{"db@n2"}},
		{"busy service left alone", three, rbTasks("web:n1,n1,n1"), RebalanceOptions{Busy: map[string]bool{"p/web": true}}, nil},
		{"drained target not used", []client.Node{rbNode("n1"), rbNode("n2", func(n *client.Node) { n.Availability = client.AvailabilityDrain })},
			rbTasks("web:n1,n1,n1"), RebalanceOptions{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			moves := PlanRebalance(tt.nodes, tt.tasks, tt.opts)
			var got []string
			for _, m := range moves {
				got = append(got, m.Service+"@"+m.From)
				if m.Reason == "" {
					t.Errorf("move of %s without a reason", m.Replica)
				}
			}
			sort.Strings(got)
			sort.Strings(tt.want)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v (%+v)", got, tt.want, moves)
			}
		})
	}
}

// After the moves are made, a second rebalance moves nothing: no flapping.
func TestPlanRebalanceStable(t *testing.T) {
	nodes := []client.Node{rbNode("n1"), rbNode("n2"), rbNode("n3")}
	tasks := rbTasks("web:n1,n1,n1,n1,n1", "a:n1", "b:n1", "c:n2")
	for round := 0; round < 5; round++ {
		moves := PlanRebalance(nodes, tasks, RebalanceOptions{})
		if len(moves) == 0 {
			if round == 0 {
				t.Fatal("nothing moved from a piled-up n1")
			}
			return
		}
		if round > 0 {
			t.Fatalf("round %d moved again: %+v", round, moves)
		}
		// Make the moves where the scheduler would: re-plan each moved
		// task on the least-used node, as the controller would.
		for _, m := range moves {
			for i := range tasks {
				if tasks[i].Rec.ID == m.Replica {
					tasks[i].Rec.Node = leastUsed(nodes, tasks, m.Service, m.From)
				}
			}
		}
	}
}

func leastUsed(nodes []client.Node, tasks []RebalanceTask, service, not string) string {
	best, bestN := "", 1<<30
	for _, n := range nodes {
		if n.ID == not {
			continue
		}
		c := 0
		for _, t := range tasks {
			if t.Rec.Node == n.ID && t.Rec.Service == service {
				c += 100
			}
			if t.Rec.Node == n.ID {
				c++
			}
		}
		if c < bestN {
			best, bestN = n.ID, c
		}
	}
	return best
}
