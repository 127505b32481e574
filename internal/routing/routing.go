// Package routing derives the ingress routing table from the store: for
// every route of every service, the replicas that may take traffic and how
// to reach them. The proxy and the certificate manager consume it; neither
// reads the store.
//
// A replica is a backend only while its task is meant to run
// (DesiredState running) and its agent reports it Ready. So a replica told
// to shut down leaves the table at once, before its agent stops it; the agent
// then drains it through the proxy. A replica on this node is reached at its
// container address on its project network; a replica on another node
// through the port its agent publishes on that node, or, when both nodes
// are on the WireGuard mesh of ruche's networks, at its private address.
package routing

import (
	"net"
	"net/netip"
	"sort"
	"strconv"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// Backend is one replica behind a route.
type Backend struct {
	TaskID string `json:"task_id"`
	Name   string `json:"name"` // "web.2"
	Node   string `json:"node"`
	Addr   string `json:"addr,omitempty"` // host:port; empty if it cannot be reached from this node
	Ready  bool   `json:"ready"`
	State  string `json:"state,omitempty"`
}

// Route is one host (and path prefix) and where its requests go.
// Routes (and their backends) go to agents as JSON (the agent API's route
// stream), hence the tags.
type Route struct {
	Project    string `json:"project"`
	Service    string `json:"service"`
	Host       string `json:"host"`
	PathPrefix string `json:"path_prefix,omitempty"`
	Port       uint16 `json:"port"`
	TLS        string `json:"tls"` // resolved: client.TLSACME, TLSInternal, TLSFiles or TLSNone
	// Backends holds every replica of the service meant to run; only the
	// Ready ones with an Addr take traffic.
	Backends []Backend `json:"backends"`
}

// Table is the routing table at a store revision.
type Table struct {
	Revision int64
	Routes   []Route
}

// Input is what a table is built from.
type Input struct {
	Services map[string]store.ServiceRecord // "project/service"
	Tasks    []store.TaskRecord
	Statuses map[string]client.ReplicaStatus // by task ID
	Nodes    map[string]client.Node
	// Mesh says which nodes are on the WireGuard mesh of ruche's networks
	// (a mesh record with a key): between two of them, a replica is
	// reached at its private address.
	Mesh map[string]bool
	// LocalNode is the node the table is for.
	LocalNode string
	// DefaultTLS is what TLS "" (auto) means: client.TLSACME when an ACME
	// issuer is configured, else client.TLSNone.
	DefaultTLS string
}

// Build computes the table. It is pure.
func Build(in Input, rev int64) *Table {
	byService := map[string][]store.TaskRecord{}
	for _, t := range in.Tasks {
		if t.DesiredState == client.DesiredRunning {
			k := t.Project + "/" + t.Service
			byService[k] = append(byService[k], t)
		}
	}
	t := &Table{Revision: rev}
	for key, rec := range in.Services {
		if pub := rec.Spec.Ruche.Public; pub != nil && !*pub {
			continue // x-ruche.public: false keeps it private whatever it declares
		}
		project, service := split(key)
		for _, r := range rec.Spec.Routes {
			route := Route{Project: project, Service: service, Host: r.Host, PathPrefix: r.PathPrefix, Port: r.Port, TLS: r.TLS}
			if route.TLS == client.TLSAuto {
				route.TLS = in.DefaultTLS
			}
			if route.TLS == "" {
				route.TLS = client.TLSNone
			}
			for _, task := range byService[key] {
				st := in.Statuses[task.ID]
				b := Backend{TaskID: task.ID, Name: task.Name(), Node: task.Node, Ready: st.Ready, State: st.State}
				if n, ok := in.Nodes[task.Node]; ok && n.Status == client.NodeDown {
					// Its last report said ready, but nobody hears from
					// the node: a replica waiting there for its volume
					// keeps its task and must not take traffic.
					b.Ready, b.State = false, "node down"
				}
				b.Addr = addr(task, st, r.Port, in)
				route.Backends = append(route.Backends, b)
			}
			sort.Slice(route.Backends, func(i, j int) bool { return route.Backends[i].Name < route.Backends[j].Name })
			t.Routes = append(t.Routes, route)
		}
	}
	// Ordered in full, down to the service: when two projects route one
	// host and path (deploys that raced past the API server's check), the
	// proxy serves the first, and every node and rebuild must agree.
	sort.Slice(t.Routes, func(i, j int) bool {
		a, b := t.Routes[i], t.Routes[j]
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		if a.PathPrefix != b.PathPrefix {
			return a.PathPrefix < b.PathPrefix
		}
		if a.Project != b.Project {
			return a.Project < b.Project
		}
		return a.Service < b.Service
	})
	return t
}

// addr is how this node reaches the replica's port.
func addr(task store.TaskRecord, st client.ReplicaStatus, port uint16, in Input) string {
	if task.Node == in.LocalNode {
		ip := containerIP(task, st)
		if ip == "" {
			return ""
		}
		return net.JoinHostPort(ip, strconv.Itoa(int(port)))
	}
	if in.Mesh[task.Node] && in.Mesh[in.LocalNode] {
		if ip := containerIP(task, st); ip != "" {
			return net.JoinHostPort(ip, strconv.Itoa(int(port)))
		}
	}
	node, ok := in.Nodes[task.Node]
	if !ok || node.Addr == "" {
		return ""
	}
	if p, ok := remotePort(st.Ports, port, node.Addr); ok {
		return net.JoinHostPort(node.Addr, strconv.Itoa(int(p)))
	}
	return ""
}

// remotePort picks the host port that reaches a replica's target port from
// another node: the binding its agent published for routes (PortBinding.Route)
// first, else one the service publishes itself on every address or on the
// node's address. A binding on another address (127.0.0.1) is not
// reachable from elsewhere.
func remotePort(ps []client.PortBinding, target uint16, nodeAddr string) (uint16, bool) {
	var fallback uint16
	for _, p := range ps {
		if p.Target != target || (p.Protocol != "" && p.Protocol != "tcp") || p.Published == 0 {
			continue
		}
		if p.Route {
			return p.Published, true
		}
		if fallback == 0 && reachable(p.HostIP, nodeAddr) {
			fallback = p.Published
		}
	}
	return fallback, fallback != 0
}

// reachable reports whether a port bound on hostIP is reached at nodeAddr.
func reachable(hostIP, nodeAddr string) bool {
	h, err := netip.ParseAddr(hostIP)
	if hostIP == "" || (err == nil && h.IsUnspecified()) {
		n, nerr := netip.ParseAddr(nodeAddr)
		// Docker's "::" binding is IPv6 only; "0.0.0.0" IPv4 only.
		return hostIP == "" || nerr != nil || h.Is4() == n.Unmap().Is4()
	}
	n, err2 := netip.ParseAddr(nodeAddr)
	return err == nil && err2 == nil && h == n.Unmap()
}

// containerIP picks the replica's address on its first project network (in
// the order of its spec, "default" first), where its service port listens.
func containerIP(task store.TaskRecord, st client.ReplicaStatus) string {
	if ip := st.Addresses["default"]; ip != "" {
		return ip
	}
	names := make([]string, 0, len(st.Addresses))
	for n := range st.Addresses {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if st.Addresses[n] != "" {
			return st.Addresses[n]
		}
	}
	return ""
}

func split(key string) (string, string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}
