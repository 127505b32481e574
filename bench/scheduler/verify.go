package main

import (
	"context"
	"fmt"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// checked is what verify found.
type checked struct {
	tasks    int
	problems []string
	shutdown []string // tasks wanted shut down, still in the store
}

// verify reads every task back and checks what the scheduler must hold:
// each slot of each service has one task wanted running, on a node that
// exists and matches the constraint; a host port is bound once per node;
// a hard-spread service has at most one replica per node.
func verify(ctx context.Context, st store.Store, c config, nodes []client.Node) (checked, error) {
	var out checked
	kvs, _, err := st.List(ctx, store.TasksPrefix)
	if err != nil {
		return out, fmt.Errorf("verify: %w", err)
	}
	byID := map[string]client.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	type slot struct {
		svc  string
		slot int
	}
	slots := map[slot]int{}
	ports := map[string]string{}  // node/port -> task
	spread := map[string]string{} // node/service -> task
	per := map[string]int{}
	bad := func(f string, a ...any) { out.problems = append(out.problems, fmt.Sprintf(f, a...)) }
	for _, kv := range kvs {
		var t store.TaskRecord
		if err := store.Decode(kv, &t); err != nil {
			return out, fmt.Errorf("verify: %w", err)
		}
		if t.DesiredState != client.DesiredRunning {
			out.shutdown = append(out.shutdown, fmt.Sprintf("%s on %s (version %d)", t.ID, t.Node, t.Version))
			continue
		}
		out.tasks++
		svc := t.Project + "/" + t.Service
		per[svc]++
		slots[slot{svc, t.Slot}]++
		n, ok := byID[t.Node]
		if !ok {
			bad("%s on unknown node %s", t.ID, t.Node)
			continue
		}
		for _, cons := range t.Spec.Placement.Constraints {
			if cons == "node.labels.zone != school" && n.Labels["zone"] == "school" {
				bad("%s on %s breaks %q", t.ID, n.ID, cons)
			}
		}
		for _, p := range t.Spec.Ports {
			k := n.ID + "/" + fmt.Sprint(p.Published)
			if other, dup := ports[k]; dup {
				bad("%s and %s both bind port %d on %s", t.ID, other, p.Published, n.ID)
			}
			ports[k] = t.ID
		}
		if t.Spec.Ruche.Spread == client.SpreadMaxAvailability {
			k := n.ID + "/" + svc
			if other, dup := spread[k]; dup {
				bad("%s and %s of a max_availability service both on %s", t.ID, other, n.ID)
			}
			spread[k] = t.ID
		}
	}
	for k, n := range slots {
		if n > 1 {
			bad("%s.%d has %d tasks wanted running", k.svc, k.slot, n)
		}
	}
	want := c.replicas / c.services
	for svc, n := range per {
		if n != want {
			bad("%s has %d tasks wanted running, want %d", svc, n, want)
		}
	}
	return out, nil
}

func firstN(s []string, n int) []string { return s[:min(len(s), n)] }
