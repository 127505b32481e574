package apiserver

import (
	"bytes"
	"context"
	"sort"
	"strings"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// snapshot is the part of the store that views are built from, read at one
// go.
type snapshot struct {
	projects map[string]store.ProjectRecord
	services map[string]map[string]store.ServiceRecord // project -> service
	updates  map[string]client.UpdateStatus            // "p/s"
	tasks    []client.Replica
	records  []store.TaskRecord
	statuses map[string]client.ReplicaStatus
	// current holds the IDs of tasks that run their service's current
	// replica template, whatever their version number (a rollback keeps
	// the replicas that already run the spec it restores).
	current  map[string]bool
	nodes    []client.Node
	cleanups map[string]bool
}

func (s *Server) loadSnapshot(ctx context.Context) (*snapshot, error) {
	snap := &snapshot{
		projects: map[string]store.ProjectRecord{},
		services: map[string]map[string]store.ServiceRecord{},
		updates:  map[string]client.UpdateStatus{},
		cleanups: map[string]bool{},
		current:  map[string]bool{},
	}
	list := func(prefix string, each func(store.KV) error) error {
		kvs, _, err := s.d.Store.List(ctx, prefix)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if err := each(kv); err != nil {
				return err
			}
		}
		return nil
	}
	statuses := map[string]client.ReplicaStatus{}
	snap.statuses = statuses
	err := firstErr(
		func() error {
			return list(store.ProjectsPrefix, func(kv store.KV) error {
				var r store.ProjectRecord
				err := store.Decode(kv, &r)
				snap.projects[store.Last(kv.Key)] = r
				return err
			})
		},
		func() error {
			return list(store.ServicesPrefix, func(kv store.KV) error {
				var r store.ServiceRecord
				p, svc, _ := store.SplitService(kv.Key)
				if snap.services[p] == nil {
					snap.services[p] = map[string]store.ServiceRecord{}
				}
				err := store.Decode(kv, &r)
				snap.services[p][svc] = r
				return err
			})
		},
		func() error {
			return list(store.SvcStatusPrefix, func(kv store.KV) error {
				var u client.UpdateStatus
				p, svc, _ := store.SplitService(kv.Key)
				err := store.Decode(kv, &u)
				snap.updates[p+"/"+svc] = u
				return err
			})
		},
		func() error {
			return list(store.TaskStatusPrefix, func(kv store.KV) error {
				var st client.ReplicaStatus
				err := store.Decode(kv, &st)
				statuses[store.Last(kv.Key)] = st
				return err
			})
		},
		func() error {
			return list(store.TasksPrefix, func(kv store.KV) error {
				var t store.TaskRecord
				if err := store.Decode(kv, &t); err != nil {
					return err
				}
				snap.records = append(snap.records, t)
				r := t.Replica
				r.Status = statuses[r.ID]
				if rec, ok := snap.services[r.Project][r.Service]; ok && bytes.Equal(template(t.Spec), template(rec.Spec)) {
					snap.current[r.ID] = true
				}
				snap.tasks = append(snap.tasks, r)
				return nil
			})
		},
		func() error {
			return list(store.NodesPrefix, func(kv store.KV) error {
				var n client.Node
				err := store.Decode(kv, &n)
				snap.nodes = append(snap.nodes, n)
				return err
			})
		},
		func() error {
			return list(store.CleanupPrefix, func(kv store.KV) error {
				snap.cleanups[store.Last(kv.Key)] = true
				return nil
			})
		},
	)
	if err != nil {
		return nil, err
	}
	sort.Slice(snap.tasks, func(i, j int) bool {
		a, b := snap.tasks[i], snap.tasks[j]
		if a.Project != b.Project {
			return a.Project < b.Project
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.Version < b.Version
	})
	return snap, nil
}

// template is a spec without its replica count: what makes two replicas
// interchangeable.
func template(spec client.ServiceSpec) []byte { return spec.Template() }

func firstErr(fns ...func() error) error {
	for _, f := range fns {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// projectNames lists every project the snapshot knows of, including ones
// being removed that still have replicas.
func (snap *snapshot) projectNames() []string {
	set := map[string]bool{}
	for p := range snap.projects {
		set[p] = true
	}
	for p := range snap.services {
		set[p] = true
	}
	for _, t := range snap.tasks {
		set[t.Project] = true
	}
	for p := range snap.cleanups {
		set[p] = true
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// project builds the view of one project; ok is false if nothing of it exists.
func (snap *snapshot) project(name string) (client.Project, bool) {
	rec, hasRec := snap.projects[name]
	v := client.Project{Name: name, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt, Removing: snap.cleanups[name]}
	byService := map[string][]client.Replica{}
	down := map[string]bool{}
	for _, n := range snap.nodes {
		down[n.ID] = n.Status == client.NodeDown
	}
	for _, t := range snap.tasks {
		if t.Project == name {
			if down[t.Node] && t.DesiredState == client.DesiredRunning {
				// Its last report is stale: say so rather than show it ready.
				t.Status.Ready = false
				t.Status.Message = snap.nodeDownMessage(t)
			}
			byService[t.Service] = append(byService[t.Service], t)
		}
	}
	names := map[string]bool{}
	for svc := range snap.services[name] {
		names[svc] = true
	}
	for svc := range byService {
		names[svc] = true
	}
	if !hasRec && len(names) == 0 && !v.Removing {
		return v, false
	}
	for svc := range names {
		rec, declared := snap.services[name][svc]
		sv := client.Service{Project: name, Name: svc, Spec: rec.Spec, Version: rec.Version, Previous: rec.Previous,
			Update: snap.updates[name+"/"+svc], Replicas: byService[svc]}
		if declared {
			sv.Desired = rec.Spec.Replicas
		}
		for _, r := range sv.Replicas {
			if r.DesiredState == client.DesiredRunning && r.Status.Ready && snap.current[r.ID] {
				sv.Ready++
			}
		}
		v.Services = append(v.Services, sv)
	}
	sort.Slice(v.Services, func(i, j int) bool { return v.Services[i].Name < v.Services[j].Name })
	return v, true
}

// nodeViews returns the nodes with their replica counts.
func (snap *snapshot) nodeViews() []client.Node {
	count := map[string]int{}
	for _, t := range snap.tasks {
		if t.DesiredState == client.DesiredRunning {
			count[t.Node]++
		}
	}
	out := make([]client.Node, len(snap.nodes))
	for i, n := range snap.nodes {
		n.Replicas = count[n.ID]
		out[i] = n
	}
	sort.Slice(out, func(i, j int) bool { return strings.Compare(out[i].ID, out[j].ID) < 0 })
	return out
}
