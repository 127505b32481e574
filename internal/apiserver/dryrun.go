package apiserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/scheduler"
	"github.com/ruche-platform/ruche/internal/store"
)

// maxDryRunPlacements bounds the placements a dry run returns; past it the
// rest are counted in the message of the last one.
const maxDryRunPlacements = 1000

// dryRunPlacements runs the scheduler, on the nodes and replicas the store
// holds now, for the replicas the deploy would create: every slot of a new
// service, the slots a scale adds, and every slot of an update (which
// replaces each replica; stop-first, the default, frees the old one's host
// ports and reservations for its successor, as the controller assumes).
// One plan for the whole deploy, so its replicas see each other, as they
// do in the controller's round.
func (s *Server) dryRunPlacements(ctx context.Context, p *client.ProjectSpec, changes []client.Change) ([]client.ReplicaPlacement, error) {
	snap, slots, err := s.schedulerSnapshot(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, n := range snap.Nodes {
		names[n.ID] = n.Hostname
	}
	plan := scheduler.NewPlanner(snap, scheduler.Options{})
	var out []client.ReplicaPlacement
	for _, c := range changes {
		spec := p.Services[c.Service]
		first, replace := 0, false
		switch c.Kind {
		case client.ChangeCreate:
			first = 1
		case client.ChangeScale:
			first = c.From + 1
		case client.ChangeUpdate:
			first, replace = 1, spec.UpdateConfig.Order != client.OrderStartFirst
		default:
			continue
		}
		for slot := first; slot <= c.To; slot++ {
			if len(out) == maxDryRunPlacements {
				out[len(out)-1].Why += fmt.Sprintf("; and more replicas not shown (a dry run shows the first %d)", maxDryRunPlacements)
				return out, nil
			}
			req := scheduler.Request{Project: p.Name, Service: c.Service, Slot: slot, Spec: spec}
			if replace {
				req.Replaces = slots[slotKey{c.Service, slot}]
			}
			rp := client.ReplicaPlacement{Service: c.Service, Slot: slot}
			pl, err := plan.Place(req)
			switch {
			case err == nil:
				rp.Node, rp.NodeName = pl.Node, names[pl.Node]
				rp.Why = strings.TrimPrefix(pl.Why, "node "+pl.Node+": ")
			case errors.Is(err, scheduler.ErrNoNode), errors.Is(err, scheduler.ErrInvalidConstraint):
				rp.Error = err.Error()
			default:
				return nil, err
			}
			out = append(out, rp)
		}
	}
	return out, nil
}

type slotKey struct {
	service string
	slot    int
}

// schedulerSnapshot reads the nodes and the tasks that hold resources
// (what the controller gives its scheduler), and the live tasks of
// project by service and slot.
func (s *Server) schedulerSnapshot(ctx context.Context, project string) (scheduler.Snapshot, map[slotKey][]string, error) {
	var snap scheduler.Snapshot
	nodes, _, err := s.d.Store.List(ctx, store.NodesPrefix)
	if err != nil {
		return snap, nil, fmt.Errorf("list nodes: %w", err)
	}
	for _, kv := range nodes {
		var n client.Node
		if err := store.Decode(kv, &n); err != nil {
			continue // the controller ignores it too
		}
		snap.Nodes = append(snap.Nodes, n)
	}
	statuses, _, err := s.d.Store.List(ctx, store.TaskStatusPrefix)
	if err != nil {
		return snap, nil, fmt.Errorf("list replica statuses: %w", err)
	}
	gone := map[string]bool{}
	for _, kv := range statuses {
		var st client.ReplicaStatus
		if store.Decode(kv, &st) != nil {
			continue
		}
		switch st.State {
		case client.StateShutdown, client.StateFailed, client.StateComplete:
			gone[store.Last(kv.Key)] = true
		}
	}
	tasks, _, err := s.d.Store.List(ctx, store.TasksPrefix)
	if err != nil {
		return snap, nil, fmt.Errorf("list tasks: %w", err)
	}
	slots := map[slotKey][]string{}
	for _, kv := range tasks {
		var t store.TaskRecord
		if store.Decode(kv, &t) != nil || gone[t.ID] {
			continue
		}
		snap.Tasks = append(snap.Tasks, scheduler.TaskOf(t.Replica, t.Spec))
		if t.Project == project && t.DesiredState == client.DesiredRunning {
			k := slotKey{t.Service, t.Slot}
			slots[k] = append(slots[k], t.ID)
		}
	}
	sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].ID < snap.Nodes[j].ID })
	return snap, slots, nil
}
