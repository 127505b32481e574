package apiserver

import (
	"net/http"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/routing"
	"github.com/ruche-platform/ruche/internal/store"
)

// listRoutes is GET /v1/routes: every route, its replicas and their state,
// as the routing view of this manager's node sees them.
func (s *Server) listRoutes(w http.ResponseWriter, r *http.Request) error {
	snap, err := s.loadSnapshot(r.Context())
	if err != nil {
		return err
	}
	services := map[string]store.ServiceRecord{}
	for p, svcs := range snap.services {
		for name, rec := range svcs {
			services[p+"/"+name] = rec
		}
	}
	nodes := map[string]client.Node{}
	for _, n := range snap.nodes {
		nodes[n.ID] = n
	}
	tbl := routing.Build(routing.Input{Services: services, Tasks: snap.records, Statuses: snap.statuses, Nodes: nodes,
		LocalNode: s.cfg.ManagerName, DefaultTLS: s.cfg.DefaultTLS}, 0)
	out := make([]client.Route, 0, len(tbl.Routes))
	for _, rt := range tbl.Routes {
		cr := client.Route{Host: rt.Host, PathPrefix: rt.PathPrefix, Project: rt.Project, Service: rt.Service, Port: rt.Port,
			TLS: rt.TLS, Replicas: []client.RouteReplica{}}
		for _, b := range rt.Backends {
			cr.Replicas = append(cr.Replicas, client.RouteReplica{Name: b.Name, Node: b.Node, Addr: b.Addr, State: b.State, Ready: b.Ready})
		}
		out = append(out, cr)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
