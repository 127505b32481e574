package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

func TestDryRunPlacements(t *testing.T) {
	spec := func(replicas int, mods ...func(*client.ServiceSpec)) client.ProjectSpec {
		s := client.ServiceSpec{Name: "web", Image: "hello:1", Replicas: replicas}
		for _, m := range mods {
			m(&s)
		}
		return client.ProjectSpec{Name: "shop", Services: map[string]client.ServiceSpec{"web": s}}
	}
	spread := func(s *client.ServiceSpec) { s.Ruche.Spread = client.SpreadMaxAvailability }
	homeOnly := func(s *client.ServiceSpec) { s.Placement.Constraints = []string{"node.labels.zone == home"} }
	nowhere := func(s *client.ServiceSpec) { s.Placement.Constraints = []string{"node.labels.zone == mars"} }
	port := func(s *client.ServiceSpec) { s.Ports = []client.PortSpec{{Target: 80, Published: 8080}} }
	tests := []struct {
		name string
		// before is deployed (and its tasks placed by hand) first.
		before *client.ProjectSpec
		tasks  map[int]string // slot -> node of the tasks of before
		deploy client.ProjectSpec
		want   []string // "slot node" or "slot !error substring"
	}{
		{
			name:   "a new service spreads over the nodes",
			deploy: spec(3, spread),
			want:   []string{"1 ?", "2 ?", "3 ?"}, // distinct, checked below
		},
		{
			name:   "a constraint picks the node",
			deploy: spec(2, homeOnly),
			want:   []string{"1 b", "2 b"},
		},
		{
			name:   "no node: the scheduler's reasons",
			deploy: spec(1, nowhere),
			want:   []string{"1 !no node can run shop/web.1: node a: constraint node.labels.zone == mars"},
		},
		{
			name:   "a scale places only the new slots",
			before: ptr(spec(2, port)),
			tasks:  map[int]string{1: "a", 2: "b"},
			deploy: spec(3, port),
			want:   []string{"3 c"},
		},
		{
			name:   "an update stop-first frees each slot's host port for its successor",
			before: ptr(spec(3, port)),
			tasks:  map[int]string{1: "a", 2: "b", 3: "c"},
			deploy: spec(3, port, func(s *client.ServiceSpec) { s.Image = "hello:2" }),
			want:   []string{"1 a", "2 b", "3 c"},
		},
		{
			name:   "nothing changes, nothing is placed",
			before: ptr(spec(2)),
			tasks:  map[int]string{1: "a", 2: "b"},
			deploy: spec(2),
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			e.st.Txn(ctx, nil, store.Delete(store.NodeKey("n1")))
			for _, n := range []client.Node{
				{ID: "a", Hostname: "a", Status: "ready", Availability: "active", Labels: map[string]string{"zone": "cloud"}},
				{ID: "b", Hostname: "b", Status: "ready", Availability: "active", Labels: map[string]string{"zone": "home"}},
				{ID: "c", Hostname: "c", Status: "ready", Availability: "active"},
			} {
				e.st.Txn(ctx, nil, store.Put(store.NodeKey(n.ID), store.Encode(n)))
			}
			if tt.before != nil {
				if code, body := e.deploy(*tt.before, false); code != 200 {
					t.Fatalf("deploy before: %d %s", code, body)
				}
				for slot, node := range tt.tasks {
					id := fmt.Sprintf("shop.web.%d.x", slot)
					rec := store.TaskRecord{
						Replica: client.Replica{ID: id, Project: "shop", Service: "web", Slot: slot, Version: 1, Node: node, DesiredState: client.DesiredRunning},
						Spec:    tt.before.Services["web"],
					}
					e.st.Txn(ctx, nil, store.Put(store.TaskKey(node, id), store.Encode(rec)))
				}
			}
			code, body := e.deploy(tt.deploy, true)
			if code != 200 {
				t.Fatalf("dry run: %d %s", code, body)
			}
			var resp client.DeployResponse
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			if len(resp.Placements) != len(tt.want) {
				t.Fatalf("placements = %+v, want %d", resp.Placements, len(tt.want))
			}
			used := map[string]bool{}
			for i, w := range tt.want {
				got := resp.Placements[i]
				slot, what, _ := strings.Cut(w, " ")
				if fmt.Sprint(got.Slot) != slot || got.Service != "web" {
					t.Errorf("placement %d is web.%d of %s, want web.%s", i, got.Slot, got.Service, slot)
				}
				switch {
				case strings.HasPrefix(what, "!"):
					if got.Node != "" || !strings.Contains(got.Error, what[1:]) {
						t.Errorf("web.%d: node %q error %q, want an error containing %q", got.Slot, got.Node, got.Error, what[1:])
					}
				case what == "?":
					if got.Node == "" || used[got.Node] {
						t.Errorf("web.%d on %q (error %q), want a node of its own", got.Slot, got.Node, got.Error)
					}
					used[got.Node] = true
				default:
					if got.Node != what || got.NodeName != what {
						t.Errorf("web.%d on %q (%q, error %q), want %s", got.Slot, got.Node, got.NodeName, got.Error, what)
					}
				}
				if got.Node != "" && !strings.HasPrefix(got.Why, "lowest score of ") {
					t.Errorf("web.%d why = %q, want the scheduler's reason", got.Slot, got.Why)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
