package apiserver

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/store"
)

// portKey is a published host port.
type portKey struct {
	proto string
	port  uint16
}

func (k portKey) String() string { return fmt.Sprintf("%d/%s", k.port, k.proto) }

func publishedPorts(spec client.ServiceSpec) []portKey {
	var out []portKey
	for _, p := range spec.Ports {
		if p.Published == 0 {
			continue
		}
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, portKey{proto, p.Published})
	}
	return out
}

// check does what validation of the spec alone cannot: images exist, host
// ports are free, and what asks for more nodes than there are. It collects
// every problem.
func (s *Server) check(ctx context.Context, p *client.ProjectSpec, cur *current, changes []client.Change) error {
	var problems []string
	owners, routeOwners, hostOwners, err := s.owners(ctx, p.Name)
	if err != nil {
		return err
	}
	nodes, err := s.readyNodes(ctx)
	if err != nil {
		return err
	}
	clash, err := s.networkClashes(ctx, p)
	if err != nil {
		return err
	}
	problems = append(problems, clash...)
	checkedImages := map[string]bool{}
	for _, c := range changes {
		if c.Kind == client.ChangeRemove || c.Kind == client.ChangeUnchanged {
			continue
		}
		spec := p.Services[c.Service]
		if s.d.Checker != nil && (c.Kind == client.ChangeCreate || c.Kind == client.ChangeUpdate) && !checkedImages[spec.Image] {
			checkedImages[spec.Image] = true
			if err := s.d.Checker.CheckImage(ctx, spec.Image); err != nil {
				problems = append(problems, fmt.Sprintf("service %s: %v", c.Service, err))
			}
		}
		for _, r := range spec.Routes {
			if owner, ok := routeOwners[r.Claim()]; ok {
				problems = append(problems, fmt.Sprintf("service %s: route %s%s is already served by %s", c.Service, r.Host, r.PathPrefix, owner))
			}
			for _, o := range hostOwners[r.Host] {
				if tlsDisagree(r.TLS, o.tls) {
					problems = append(problems, fmt.Sprintf("service %s: host %s has tls %s here but %s on %s: the routes of a host share its certificate", c.Service, r.Host, r.TLS, o.tls, o.owner))
					break
				}
			}
		}
		old, had := cur.services[c.Service]
		for _, k := range publishedPorts(spec) {
			if owner, ok := owners[k]; ok {
				problems = append(problems, fmt.Sprintf("service %s: host port %s is already used by %s", c.Service, k, owner))
				continue
			}
			if had && containsPort(publishedPorts(old.Spec), k) {
				continue // its own replicas hold it
			}
			if s.d.Checker != nil {
				if err := s.d.Checker.CheckPort(ctx, k.proto, "", k.port); err != nil {
					problems = append(problems, fmt.Sprintf("service %s: host port %s: %v", c.Service, k, err))
				}
			}
		}
		if msg := client.FixedPortProblem(spec, nodes); msg != "" {
			problems = append(problems, fmt.Sprintf("service %s: %s", c.Service, msg))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	msg := problems[0]
	if len(problems) > 1 {
		msg = fmt.Sprintf("%d problems: %s", len(problems), strings.Join(problems, "; "))
	}
	return invalid(msg, problems...)
}

func containsPort(ks []portKey, k portKey) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// hostUse is a route of another project on a host, for the TLS check.
type hostUse struct {
	owner string // "project/service"
	tls   string
}

// tlsDisagree reports whether two routes of one host, in different
// projects, cannot share its certificate: explicit modes that differ, or
// certificate files on both (a host has one FilesRecord, which names one
// project). TLS "" (the platform's default) goes with any mode, as within
// a project (client.ProjectSpec.Validate).
func tlsDisagree(a, b string) bool {
	if a == client.TLSAuto || b == client.TLSAuto {
		return false
	}
	return a != b || a == client.TLSFiles
}

// owners maps each host port published, and each route (host+path)
// served, by a service of another project to "project/service", and each
// host to the routes other projects have on it.
func (s *Server) owners(ctx context.Context, project string) (map[portKey]string, map[string]string, map[string][]hostUse, error) {
	kvs, _, err := s.d.Store.List(ctx, store.ServicesPrefix)
	if err != nil {
		return nil, nil, nil, err
	}
	out, routes, hosts := map[portKey]string{}, map[string]string{}, map[string][]hostUse{}
	for _, kv := range kvs {
		p, svc, ok := store.SplitService(kv.Key)
		if !ok || p == project {
			continue
		}
		var rec store.ServiceRecord
		if err := store.Decode(kv, &rec); err != nil {
			return nil, nil, nil, err
		}
		for _, k := range publishedPorts(rec.Spec) {
			out[k] = p + "/" + svc
		}
		for _, r := range rec.Spec.Routes {
			routes[r.Claim()] = p + "/" + svc
			hosts[r.Host] = append(hosts[r.Host], hostUse{owner: p + "/" + svc, tls: r.TLS})
		}
	}
	return out, routes, hosts, nil
}

// networkClashes finds the networks of p whose engine name (and bridge,
// and subnet) is also a network's of another project: the name joins
// project and network with '-', which both may contain, so project a-b's
// network c and project a's network b-c would be one network.
func (s *Server) networkClashes(ctx context.Context, p *client.ProjectSpec) ([]string, error) {
	kvs, _, err := s.d.Store.List(ctx, store.ProjectsPrefix)
	if err != nil {
		return nil, err
	}
	others := map[string]string{} // engine name -> "project's network n"
	for _, kv := range kvs {
		var rec store.ProjectRecord
		if err := store.Decode(kv, &rec); err != nil {
			return nil, err
		}
		if rec.Name == p.Name {
			continue
		}
		for n := range withDefault(rec.Networks) {
			others[agent.NetworkName(rec.Name, n)] = fmt.Sprintf("project %s's network %s", rec.Name, n)
		}
	}
	var problems []string
	for n := range withDefault(p.Networks) {
		if o, ok := others[agent.NetworkName(p.Name, n)]; ok {
			problems = append(problems, fmt.Sprintf("network %s: its engine name %s is also %s's (names join project and network with '-'): rename the project or the network", n, agent.NetworkName(p.Name, n), o))
		}
	}
	return problems, nil
}

// withDefault is a project's networks and "default", which its services
// join when they name none.
func withDefault(nets map[string]client.NetworkSpec) map[string]bool {
	out := map[string]bool{"default": true}
	for n := range nets {
		out[n] = true
	}
	return out
}

func (s *Server) readyNodes(ctx context.Context) (int, error) {
	kvs, _, err := s.d.Store.List(ctx, store.NodesPrefix)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, kv := range kvs {
		var node client.Node
		if err := store.Decode(kv, &node); err != nil {
			return 0, err
		}
		if node.TakesReplicas() {
			n++
		}
	}
	return n, nil
}
