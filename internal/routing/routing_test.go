package routing

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

func svc(routes ...client.RouteSpec) store.ServiceRecord {
	return store.ServiceRecord{Spec: client.ServiceSpec{Name: "web", Image: "x", Replicas: 2, Routes: routes}, Version: 1}
}

func task(id, node string, slot int, desired string) store.TaskRecord {
	return store.TaskRecord{Replica: client.Replica{ID: id, Project: "shop", Service: "web", Slot: slot, Node: node, DesiredState: desired}}
}

func TestBuild(t *testing.T) {
	route := client.RouteSpec{Host: "shop.example.org", Port: 8080}
	in := Input{
		Services: map[string]store.ServiceRecord{"shop/web": svc(route), "shop/db": {Spec: client.ServiceSpec{Name: "db"}}},
		Tasks: []store.TaskRecord{
			task("a", "n1", 1, client.DesiredRunning),
			task("b", "n1", 2, client.DesiredRunning),
			task("c", "n1", 3, client.DesiredShutdown),
			task("d", "n2", 4, client.DesiredRunning),
		},
		Statuses: map[string]client.ReplicaStatus{
			"a": {State: client.StateRunning, Ready: true, Addresses: map[string]string{"default": "172.20.0.2"}},
			"b": {State: client.StateStarting, Addresses: map[string]string{"back": "172.21.0.3"}},
			"c": {State: client.StateRunning, Ready: true, Addresses: map[string]string{"default": "172.20.0.4"}},
			"d": {State: client.StateRunning, Ready: true, Ports: []client.PortBinding{{Target: 8080, Published: 30001, Protocol: "tcp"}}},
		},
		Nodes:      map[string]client.Node{"n2": {ID: "n2", Addr: "192.0.2.10"}},
		LocalNode:  "n1",
		DefaultTLS: client.TLSNone,
	}
	tbl := Build(in, 7)
	if len(tbl.Routes) != 1 {
		t.Fatalf("got %d routes, want 1 (only web has one)", len(tbl.Routes))
	}
	r := tbl.Routes[0]
	if r.TLS != client.TLSNone || r.Host != "shop.example.org" || tbl.Revision != 7 {
		t.Fatalf("route %+v", r)
	}
	got := map[string]Backend{}
	for _, b := range r.Backends {
		got[b.TaskID] = b
	}
	for _, tc := range []struct {
		id, addr string
		ready    bool
	}{
		{"a", "172.20.0.2:8080", true},
		{"b", "172.21.0.3:8080", false},
		{"d", "192.0.2.10:30001", true},
	} {
		b, ok := got[tc.id]
		if !ok || b.Addr != tc.addr || b.Ready != tc.ready {
			t.Errorf("backend %s: got %+v, want addr %s ready %v", tc.id, b, tc.addr, tc.ready)
		}
	}
	if _, ok := got["c"]; ok {
		t.Error("a task being shut down is still a backend")
	}
	in.Nodes["n2"] = client.Node{ID: "n2", Addr: "192.0.2.10", Status: client.NodeDown}
	for _, b := range Build(in, 8).Routes[0].Backends {
		if b.TaskID == "d" && b.Ready {
			t.Error("a replica on a down node is still ready for traffic")
		}
	}
	in.Nodes["n2"] = client.Node{ID: "n2", Addr: "192.0.2.10"}
	// Both nodes on the mesh: d at its private address, over WireGuard.
	in.Statuses["d"] = client.ReplicaStatus{State: client.StateRunning, Ready: true, Addresses: map[string]string{"default": "10.208.3.2"}}
	in.Mesh = map[string]bool{"n1": true, "n2": true}
	for _, b := range Build(in, 9).Routes[0].Backends {
		if b.TaskID == "d" && b.Addr != "10.208.3.2:8080" {
			t.Errorf("a replica of a mesh node from a mesh node: %q, want its private address", b.Addr)
		}
	}
	in.Mesh = map[string]bool{"n2": true} // this node is not on the mesh
	for _, b := range Build(in, 10).Routes[0].Backends {
		if b.TaskID == "d" && b.Addr != "" {
			t.Errorf("a replica of a mesh node from a node off the mesh, with no published port: %q, want none", b.Addr)
		}
	}
	in.Mesh = nil
	private := false
	hidden := svc(route)
	hidden.Spec.Ruche.Public = &private
	in.Services["shop/web"] = hidden
	if n := len(Build(in, 8).Routes); n != 0 {
		t.Errorf("x-ruche.public: false still routed (%d routes)", n)
	}
	in.Services["shop/web"] = svc(route)
	in.DefaultTLS = client.TLSACME
	if r := Build(in, 8).Routes[0]; r.TLS != client.TLSACME {
		t.Errorf("auto TLS with an ACME issuer: got %q", r.TLS)
	}
}

func TestWatcherFollowsTheStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := store.NewMemory()
		defer st.Close()
		put := func(key string, v any) {
			if _, err := st.Txn(ctx, nil, store.Put(key, store.Encode(v))); err != nil {
				t.Fatal(err)
			}
		}
		put(store.ServiceKey("shop", "web"), svc(client.RouteSpec{Host: "a.test", Port: 80}))
		tables := make(chan *Table, 16)
		w := New(Config{LocalNode: "n1"}, Deps{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnChange: func(t *Table) { tables <- t }})
		go w.Run(ctx)
		synctest.Wait()
		if first := <-tables; len(first.Routes) != 1 || len(first.Routes[0].Backends) != 0 {
			t.Fatalf("first table: %+v", first)
		}
		tk := task("a", "n1", 1, client.DesiredRunning)
		put(store.TaskKey("n1", "a"), tk)
		put(store.TaskStatusKey("a"), client.ReplicaStatus{State: client.StateRunning, Ready: true, Addresses: map[string]string{"default": "10.1.0.2"}})
		synctest.Wait()
		var last *Table
		for len(tables) > 0 {
			last = <-tables
		}
		if last == nil || len(last.Routes[0].Backends) != 1 || !last.Routes[0].Backends[0].Ready {
			t.Fatalf("after the replica became ready: %+v", last)
		}
		tk.DesiredState = client.DesiredShutdown
		put(store.TaskKey("n1", "a"), tk)
		synctest.Wait()
		if got := <-tables; len(got.Routes[0].Backends) != 0 {
			t.Fatalf("a replica told to shut down is still routed: %+v", got.Routes[0].Backends)
		}
		// A write that changes nothing routing cares about emits nothing.
		put(store.ProjectKey("shop"), store.ProjectRecord{Name: "shop"})
		synctest.Wait()
		if len(tables) != 0 {
			t.Fatalf("an unrelated write emitted a table")
		}
	})
}

func TestRemotePort(t *testing.T) {
	tests := []struct {
		name     string
		ports    []client.PortBinding
		nodeAddr string
		want     uint16
	}{
		{name: "none", nodeAddr: "192.0.2.10"},
		{
			name:     "the route binding over the service's own port",
			ports:    []client.PortBinding{{Target: 80, Published: 8080, Protocol: "tcp", HostIP: "0.0.0.0"}, {Target: 80, Published: 40000, Protocol: "tcp", HostIP: "192.0.2.10", Route: true}},
			nodeAddr: "192.0.2.10",
			want:     40000,
		},
		{
			name:     "the service's own port on every address (older agents)",
			ports:    []client.PortBinding{{Target: 80, Published: 8080, Protocol: "tcp", HostIP: "0.0.0.0"}},
			nodeAddr: "192.0.2.10",
			want:     8080,
		},
		{
			name:     "no host address",
			ports:    []client.PortBinding{{Target: 80, Published: 8080, Protocol: "tcp"}},
			nodeAddr: "192.0.2.10",
			want:     8080,
		},
		{
			name:     "loopback binding unreachable from elsewhere",
			ports:    []client.PortBinding{{Target: 80, Published: 8080, Protocol: "tcp", HostIP: "127.0.0.1"}},
			nodeAddr: "192.0.2.10",
		},
		{
			name:     "ipv6 wildcard skipped for an ipv4 node",
			ports:    []client.PortBinding{{Target: 80, Published: 8081, Protocol: "tcp", HostIP: "::"}, {Target: 80, Published: 8080, Protocol: "tcp", HostIP: "0.0.0.0"}},
			nodeAddr: "192.0.2.10",
			want:     8080,
		},
		{
			name:     "udp and other targets ignored",
			ports:    []client.PortBinding{{Target: 80, Published: 8080, Protocol: "udp", HostIP: "0.0.0.0"}, {Target: 81, Published: 8081, Protocol: "tcp", Route: true}},
			nodeAddr: "192.0.2.10",
		},
		{
			name:     "the node's own address",
			ports:    []client.PortBinding{{Target: 80, Published: 8080, Protocol: "tcp", HostIP: "192.0.2.10"}},
			nodeAddr: "192.0.2.10",
			want:     8080,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := remotePort(tt.ports, 80, tt.nodeAddr)
			if got != tt.want || ok != (tt.want != 0) {
				t.Errorf("got %d %v, want %d", got, ok, tt.want)
			}
		})
	}
}

// TestBuildOrdersClaimsOfOneHostAndPath: two projects routing the same
// host and path (deploys that raced past the API server's check) come
// out in one order, whatever the map order of the services: the proxy
// serves the first, and every node and every rebuild must pick the same.
func TestBuildOrdersClaimsOfOneHostAndPath(t *testing.T) {
	route := client.RouteSpec{Host: "pad.example.org", PathPrefix: "/api", Port: 8080}
	in := Input{Services: map[string]store.ServiceRecord{}, DefaultTLS: client.TLSNone}
	for _, key := range []string{"zeta/web", "alpha/web", "mid/api", "mid/web", "beta/web", "omega/web"} {
		in.Services[key] = svc(route)
	}
	want := []string{"alpha/web", "beta/web", "mid/api", "mid/web", "omega/web", "zeta/web"}
	for range 20 {
		var got []string
		for _, r := range Build(in, 1).Routes {
			got = append(got, r.Project+"/"+r.Service)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("order: got %v, want %v", got, want)
		}
	}
}
