package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	tab := &Table{Routes: []Route{
		{Name: "a/root", Host: "app.example.org", Upstreams: []Upstream{{ID: "1", Addr: "10.0.0.1:80"}}},
		{Name: "a/api", Host: "app.example.org", PathPrefix: "/api", Upstreams: []Upstream{{ID: "2", Addr: "10.0.0.2:80"}}},
		{Name: "a/v2", Host: "app.example.org", PathPrefix: "/api/v2/", Upstreams: []Upstream{{ID: "3", Addr: "10.0.0.3:80"}}},
		{Name: "b/wild", Host: "*.example.org", Upstreams: []Upstream{{ID: "4", Addr: "10.0.0.4:80"}}},
		{Name: "c/docs", Host: "Docs.Example.NET", PathPrefix: "/docs"},
		{Name: "d/dup", Host: "app.example.org", PathPrefix: "/api"}, // duplicate: ignored
	}}
	ct, bad := compile(tab, func(u Upstream, _ string) *upstream { return newUpstream(u, "") }, func(string) *routeMetrics { return nil })
	if len(bad) != 1 || bad[0].Name != "d/dup" {
		t.Errorf("ignored routes: got %v, want d/dup", bad)
	}
	tests := []struct {
		host, path, want string
	}{
		{"app.example.org", "/", "a/root"},
		{"app.example.org", "", "a/root"},
		{"APP.Example.ORG", "/x", "a/root"},
		{"app.example.org:8080", "/x", "a/root"},
		{"app.example.org.", "/x", "a/root"},
		{"app.example.org", "/api", "a/api"},
		{"app.example.org", "/api/users", "a/api"},
		{"app.example.org", "/apix", "a/root"}, // segment boundary
		{"app.example.org", "/api/v2", "a/v2"},
		{"app.example.org", "/api/v2/x", "a/v2"},
		{"other.example.org", "/", "b/wild"},
		{"other.example.org:443", "/api", "b/wild"},
		{"a.b.example.org", "/", ""}, // one label only
		{"example.org", "/", ""},
		{"docs.example.net", "/docs/intro", "c/docs"},
		{"docs.example.net", "/", ""},
		{"unknown.test", "/", ""},
		{"", "/", ""},
		{"[::1]:80", "/", ""},
		{strings.Repeat("a", 300) + ".example.org", "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			got := ""
			if r := ct.lookup(tt.host, tt.path); r != nil {
				got = r.name
			}
			if got != tt.want {
				t.Errorf("lookup(%q, %q): got %q, want %q", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	ct, _ := compile(oneRoute("app.example.org", "/api", "10.0.0.1:80"), func(u Upstream, _ string) *upstream { return newUpstream(u, "") }, func(string) *routeMetrics { return nil })
	allocs := testing.AllocsPerRun(100, func() {
		if ct.lookup("App.Example.Org:443", "/api/x") == nil {
			t.Fatal("no route")
		}
	})
	if allocs != 0 {
		t.Errorf("lookup allocates %v times, want 0", allocs)
	}
}

func TestUnknownHostAndPath(t *testing.T) {
	p := newTestProxy(t, Config{})
	p.Update(oneRoute("app.example.org", "/api", backend(t, named("api"))))
	tests := []struct {
		url  string
		want int
	}{
		{"http://unknown.example.org/", http.StatusNotFound},
		{"http://app.example.org/", http.StatusNotFound},
		{"http://app.example.org/api/x", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			w := do(p, "GET", tt.url, "")
			if w.Code != tt.want {
				t.Fatalf("status: got %d, want %d", w.Code, tt.want)
			}
			if tt.want == http.StatusNotFound && !strings.Contains(w.Body.String(), "404 Not Found") {
				t.Errorf("body: got %q, want a 404 page", w.Body.String())
			}
		})
	}
}

func TestUpdateKeepsUpstreamState(t *testing.T) {
	p := newTestProxy(t, Config{})
	p.Update(oneRoute("app.example.org", "", "10.0.0.1:80", "10.0.0.2:80"))
	before := p.table.Load().byID["t0"][0]
	before.inflight.Add(3)
	p.Update(oneRoute("app.example.org", "", "10.0.0.1:80"))
	after := p.table.Load().byID["t0"][0]
	if after != before || after.inflight.Load() != 3 {
		t.Errorf("upstream state not kept across updates")
	}
	if _, ok := p.table.Load().byID["t1"]; ok {
		t.Errorf("t1 still in the table")
	}
	// A replica reached on two ports has two states.
	p.Update(&Table{Routes: []Route{
		{Name: "a", Host: "a.test", Upstreams: []Upstream{{ID: "t0", Addr: "10.0.0.1:80"}}},
		{Name: "b", Host: "b.test", Upstreams: []Upstream{{ID: "t0", Addr: "10.0.0.1:81"}}},
	}})
	if n := len(p.table.Load().byID["t0"]); n != 2 {
		t.Errorf("states of t0: got %d, want 2", n)
	}
}

// TestDotSegmentsAreRefused: a path with a "." or ".." segment, written
// plainly or percent-encoded, is a 400. Routing matches prefixes on the
// path as received, while the upstream resolves the dot segments: routed
// as is, /api/../admin would reach the /api route's service as /admin,
// a path that route does not cover.
func TestDotSegmentsAreRefused(t *testing.T) {
	p := newTestProxy(t, Config{})
	p.Update(&Table{Version: 1, Routes: []Route{
		{Name: "p/web", Host: "app.example.org", Upstreams: []Upstream{{ID: "w", Addr: backend(t, named("web"))}}},
		{Name: "p/api", Host: "app.example.org", PathPrefix: "/api", Upstreams: []Upstream{{ID: "a", Addr: backend(t, named("api"))}}},
	}})
	tests := []struct {
		path     string
		want     int
		upstream string
	}{
		{"/api/x", http.StatusOK, "api"},
		{"/%61pi/x", http.StatusOK, "api"}, // routed on the decoded path, as the upstream reads it
		{"/apix", http.StatusOK, "web"},
		{"/a..b/x", http.StatusOK, "web"},
		{"/api/x..y", http.StatusOK, "api"},
		{"/api/../admin", http.StatusBadRequest, ""},
		{"/api/..", http.StatusBadRequest, ""},
		{"/api/%2e%2e/admin", http.StatusBadRequest, ""},
		{"/api%2F..%2Fadmin", http.StatusBadRequest, ""},
		{"/api/..;/admin", http.StatusBadRequest, ""},
		{"/api/..%5Cadmin", http.StatusBadRequest, ""},
		{"/./api/x", http.StatusBadRequest, ""},
		{"/x/../api/x", http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := do(p, "GET", "http://app.example.org"+tt.path, "")
			if w.Code != tt.want {
				t.Fatalf("status: got %d, want %d", w.Code, tt.want)
			}
			if got := w.Header().Get("X-Backend"); got != tt.upstream {
				t.Errorf("upstream: got %q, want %q", got, tt.upstream)
			}
		})
	}
}
