package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/compose"
	"github.com/ruche-platform/ruche/internal/store"
)

// deploy is PUT /v1/projects/{project}: a JSON client.DeployRequest, or a raw
// compose file (Content-Type application/yaml); ?dry_run=true makes either a
// dry run.
func (s *Server) deploy(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("project")
	req, err := s.decodeDeploy(r, name)
	if err != nil {
		s.m.deploys.WithLabelValues("rejected").Inc()
		return err
	}
	resp, err := s.applyDeploy(r.Context(), req)
	if err != nil {
		s.m.deploys.WithLabelValues("rejected").Inc()
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) decodeDeploy(r *http.Request, name string) (*client.DeployRequest, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var req client.DeployRequest
	dryRun, err := boolQuery(r, "dry_run")
	if err != nil {
		return nil, err
	}
	switch ct {
	case "", "application/json":
		if err := decodeBody(r, &req, "valid deploy request"); err != nil {
			return nil, err
		}
	case "application/yaml", "application/x-yaml", "text/yaml", "application/compose+yaml":
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		spec, err := compose.LoadBytes(r.Context(), "compose.yml", data, name, map[string]string{})
		if err != nil {
			var ce *compose.Error
			if errors.As(err, &ce) {
				lines := strings.Split(ce.Error(), "\n")
				return nil, invalid(lines[0], lines...)
			}
			return nil, invalid(err.Error())
		}
		req.Project = *spec
	default:
		return nil, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
			msg: "Content-Type must be application/json (a deploy request) or application/yaml (a compose file)"}
	}
	req.DryRun = req.DryRun || dryRun // ?dry_run=true holds for a JSON request too
	if req.Project.Name == "" {
		req.Project.Name = name
	}
	if req.Project.Name != name {
		return nil, invalid(fmt.Sprintf("project name %q in the body does not match %q in the path", req.Project.Name, name))
	}
	if err := req.Project.Validate(); err != nil {
		return nil, err
	}
	return &req, nil
}

// current is what the store holds for a project, with the revisions the
// deploy transaction compares against.
type current struct {
	project    store.ProjectRecord
	projectRev int64
	services   map[string]store.ServiceRecord
	serviceRev map[string]int64
	cleanup    bool
}

func (s *Server) loadCurrent(ctx context.Context, name string) (*current, error) {
	cur := &current{services: map[string]store.ServiceRecord{}, serviceRev: map[string]int64{}}
	rev, err := store.GetJSON(ctx, s.d.Store, store.ProjectKey(name), &cur.project)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	cur.projectRev = rev
	kvs, _, err := s.d.Store.List(ctx, store.ProjectServicesPrefix(name))
	if err != nil {
		return nil, err
	}
	for _, kv := range kvs {
		var rec store.ServiceRecord
		if err := store.Decode(kv, &rec); err != nil {
			return nil, err
		}
		svc := store.Last(kv.Key)
		cur.services[svc], cur.serviceRev[svc] = rec, kv.ModRevision
	}
	if _, err := s.d.Store.Get(ctx, store.CleanupKey(name)); err == nil {
		cur.cleanup = true
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return cur, nil
}

func (s *Server) applyDeploy(ctx context.Context, req *client.DeployRequest) (*client.DeployResponse, error) {
	p := &req.Project
	cur, err := s.loadCurrent(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	if cur.cleanup {
		return nil, conflict(fmt.Sprintf("project %s is being removed; wait until `ruche rm %s` has finished", p.Name, p.Name))
	}
	secretHashes, configHashes := hashes(p.Secrets), configHashesOf(p.Configs)
	routeKeys := stripRouteKeys(p)
	changes := diff(cur, p, secretHashes, configHashes, func() bool { return s.publishesRoutePorts(ctx) })
	if err := s.check(ctx, p, cur, changes); err != nil {
		return nil, err
	}
	resp := &client.DeployResponse{Project: p.Name, DryRun: req.DryRun, Changes: changes}
	if req.DryRun {
		if resp.Placements, err = s.dryRunPlacements(ctx, p, changes); err != nil {
			return nil, err
		}
		s.m.deploys.WithLabelValues("dry_run").Inc()
		return resp, nil
	}
	projectChanged := cur.projectRev == 0 || !sameProject(cur.project, p, secretHashes, configHashes)
	if !projectChanged && !anyChange(changes) {
		s.m.deploys.WithLabelValues("unchanged").Inc()
		return resp, nil
	}
	ops, err := s.deployOps(cur, p, changes, secretHashes, configHashes)
	if err != nil {
		return nil, err
	}
	fileOps, err := s.tlsFileOps(cur, p, changes, routeKeys)
	if err != nil {
		return nil, err
	}
	ops = append(ops, fileOps...)
	cmps := []store.Cmp{store.ModRevisionIs(store.ProjectKey(p.Name), cur.projectRev), store.ModRevisionIs(store.CleanupKey(p.Name), 0)}
	for _, c := range changes {
		cmps = append(cmps, store.ModRevisionIs(store.ServiceKey(p.Name, c.Service), cur.serviceRev[c.Service]))
	}
	rev, err := s.d.Store.Txn(ctx, cmps, ops...)
	if err != nil {
		return nil, err
	}
	resp.Revision = rev
	s.m.deploys.WithLabelValues("applied").Inc()
	s.d.Events.Record(ctx, client.Event{Type: "deploy", Action: "applied", Project: p.Name, Message: summary(changes)})
	return resp, nil
}

func (s *Server) deployOps(cur *current, p *client.ProjectSpec, changes []client.Change, secretHashes, configHashes map[string]string) ([]store.Op, error) {
	now := time.Now().UTC()
	rec := store.ProjectRecord{
		Name: p.Name, Volumes: p.Volumes, Networks: p.Networks,
		Secrets: secretHashes, Configs: configHashes, CreatedAt: cur.project.CreatedAt, UpdatedAt: now,
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = now
	}
	ops := []store.Op{store.Put(store.ProjectKey(p.Name), store.Encode(rec))}
	for _, c := range changes {
		key := store.ServiceKey(p.Name, c.Service)
		old, had := cur.services[c.Service]
		switch c.Kind {
		case client.ChangeRemove:
			ops = append(ops, store.Delete(key))
		case client.ChangeCreate:
			ops = append(ops, store.Put(key, store.Encode(store.ServiceRecord{Spec: p.Services[c.Service], Version: 1, UpdatedAt: now})))
		case client.ChangeUpdate:
			prev := old.Spec
			ops = append(ops, store.Put(key, store.Encode(store.ServiceRecord{
				Spec: p.Services[c.Service], Version: old.Version + 1,
				Previous: &prev, PreviousVersion: old.Version, UpdatedAt: now,
			})))
		case client.ChangeScale, client.ChangeRoutes:
			if !had {
				continue
			}
			old.Spec.Replicas = p.Services[c.Service].Replicas
			old.Spec.Routes = p.Services[c.Service].Routes
			old.UpdatedAt = now
			ops = append(ops, store.Put(key, store.Encode(old)))
		}
	}
	for name, sec := range p.Secrets {
		if cur.project.Secrets[name] == secretHashes[name] {
			continue
		}
		sealed, err := s.d.Secrets.Seal(sec.Data)
		if err != nil {
			return nil, fmt.Errorf("seal secret %s: %w", name, err)
		}
		ops = append(ops, store.Put(store.SecretKey(p.Name, name), store.Encode(store.SecretRecord{Sealed: sealed, Hash: secretHashes[name]})))
	}
	for name := range cur.project.Secrets {
		if _, ok := p.Secrets[name]; !ok {
			ops = append(ops, store.Delete(store.SecretKey(p.Name, name)))
		}
	}
	for name, cfg := range p.Configs {
		if cur.project.Configs[name] != configHashes[name] {
			ops = append(ops, store.Put(store.ConfigKey(p.Name, name), store.Encode(store.ConfigRecord{Data: cfg.Data, Hash: configHashes[name]})))
		}
	}
	for name := range cur.project.Configs {
		if _, ok := p.Configs[name]; !ok {
			ops = append(ops, store.Delete(store.ConfigKey(p.Name, name)))
		}
	}
	return ops, nil
}

// diff computes what a deploy changes, service by service, sorted by name.
// publishes (asked only when a route gains a target port) reports whether
// replicas publish their route ports for other nodes' ingress (see
// routePortAdded).
func diff(cur *current, p *client.ProjectSpec, secretHashes, configHashes map[string]string, publishes func() bool) []client.Change {
	var out []client.Change
	for name, spec := range p.Services {
		old, ok := cur.services[name]
		if !ok {
			out = append(out, client.Change{Service: name, Kind: client.ChangeCreate, To: spec.Replicas})
			continue
		}
		c := client.Change{Service: name, From: old.Spec.Replicas, To: spec.Replicas}
		c.Fields = changedFields(old.Spec, spec)
		for _, ref := range spec.Secrets {
			if cur.project.Secrets[ref.Source] != secretHashes[ref.Source] {
				c.Fields = appendUnique(c.Fields, "secret "+ref.Source)
			}
		}
		for _, ref := range spec.Configs {
			if cur.project.Configs[ref.Source] != configHashes[ref.Source] {
				c.Fields = appendUnique(c.Fields, "config "+ref.Source)
			}
		}
		switch {
		case len(c.Fields) > 0:
			c.Kind = client.ChangeUpdate
		case c.From != c.To:
			c.Kind = client.ChangeScale
		case string(store.Encode(old.Spec.Routes)) != string(store.Encode(spec.Routes)):
			c.Kind = client.ChangeRoutes
			if port := routePortAdded(old.Spec, spec); port != 0 && publishes() {
				c.Kind = client.ChangeUpdate
				c.Fields = []string{fmt.Sprintf("routes (new target port %d, which the replicas must publish for other nodes' ingress)", port)}
			}
		default:
			c.Kind = client.ChangeUnchanged
		}
		out = append(out, c)
	}
	for name, old := range cur.services {
		if _, ok := p.Services[name]; !ok {
			out = append(out, client.Change{Service: name, Kind: client.ChangeRemove, From: old.Spec.Replicas})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// routePortAdded returns a target port that b's routes have and a's do not
// (the lowest), or 0. A replica publishes its routes' target ports for the
// ingress of other nodes when its container is created (agent/routeports.go),
// and Docker cannot add a binding to a running container: so in a cluster a
// route to a new port replaces the replicas (a rolling update), while any
// other route change touches none. A service kept private publishes none.
func routePortAdded(a, b client.ServiceSpec) int {
	if pub := b.Ruche.Public; pub != nil && !*pub {
		return 0
	}
	had := map[int]bool{}
	for _, r := range a.Routes {
		had[int(r.Port)] = true
	}
	added := 0
	for _, r := range b.Routes {
		if p := int(r.Port); p != 0 && !had[p] && !publishedEverywhere(b.Ports, p) && (added == 0 || p < added) {
			added = p
		}
	}
	return added
}

// publishedEverywhere: the service publishes target port on every address
// itself, so other nodes reach it without a route port.
func publishedEverywhere(ports []client.PortSpec, target int) bool {
	for _, p := range ports {
		if int(p.Target) == target && (p.Protocol == "" || p.Protocol == "tcp") &&
			(p.HostIP == "" || p.HostIP == "0.0.0.0" || p.HostIP == "::") {
			return true
		}
	}
	return false
}

// publishesRoutePorts reports whether some node has an advertise address:
// then agents publish route ports. A failed read counts as yes (a needless
// rolling update, never a replica other nodes cannot reach).
func (s *Server) publishesRoutePorts(ctx context.Context) bool {
	kvs, _, err := s.d.Store.List(ctx, store.NodesPrefix)
	if err != nil {
		return true
	}
	for _, kv := range kvs {
		var n client.Node
		if store.Decode(kv, &n) == nil && n.Addr != "" {
			return true
		}
	}
	return false
}

// changedFields lists the top-level fields (JSON names) of the replica
// template that differ: a change of replicas alone is a scale, of routes
// alone a proxy change; neither is an update.
func changedFields(a, b client.ServiceSpec) []string {
	a.Replicas, b.Replicas = 0, 0
	a.Routes, b.Routes = nil, nil
	var ma, mb map[string]json.RawMessage
	json.Unmarshal(store.Encode(a), &ma)
	json.Unmarshal(store.Encode(b), &mb)
	var out []string
	for k, va := range ma {
		if vb, ok := mb[k]; !ok || string(va) != string(vb) {
			out = append(out, k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func anyChange(changes []client.Change) bool {
	return slices.ContainsFunc(changes, func(c client.Change) bool { return c.Kind != client.ChangeUnchanged })
}

func sameProject(rec store.ProjectRecord, p *client.ProjectSpec, secretHashes, configHashes map[string]string) bool {
	a := store.Encode(store.ProjectRecord{Volumes: rec.Volumes, Networks: rec.Networks, Secrets: rec.Secrets, Configs: rec.Configs})
	b := store.Encode(store.ProjectRecord{Volumes: p.Volumes, Networks: p.Networks, Secrets: secretHashes, Configs: configHashes})
	return string(a) == string(b)
}

func hashes(m map[string]client.SecretSpec) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = sum(v.Data)
	}
	return out
}

func configHashesOf(m map[string]client.ConfigSpec) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = sum(v.Data)
	}
	return out
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func summary(changes []client.Change) string {
	var parts []string
	for _, c := range changes {
		if c.Kind != client.ChangeUnchanged {
			parts = append(parts, c.Kind+" "+c.Service)
		}
	}
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, ", ")
}
