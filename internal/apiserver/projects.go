package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) error {
	snap, err := s.loadSnapshot(r.Context())
	if err != nil {
		return err
	}
	out := []client.Project{}
	for _, name := range snap.projectNames() {
		if v, ok := snap.project(name); ok {
			out = append(out, v)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) error {
	snap, err := s.loadSnapshot(r.Context())
	if err != nil {
		return err
	}
	name := r.PathValue("project")
	v, ok := snap.project(name)
	if !ok {
		return notFound("no such project: " + name)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// serviceRecord reads a service's record for a change.
func (s *Server) serviceRecord(r *http.Request) (project, service string, rec store.ServiceRecord, rev int64, err error) {
	project, service = r.PathValue("project"), r.PathValue("service")
	rev, err = store.GetJSON(r.Context(), s.d.Store, store.ServiceKey(project, service), &rec)
	if errors.Is(err, store.ErrNotFound) {
		err = notFound(fmt.Sprintf("no such service: %s/%s", project, service))
	}
	return project, service, rec, rev, err
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) error {
	var req client.ScaleRequest
	if err := decodeBody(r, &req, "scale request"); err != nil {
		return err
	}
	if req.Replicas < 0 || req.Replicas > client.MaxReplicas {
		return invalid(fmt.Sprintf("replicas must be between 0 and %d, got %d", client.MaxReplicas, req.Replicas))
	}
	project, service, rec, rev, err := s.serviceRecord(r)
	if err != nil {
		return err
	}
	from := rec.Spec.Replicas
	var written int64
	if from != req.Replicas {
		rec.Spec.Replicas = req.Replicas
		cur := &current{services: map[string]store.ServiceRecord{service: rec}, serviceRev: map[string]int64{}}
		p := &client.ProjectSpec{Name: project, Services: map[string]client.ServiceSpec{service: rec.Spec}}
		if err := s.check(r.Context(), p, cur, []client.Change{{Service: service, Kind: client.ChangeScale, From: from, To: req.Replicas}}); err != nil {
			return err
		}
		rec.UpdatedAt = time.Now().UTC()
		if written, err = s.d.Store.Txn(r.Context(), []store.Cmp{store.ModRevisionIs(store.ServiceKey(project, service), rev)},
			store.Put(store.ServiceKey(project, service), store.Encode(rec))); err != nil {
			return err
		}
		s.d.Events.Record(r.Context(), client.Event{Type: "service", Action: "scale", Project: project, Service: service,
			Message: fmt.Sprintf("replicas %d -> %d", from, req.Replicas)})
	}
	writeJSON(w, http.StatusOK, client.Change{Service: service, Kind: client.ChangeScale, From: from, To: req.Replicas, Revision: written})
	return nil
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) error {
	project, service, rec, rev, err := s.serviceRecord(r)
	if err != nil {
		return err
	}
	if rec.Previous == nil {
		return conflict(fmt.Sprintf("service %s/%s has no previous version to roll back to", project, service))
	}
	prev := *rec.Previous
	prev.Replicas = rec.Spec.Replicas
	failed := rec.Spec
	next := store.ServiceRecord{Spec: prev, Version: rec.Version + 1, Previous: &failed, PreviousVersion: rec.Version,
		Rollback: true, UpdatedAt: time.Now().UTC()}
	written, err := s.d.Store.Txn(r.Context(), []store.Cmp{store.ModRevisionIs(store.ServiceKey(project, service), rev)},
		store.Put(store.ServiceKey(project, service), store.Encode(next)))
	if err != nil {
		return err
	}
	s.d.Events.Record(r.Context(), client.Event{Type: "service", Action: "rollback", Project: project, Service: service,
		Message: fmt.Sprintf("version %d back to the spec of version %d, as version %d", rec.Version, rec.PreviousVersion, next.Version)})
	writeJSON(w, http.StatusOK, client.Change{Service: service, Kind: client.ChangeUpdate, Fields: changedFields(rec.Spec, prev),
		From: rec.Spec.Replicas, To: prev.Replicas, Revision: written})
	return nil
}

// removeProject is DELETE /v1/projects/{project}[?volumes=true]: it removes
// the desired state at once; the controller then stops the replicas and the
// agents remove networks (and volumes, only if asked) once they are gone.
func (s *Server) removeProject(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("project")
	volumes, err := boolQuery(r, "volumes")
	if err != nil {
		return err
	}
	cur, err := s.loadCurrent(r.Context(), name)
	if err != nil {
		return err
	}
	if cur.projectRev == 0 && len(cur.services) == 0 {
		if cur.cleanup {
			return conflict(fmt.Sprintf("project %s is already being removed", name))
		}
		return notFound("no such project: " + name)
	}
	nodes, _, err := s.d.Store.List(r.Context(), store.NodesPrefix)
	if err != nil {
		return err
	}
	cl := store.CleanupRecord{Project: name, Volumes: volumes, Created: time.Now().UTC()}
	for _, kv := range nodes {
		cl.Nodes = append(cl.Nodes, store.Last(kv.Key))
	}
	cmps := []store.Cmp{store.ModRevisionIs(store.ProjectKey(name), cur.projectRev), store.ModRevisionIs(store.CleanupKey(name), 0)}
	ops := []store.Op{store.Delete(store.ProjectKey(name)), store.Put(store.CleanupKey(name), store.Encode(cl)),
		store.DeletePrefix(store.SecretKey(name, "")), store.DeletePrefix(store.ConfigKey(name, ""))}
	ops = append(ops, removeTLSFileOps(cur)...)
	var changes []client.Change
	for svc, rec := range cur.services {
		cmps = append(cmps, store.ModRevisionIs(store.ServiceKey(name, svc), cur.serviceRev[svc]))
		ops = append(ops, store.Delete(store.ServiceKey(name, svc)))
		changes = append(changes, client.Change{Service: svc, Kind: client.ChangeRemove, From: rec.Spec.Replicas})
	}
	written, err := s.d.Store.Txn(r.Context(), cmps, ops...)
	if err != nil {
		return err
	}
	msg := "services and networks removed, volumes kept"
	if volumes {
		msg = "services, networks and volumes removed"
	}
	s.d.Events.Record(r.Context(), client.Event{Type: "project", Action: "remove", Project: name, Message: msg})
	writeJSON(w, http.StatusOK, client.DeployResponse{Project: name, Changes: changes, Revision: written})
	return nil
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	snap, err := s.loadSnapshot(r.Context())
	if err != nil {
		return err
	}
	st := client.Status{Version: s.cfg.Version, ClusterID: s.cfg.ClusterID, Nodes: s.withLoad(snap.nodeViews())}
	if st.Managers, err = s.managers(r.Context()); err != nil {
		return err
	}
	for _, m := range st.Managers {
		if m.Leader {
			st.Leader = m.Name
		}
	}
	for _, name := range snap.projectNames() {
		v, ok := snap.project(name)
		if !ok {
			continue
		}
		st.Projects++
		for _, svc := range v.Services {
			st.Services++
			st.Ready += svc.Ready
			st.Replicas += svc.Desired
		}
	}
	if s.d.StoreStatus != nil {
		st.Store = s.d.StoreStatus(r.Context())
	}
	nets, err := s.clusterNetworks(r.Context())
	if err != nil {
		return err
	}
	st.Networks, st.PrivateRange = nets.Mode, nets.Range
	writeJSON(w, http.StatusOK, st)
	return nil
}
