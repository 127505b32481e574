package apiserver

import (
	"net/http"
	"net/url"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/nodeapi"
	"github.com/ruche-platform/ruche/internal/store"
)

// metricsTargets is GET /v1/metrics/targets: where a Prometheus server
// scrapes the cluster, in the format of its http_sd_config. Every
// manager's /metrics is on its API (HTTPS, the cluster CA, no token);
// a node whose agent runs with --metrics-addr serves plain HTTP there.
// A listen address without a host (":9464") is reached at the node's
// advertise address.
func (s *Server) metricsTargets(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	out := client.MetricsTargets{}
	ms, err := s.managers(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		target := m.APIAddr
		if u, err := url.Parse(m.APIURL); err == nil && u.Host != "" {
			target = u.Host
		}
		if target == "" {
			continue
		}
		out = append(out, client.MetricsTargetGroup{Targets: []string{target},
			Labels: map[string]string{"__scheme__": "https", "ruche_manager": m.Name}})
	}
	kvs, _, err := s.d.Store.List(ctx, store.NodesPrefix)
	if err != nil {
		return err
	}
	for _, kv := range kvs { // sorted by key, so by node ID
		var n client.Node
		if store.Decode(kv, &n) != nil || n.MetricsAddr == "" {
			continue
		}
		target := n.MetricsAddr
		target = nodeapi.Reachable(target, n.Addr)
		out = append(out, client.MetricsTargetGroup{Targets: []string{target},
			Labels: map[string]string{"__scheme__": "http", "ruche_node": n.ID}})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
