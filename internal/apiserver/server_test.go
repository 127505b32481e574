package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/certs"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
)

const token = "test-token"

type fakeChecker struct {
	missingImages map[string]bool
	busyPorts     map[uint16]bool
}

func (f fakeChecker) CheckImage(ctx context.Context, ref string) error {
	if f.missingImages[ref] {
		return errors.New("image " + ref + " not found locally and could not be pulled")
	}
	return nil
}

func (f fakeChecker) CheckPort(ctx context.Context, proto, ip string, port uint16) error {
	if f.busyPorts[port] {
		return errors.New("already in use on this node")
	}
	return nil
}

type env struct {
	t   *testing.T
	st  *store.Memory
	srv *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := store.NewMemory()
	t.Cleanup(st.Close)
	ctx := context.Background()
	st.Txn(ctx, nil, store.Put(store.TokenKey(HashToken(token)), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})))
	st.Txn(ctx, nil, store.Put(store.NodeKey("n1"), store.Encode(client.Node{ID: "n1", Status: "ready", Availability: "active"})))
	box, _ := secret.New(bytes.Repeat([]byte{7}, 32))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(Config{MaxBodyBytes: 64 << 10}, Deps{
		Store: st, Secrets: box, Log: log, Events: events.NewRecorder(st, log), Registry: prometheus.NewRegistry(),
		Checker: fakeChecker{missingImages: map[string]bool{"nosuch:1": true}, busyPorts: map[uint16]bool{9999: true}},
	})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, srv: srv}
}

// call sends a request and returns status and body.
func (e *env) call(method, path, tok, ctype string, body []byte) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) deploy(p client.ProjectSpec, dryRun bool) (int, []byte) {
	b, _ := json.Marshal(client.DeployRequest{Project: p, DryRun: dryRun})
	return e.call("PUT", "/v1/projects/"+p.Name, token, "application/json", b)
}

func web(replicas int) client.ProjectSpec {
	return client.ProjectSpec{Name: "shop", Services: map[string]client.ServiceSpec{
		"web": {Name: "web", Image: "hello:1", Replicas: replicas},
	}}
}

func decodeErr(t *testing.T, b []byte) client.Error {
	t.Helper()
	var e client.Error
	if err := json.Unmarshal(b, &e); err != nil || e.Message == "" {
		t.Fatalf("not a JSON error: %s", b)
	}
	return e
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, tok string }{{"missing", ""}, {"wrong", "nope"}} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.call("GET", "/v1/projects", tc.tok, "", nil)
			if code != http.StatusUnauthorized {
				t.Fatalf("got %d, want 401", code)
			}
			if got := decodeErr(t, body); got.Code != "unauthorized" {
				t.Fatalf("got code %q", got.Code)
			}
		})
	}
	if code, _ := e.call("GET", "/v1/projects", token, "", nil); code != http.StatusOK {
		t.Fatalf("valid token: got %d", code)
	}
}

func TestDeployBadInput(t *testing.T) {
	e := newEnv(t)
	neg := web(-1)
	noImage := web(1)
	noImage.Services["web"] = client.ServiceSpec{Name: "web", Replicas: 1}
	missing := web(1)
	missing.Services["web"] = client.ServiceSpec{Name: "web", Image: "nosuch:1", Replicas: 1}
	busy := web(1)
	busy.Services["web"] = client.ServiceSpec{Name: "web", Image: "hello:1", Replicas: 1, Ports: []client.PortSpec{{Target: 80, Published: 9999}}}
	tooMany := web(2)
	tooMany.Services["web"] = client.ServiceSpec{Name: "web", Image: "hello:1", Replicas: 2, Ports: []client.PortSpec{{Target: 80, Published: 8080}}}
	for _, tc := range []struct {
		name     string
		ctype    string
		body     []byte
		wantCode int
		wantMsg  string
	}{
		{"malformed json", "application/json", []byte(`{"project": {`), 400, "not a valid deploy request"},
		{"unknown field", "application/json", []byte(`{"project": {"name": "shop"}, "bogus": 1}`), 400, "bogus"},
		{"negative replicas", "application/json", mustJSON(client.DeployRequest{Project: neg}), 400, "replicas"},
		{"no image", "application/json", mustJSON(client.DeployRequest{Project: noImage}), 400, "image"},
		{"missing image", "application/json", mustJSON(client.DeployRequest{Project: missing}), 400, "nosuch:1"},
		{"busy host port", "application/json", mustJSON(client.DeployRequest{Project: busy}), 400, "9999/tcp"},
		{"replicas over nodes on a fixed port", "application/json", mustJSON(client.DeployRequest{Project: tooMany}), 400, "once per node"},
		{"oversized body", "application/json", append([]byte(`{"project": {"name": "`), bytes.Repeat([]byte("a"), 100<<10)...), 413, "larger than"},
		{"bad media type", "text/plain", []byte("hello"), 415, "Content-Type"},
		{"malformed yaml", "application/yaml", []byte("services:\n  web:\n    image: [unclosed\n"), 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.call("PUT", "/v1/projects/shop", token, tc.ctype, tc.body)
			if code != tc.wantCode {
				t.Fatalf("got %d %s, want %d", code, body, tc.wantCode)
			}
			if got := decodeErr(t, body); !strings.Contains(got.Message+strings.Join(got.Details, " "), tc.wantMsg) {
				t.Fatalf("message %q does not name %q", got.Message, tc.wantMsg)
			}
		})
	}
	// Nothing of any of them was written.
	if kvs, _, _ := e.st.List(context.Background(), store.ServicesPrefix); len(kvs) != 0 {
		t.Fatalf("a rejected deploy wrote %d service records", len(kvs))
	}
}

func TestDeployDiffAndVersions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	change := func(code int, body []byte) client.Change {
		t.Helper()
		if code != 200 {
			t.Fatalf("got %d %s", code, body)
		}
		var r client.DeployResponse
		json.Unmarshal(body, &r)
		if len(r.Changes) != 1 {
			t.Fatalf("changes %+v", r.Changes)
		}
		return r.Changes[0]
	}
	record := func() store.ServiceRecord {
		var rec store.ServiceRecord
		if _, err := store.GetJSON(ctx, e.st, store.ServiceKey("shop", "web"), &rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	if c := change(e.deploy(web(2), true)); c.Kind != client.ChangeCreate {
		t.Fatalf("dry run: got %s", c.Kind)
	}
	if _, err := e.st.Get(ctx, store.ServiceKey("shop", "web")); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("dry run wrote")
	}
	if c := change(e.deploy(web(2), false)); c.Kind != client.ChangeCreate || c.Revision != 0 {
		// Revision lives on the response, not the change.
		_ = c
	}
	if rec := record(); rec.Version != 1 || rec.Spec.Replicas != 2 {
		t.Fatalf("after create: %+v", rec)
	}
	_, before, _ := e.st.List(ctx, store.Root)
	if c := change(e.deploy(web(2), false)); c.Kind != client.ChangeUnchanged {
		t.Fatalf("redeploy: got %s", c.Kind)
	}
	if _, after, _ := e.st.List(ctx, store.Root); after != before {
		t.Fatalf("unchanged redeploy wrote: revision %d -> %d", before, after)
	}
	if c := change(e.deploy(web(3), false)); c.Kind != client.ChangeScale || c.From != 2 || c.To != 3 {
		t.Fatalf("scale: got %+v", c)
	}
	if rec := record(); rec.Version != 1 {
		t.Fatalf("scale bumped the version: %d", rec.Version)
	}
	v2 := web(3)
	v2.Services["web"] = client.ServiceSpec{Name: "web", Image: "hello:2", Replicas: 3}
	if c := change(e.deploy(v2, false)); c.Kind != client.ChangeUpdate || strings.Join(c.Fields, ",") != "image" {
		t.Fatalf("update: got %+v", c)
	}
	if rec := record(); rec.Version != 2 || rec.Previous == nil || rec.Previous.Image != "hello:1" {
		t.Fatalf("after update: %+v", rec)
	}
	code, body := e.call("POST", "/v1/projects/shop/services/web/rollback", token, "", nil)
	if code != 200 {
		t.Fatalf("rollback: %d %s", code, body)
	}
	if rec := record(); rec.Version != 3 || rec.Spec.Image != "hello:1" || !rec.Rollback {
		t.Fatalf("after rollback: %+v", rec)
	}
}

func TestScaleAndRemove(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if code, body := e.deploy(web(1), false); code != 200 {
		t.Fatalf("deploy: %d %s", code, body)
	}
	for _, tc := range []struct {
		body string
		want int
	}{{`{"replicas": -1}`, 400}, {`{"replicas": 100000}`, 400}, {`{"replicas": "x"}`, 400}, {`{"replicas": 4}`, 200}} {
		if code, body := e.call("POST", "/v1/projects/shop/services/web/scale", token, "application/json", []byte(tc.body)); code != tc.want {
			t.Errorf("scale %s: got %d %s, want %d", tc.body, code, body, tc.want)
		}
	}
	if code, _ := e.call("POST", "/v1/projects/shop/services/nope/scale", token, "application/json", []byte(`{"replicas": 1}`)); code != 404 {
		t.Errorf("scale unknown service: got %d", code)
	}
	if code, _ := e.call("POST", "/v1/projects/shop/services/web/rollback", token, "", nil); code != 409 {
		t.Errorf("rollback without previous: got %d", code)
	}
	if code, _ := e.call("DELETE", "/v1/projects/nope", token, "", nil); code != 404 {
		t.Errorf("remove unknown project: got %d", code)
	}
	if code, body := e.call("DELETE", "/v1/projects/shop", token, "", nil); code != 200 {
		t.Fatalf("remove: %d %s", code, body)
	}
	var cl store.CleanupRecord
	if _, err := store.GetJSON(ctx, e.st, store.CleanupKey("shop"), &cl); err != nil || cl.Volumes || len(cl.Nodes) != 1 {
		t.Fatalf("cleanup record %+v %v: want volumes kept, one node", cl, err)
	}
	if code, body := e.deploy(web(1), false); code != 409 {
		t.Fatalf("deploy during removal: got %d %s, want 409", code, body)
	}
}

func TestEventsRecorded(t *testing.T) {
	e := newEnv(t)
	e.deploy(web(1), false)
	code, body := e.call("GET", "/v1/events", token, "", nil)
	if code != 200 || !strings.Contains(string(body), `"action":"applied"`) {
		t.Fatalf("events: %d %s", code, body)
	}
}

func TestWatchSendsChanges(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v1/projects/shop/watch", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var p client.Project
	if err := dec.Decode(&p); err != nil || len(p.Services) != 0 {
		t.Fatalf("first view: %+v %v", p, err)
	}
	e.deploy(web(1), false)
	if err := dec.Decode(&p); err != nil || len(p.Services) != 1 || p.Services[0].Desired != 1 {
		t.Fatalf("view after deploy: %+v %v", p, err)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestRouteConflictAcrossProjects(t *testing.T) {
	e := newEnv(t)
	withRoute := func(project string) client.ProjectSpec {
		return client.ProjectSpec{Name: project, Services: map[string]client.ServiceSpec{
			"web": {Name: "web", Image: "hello:1", Replicas: 1, Routes: []client.RouteSpec{{Host: "pad.example.org", Port: 8080}}},
		}}
	}
	if code, body := e.deploy(withRoute("one"), false); code != 200 {
		t.Fatalf("first: %d %s", code, body)
	}
	code, body := e.deploy(withRoute("two"), false)
	if code != 400 || !strings.Contains(string(body), "already served by one/web") {
		t.Fatalf("second project on the same host: got %d %s", code, body)
	}
	// The owner itself may redeploy it.
	if code, body := e.deploy(withRoute("one"), false); code != 200 {
		t.Fatalf("owner redeploy: %d %s", code, body)
	}
}

// testLeaf returns a certificate for host from a fresh CA, and its key.
func testLeaf(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err = ca.Leaf([]string{host}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func TestTLSFilesKeyIsSealed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	certPEM, keyPEM := testLeaf(t, "files.example.org")
	spec := func() client.ProjectSpec {
		return client.ProjectSpec{Name: "shop", Services: map[string]client.ServiceSpec{
			"web": {Name: "web", Image: "hello:1", Replicas: 1, Routes: []client.RouteSpec{
				{Host: "files.example.org", Port: 8080, TLS: client.TLSFiles, Cert: certPEM, Key: keyPEM}}},
		}}
	}
	if code, body := e.deploy(spec(), false); code != 200 {
		t.Fatalf("deploy: %d %s", code, body)
	}
	kv, err := e.st.Get(ctx, certs.FilesKey("files.example.org"))
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := e.st.Get(ctx, store.ServiceKey("shop", "web"))
	if bytes.Contains(kv.Value, keyPEM) || bytes.Contains(svc.Value, []byte("PRIVATE KEY")) {
		t.Fatal("the private key is stored in clear")
	}
	var rec certs.FilesRecord
	json.Unmarshal(kv.Value, &rec)
	if rec.Project != "shop" || !bytes.Equal(rec.Cert, certPEM) || len(rec.SealedKey) == 0 {
		t.Fatalf("files record %+v", rec)
	}
	code, body := e.deploy(spec(), false)
	var resp client.DeployResponse
	json.Unmarshal(body, &resp)
	if code != 200 || resp.Changes[0].Kind != client.ChangeUnchanged {
		t.Fatalf("redeploy of the same certificate: %d %s", code, body)
	}
	if code, _ := e.call("DELETE", "/v1/projects/shop", token, "", nil); code != 200 {
		t.Fatal("remove failed")
	}
	if _, err := e.st.Get(ctx, certs.FilesKey("files.example.org")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the certificate outlived its project: %v", err)
	}
}

func TestNewWithoutRegistry(t *testing.T) {
	st := store.NewMemory()
	log := slog.New(slog.DiscardHandler)
	s := New(Config{}, Deps{Store: st, Log: log, Events: events.NewRecorder(st, log)})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("healthz without a registry: got %d, want 200", rec.Code)
	}
}

// A route to a new target port replaces the replicas in a cluster (they
// publish route ports when created); any other route change, or any route
// change on a single node, touches none.
func TestRouteToNewPort(t *testing.T) {
	e := newEnv(t)
	spec := func(routes ...client.RouteSpec) client.ProjectSpec {
		return client.ProjectSpec{Name: "shop", Services: map[string]client.ServiceSpec{
			"web": {Name: "web", Image: "hello:1", Replicas: 2, Routes: routes},
		}}
	}
	kindOf := func(p client.ProjectSpec) (string, int64) {
		t.Helper()
		code, body := e.deploy(p, false)
		var resp client.DeployResponse
		json.Unmarshal(body, &resp)
		if code != 200 || len(resp.Changes) != 1 {
			t.Fatalf("deploy: %d %s", code, body)
		}
		var rec store.ServiceRecord
		store.GetJSON(context.Background(), e.st, store.ServiceKey("shop", "web"), &rec)
		return resp.Changes[0].Kind, rec.Version
	}
	a := client.RouteSpec{Host: "shop.example.org", Port: 8080}
	b := client.RouteSpec{Host: "admin.example.org", Port: 9090}
	kindOf(spec(a))
	if kind, v := kindOf(spec(a, b)); kind != client.ChangeRoutes || v != 1 {
		t.Errorf("single node, new port: got %s, version %d; want routes, version 1", kind, v)
	}
	// A node with an advertise address: agents publish route ports.
	if _, err := e.st.Txn(context.Background(), nil, store.Put(store.NodeKey("n2"), store.Encode(client.Node{ID: "n2", Addr: "10.0.0.2"}))); err != nil {
		t.Fatal(err)
	}
	c := client.RouteSpec{Host: "shop.example.org", PathPrefix: "/api", Port: 8080}
	if kind, v := kindOf(spec(a, b, c)); kind != client.ChangeRoutes || v != 1 {
		t.Errorf("cluster, a route to a port already routed: got %s, version %d; want routes, version 1", kind, v)
	}
	d := client.RouteSpec{Host: "stats.example.org", Port: 7070}
	if kind, v := kindOf(spec(a, b, c, d)); kind != client.ChangeUpdate || v != 2 {
		t.Errorf("cluster, a route to a new port: got %s, version %d; want update, version 2", kind, v)
	}
	if kind, v := kindOf(spec(a, d)); kind != client.ChangeRoutes || v != 2 {
		t.Errorf("cluster, routes removed: got %s, version %d; want routes, version 2", kind, v)
	}
}

// TestRouteConflictAcrossProjectsSpelledApart: a host and path is one
// claim however its prefix is spelled ("/api/" is "/api", "/" is no
// path), as the proxy reads it.
func TestRouteConflictAcrossProjectsSpelledApart(t *testing.T) {
	e := newEnv(t)
	withRoute := func(project, prefix string) client.ProjectSpec {
		return client.ProjectSpec{Name: project, Services: map[string]client.ServiceSpec{
			"web": {Name: "web", Image: "hello:1", Replicas: 1, Routes: []client.RouteSpec{{Host: "pad.example.org", PathPrefix: prefix, Port: 8080}}},
		}}
	}
	for _, tc := range []struct{ first, second string }{{"/api", "/api/"}, {"", "/"}, {"/docs/", "/docs"}} {
		if code, body := e.deploy(withRoute("one", tc.first), false); code != 200 {
			t.Fatalf("first %q: %d %s", tc.first, code, body)
		}
		code, body := e.deploy(withRoute("two", tc.second), false)
		if code != 400 || !strings.Contains(string(body), "already served by one/web") {
			t.Errorf("%q after %q in another project: got %d %s, want 400 naming one/web", tc.second, tc.first, code, body)
		}
	}
}

// TestTLSFilesOfAHostAcrossProjects: a host has one certificate record,
// so a project may not route with its own certificate a host another
// project routes, nor route a host whose certificate file is another
// project's: the second deploy replaced (and its removal deleted) the
// first project's certificate.
func TestTLSFilesOfAHostAcrossProjects(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	certPEM, keyPEM := testLeaf(t, "pad.example.org")
	spec := func(project, prefix, tls string) client.ProjectSpec {
		r := client.RouteSpec{Host: "pad.example.org", PathPrefix: prefix, Port: 8080, TLS: tls}
		if tls == client.TLSFiles {
			r.Cert, r.Key = certPEM, keyPEM
		}
		return client.ProjectSpec{Name: project, Services: map[string]client.ServiceSpec{
			"web": {Name: "web", Image: "hello:1", Replicas: 1, Routes: []client.RouteSpec{r}},
		}}
	}
	if code, body := e.deploy(spec("one", "", client.TLSFiles), false); code != 200 {
		t.Fatalf("first: %d %s", code, body)
	}
	for _, tls := range []string{client.TLSFiles, client.TLSInternal} {
		code, body := e.deploy(spec("two", "/other", tls), false)
		if code != 400 || !strings.Contains(string(body), "one/web") {
			t.Errorf("tls %s on another project's host with a certificate file: got %d %s, want 400 naming one/web", tls, code, body)
		}
	}
	kv, err := e.st.Get(ctx, certs.FilesKey("pad.example.org"))
	if err != nil {
		t.Fatal(err)
	}
	var rec certs.FilesRecord
	json.Unmarshal(kv.Value, &rec)
	if rec.Project != "one" {
		t.Errorf("the certificate record of pad.example.org is project %q's, want one's", rec.Project)
	}
	// The default TLS goes with a certificate file, as within a project.
	if code, body := e.deploy(spec("two", "/other", client.TLSAuto), false); code != 200 {
		t.Errorf("tls default on a host with a certificate file: %d %s", code, body)
	}
}

// TestStatusNetworks: the status says which replica networks the cluster
// uses, as its first manager recorded them.
func TestStatusNetworks(t *testing.T) {
	e := newEnv(t)
	e.st.Txn(context.Background(), nil, store.Put(store.NetworksKey, store.Encode(store.NetworksRecord{Mode: "ruche", Range: "10.208.0.0/16"})))
	code, body := e.call("GET", "/v1/status", token, "", nil)
	var st client.Status
	if code != 200 || json.Unmarshal(body, &st) != nil || st.Networks != "ruche" || st.PrivateRange != "10.208.0.0/16" {
		t.Errorf("status %d %s: want networks ruche in 10.208.0.0/16", code, body)
	}
}

// TestNetworkNameClash: project a-b's network c and project a's network
// b-c would be one engine network (and one bridge, one name server): the
// second deploy is refused, and nothing of it is stored.
func TestNetworkNameClash(t *testing.T) {
	e := newEnv(t)
	spec := func(project, network string) client.ProjectSpec {
		return client.ProjectSpec{Name: project, Networks: map[string]client.NetworkSpec{network: {Name: network}},
			Services: map[string]client.ServiceSpec{"web": {Name: "web", Image: "hello:1", Replicas: 1,
				Networks: map[string]client.ServiceNetwork{network: {}}}}}
	}
	if code, body := e.deploy(spec("a-b", "c"), false); code != 200 {
		t.Fatalf("first: %d %s", code, body)
	}
	code, body := e.deploy(spec("a", "b-c"), false)
	if code != 400 || !strings.Contains(string(body), "engine name ruche-a-b-c is also project a-b's network c") {
		t.Fatalf("a clashing network: got %d %s", code, body)
	}
	if _, err := e.st.Get(context.Background(), store.ProjectKey("a")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused project was stored: %v", err)
	}
	if code, body := e.deploy(spec("a", "d"), false); code != 200 {
		t.Errorf("a network that does not clash: %d %s", code, body)
	}
	if code, body := e.deploy(spec("a-b", "c"), false); code != 200 {
		t.Errorf("the owner's redeploy: %d %s", code, body)
	}
}
