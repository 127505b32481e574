package apiserver

import (
	"fmt"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/certs"
	"github.com/ruche-platform/ruche/internal/store"
)

// stripRouteKeys takes the private keys of "files" routes out of the spec
// (they must never be stored in a service record) and returns them by host.
func stripRouteKeys(p *client.ProjectSpec) map[string][]byte {
	keys := map[string][]byte{}
	for name, svc := range p.Services {
		routes := append([]client.RouteSpec(nil), svc.Routes...)
		for i, r := range routes {
			if r.TLS == client.TLSFiles && len(r.Key) > 0 {
				keys[r.Host] = r.Key
				routes[i].Key = nil
			}
		}
		svc.Routes = routes
		p.Services[name] = svc
	}
	return keys
}

// tlsFileOps writes a sealed FilesRecord for each "files" route of the
// services the deploy creates or changes, and deletes those of routes that
// go away.
func (s *Server) tlsFileOps(cur *current, p *client.ProjectSpec, changes []client.Change, keys map[string][]byte) ([]store.Op, error) {
	var ops []store.Op
	wanted := map[string]bool{}
	for _, svc := range p.Services {
		for _, r := range svc.Routes {
			if r.TLS == client.TLSFiles {
				wanted[r.Host] = true
			}
		}
	}
	for _, c := range changes {
		if c.Kind == client.ChangeRemove || c.Kind == client.ChangeUnchanged {
			continue
		}
		for _, r := range p.Services[c.Service].Routes {
			key, ok := keys[r.Host]
			if r.TLS != client.TLSFiles || !ok {
				continue
			}
			sealed, err := s.d.Secrets.Seal(key)
			if err != nil {
				return nil, fmt.Errorf("seal the key of %s: %w", r.Host, err)
			}
			ops = append(ops, store.Put(certs.FilesKey(r.Host), store.Encode(certs.FilesRecord{
				Cert: r.Cert, SealedKey: sealed, Project: p.Name, Service: c.Service})))
		}
	}
	for _, rec := range cur.services {
		for _, r := range rec.Spec.Routes {
			if r.TLS == client.TLSFiles && !wanted[r.Host] {
				ops = append(ops, store.Delete(certs.FilesKey(r.Host)))
			}
		}
	}
	return ops, nil
}

// removeTLSFileOps deletes the certificates of a removed project's routes.
func removeTLSFileOps(cur *current) []store.Op {
	var ops []store.Op
	for _, rec := range cur.services {
		for _, r := range rec.Spec.Routes {
			if r.TLS == client.TLSFiles {
				ops = append(ops, store.Delete(certs.FilesKey(r.Host)))
			}
		}
	}
	return ops
}
