package apiserver

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/routing"
	"github.com/ruche-platform/ruche/internal/store"
)

// TestAgentRoutes: a joined node follows its routing table over mutual
// TLS: its own replica at the container address, another node's through
// the route port that node's agent published; every change is a new
// table. Another node's certificate gets nothing.
func TestAgentRoutes(t *testing.T) {
	e := newTLSEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cert2 := e.mustJoin("n2")
	cert3 := e.mustJoin("n3")
	put := func(key string, v any) {
		t.Helper()
		if _, err := e.st.Txn(ctx, nil, store.Put(key, store.Encode(v))); err != nil {
			t.Fatal(err)
		}
	}
	put(store.NodeKey("n1"), client.Node{ID: "n1", Addr: "192.0.2.1"})
	put(store.ServiceKey("shop", "web"), store.ServiceRecord{Spec: client.ServiceSpec{Name: "web", Image: "x", Replicas: 2,
		Routes: []client.RouteSpec{{Host: "shop.test", Port: 8080}}}, Version: 1})
	for _, tk := range []store.TaskRecord{
		{Replica: client.Replica{ID: "shop.web.1.a", Project: "shop", Service: "web", Slot: 1, Node: "n1", DesiredState: client.DesiredRunning}},
		{Replica: client.Replica{ID: "shop.web.2.b", Project: "shop", Service: "web", Slot: 2, Node: "n2", DesiredState: client.DesiredRunning}},
	} {
		put(store.TaskKey(tk.Node, tk.ID), tk)
	}
	put(store.TaskStatusKey("shop.web.1.a"), client.ReplicaStatus{State: client.StateRunning, Ready: true,
		Addresses: map[string]string{"default": "172.20.0.2"},
		Ports:     []client.PortBinding{{Target: 8080, Published: 40001, Protocol: "tcp", HostIP: "192.0.2.1", Route: true}}})
	put(store.TaskStatusKey("shop.web.2.b"), client.ReplicaStatus{State: client.StateStarting, Addresses: map[string]string{"default": "172.30.0.5"}})

	rc := agent.NewRemoteConn(agent.RemoteConfig{Managers: []string{e.srv.URL}, Cert: *cert2, RootCAs: e.ca.Pool()})
	defer rc.Close()
	tables := rc.WatchRoutes(ctx, "n2")
	next := func(what string, ok func([]routing.Route) bool) []routing.Route {
		t.Helper()
		timeout := time.After(10 * time.Second)
		var last []routing.Route
		for {
			select {
			case rs := <-tables:
				last = rs
				if ok(rs) {
					return rs
				}
			case <-timeout:
				t.Fatalf("%s: not within 10s; last table %+v; log:\n%s", what, last, e.logs.String())
			}
		}
	}
	backends := func(rs []routing.Route) map[string]routing.Backend {
		out := map[string]routing.Backend{}
		for _, r := range rs {
			for _, b := range r.Backends {
				out[b.TaskID] = b
			}
		}
		return out
	}
	rs := next("first table", func(rs []routing.Route) bool { return len(rs) == 1 })
	if r := rs[0]; r.Host != "shop.test" || r.TLS != client.TLSNone {
		t.Errorf("route: got %+v", r)
	}
	b := backends(rs)
	if got := b["shop.web.1.a"]; got.Addr != "192.0.2.1:40001" || !got.Ready || got.Node != "n1" {
		t.Errorf("replica on n1: got %+v, want 192.0.2.1:40001 (its route port), ready", got)
	}
	if got := b["shop.web.2.b"]; got.Addr != "172.30.0.5:8080" || got.Ready {
		t.Errorf("replica on n2: got %+v, want its container address, not ready", got)
	}

	put(store.TaskStatusKey("shop.web.2.b"), client.ReplicaStatus{State: client.StateRunning, Ready: true, Addresses: map[string]string{"default": "172.30.0.5"}})
	next("the n2 replica ready", func(rs []routing.Route) bool { return backends(rs)["shop.web.2.b"].Ready })

	for _, tc := range []struct {
		name string
		hc   *http.Client
		want int
	}{
		{"another node's certificate", e.httpClient(cert3), http.StatusForbidden},
		{"no certificate", e.httpClient(nil), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(tc.hc, "GET", agent.RemotePathPrefix+"n2/routes", "", nil)
			if code != tc.want {
				t.Errorf("got %d %s, want %d", code, body, tc.want)
			}
		})
	}
}
