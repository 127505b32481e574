package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
)

// tlsEnv is the API over real mutual TLS, as the daemon serves it.
type tlsEnv struct {
	t    *testing.T
	st   *store.Memory
	ca   *pki.CA
	box  *secret.Box
	srv  *httptest.Server
	logs *lockedWriter
}

type lockedWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

type beats struct{ got chan string }

func (b beats) Beat(node string, load client.NodeLoad) time.Duration {
	b.got <- node
	return 2 * time.Second
}

func newTLSEnv(t *testing.T, hb agent.HeartbeatSink) *tlsEnv {
	t.Helper()
	return newTLSEnvWith(t, func(d *Deps) { d.Heartbeats = hb })
}

// newTLSEnvWith is newTLSEnv with edit applied to the server's Deps.
func newTLSEnvWith(t *testing.T, edit func(*Deps)) *tlsEnv {
	t.Helper()
	st := store.NewMemory()
	t.Cleanup(st.Close)
	ctx := context.Background()
	st.Txn(ctx, nil, store.Put(store.TokenKey(HashToken(token)), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})))
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerCert(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	box, _ := secret.New(bytes.Repeat([]byte{7}, 32))
	logs := &lockedWriter{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps := Deps{
		Store: st, Secrets: box, Opener: box, CA: ca, Log: log, Events: events.NewRecorder(st, log), Registry: prometheus.NewRegistry(),
	}
	edit(&deps)
	s := New(Config{ClusterID: "c1", ManagerURLs: []string{"https://m1:7443"}, AgentKeepalive: 50 * time.Millisecond}, deps)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &tlsEnv{t: t, st: st, ca: ca, box: box, srv: srv, logs: logs}
}

// httpClient trusts the cluster CA and presents cert if given.
func (e *tlsEnv) httpClient(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: e.ca.Pool()}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func (e *tlsEnv) do(hc *http.Client, method, path, tok string, body any) (int, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, r)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *tlsEnv) createToken(role string, ttl time.Duration) client.JoinToken {
	e.t.Helper()
	code, body := e.do(e.httpClient(nil), "POST", "/v1/tokens", token, client.TokenRequest{Role: role, TTL: client.Duration(ttl)})
	if code != http.StatusCreated {
		e.t.Fatalf("create token: got %d %s", code, body)
	}
	var jt client.JoinToken
	json.Unmarshal(body, &jt)
	return jt
}

// join joins node with tok and returns the status, the answer and the
// node's certificate (when it worked).
func (e *tlsEnv) join(tok, node string) (int, []byte, *tls.Certificate) {
	e.t.Helper()
	csr, key, err := pki.NewNodeKey(node)
	if err != nil {
		e.t.Fatal(err)
	}
	code, body := e.do(e.httpClient(nil), "POST", "/v1/join", "", client.JoinRequest{
		Token: tok, NodeName: node, Hostname: node + ".example", Addr: "10.1.2.3", Labels: map[string]string{"zone": "home"}, CSR: string(csr),
	})
	if code != http.StatusOK {
		return code, body, nil
	}
	var jr client.JoinResponse
	json.Unmarshal(body, &jr)
	cert, err := tls.X509KeyPair([]byte(jr.Cert), key)
	if err != nil {
		e.t.Fatal(err)
	}
	return code, body, &cert
}

func (e *tlsEnv) mustJoin(node string) *tls.Certificate {
	e.t.Helper()
	code, body, cert := e.join(e.createToken("agent", 0).Token, node)
	if code != http.StatusOK {
		e.t.Fatalf("join %s: got %d %s", node, code, body)
	}
	return cert
}

func TestJoin(t *testing.T) {
	e := newTLSEnv(t, nil)
	ctx := context.Background()
	jt := e.createToken("", 0)
	if !strings.HasPrefix(jt.Token, JoinTokenPrefix) || jt.Role != "agent" {
		t.Fatalf("token %+v", jt)
	}
	if got, want := jt.CAHash, client.CAHash(e.ca.Cert); got != want {
		t.Fatalf("ca hash: got %s, want %s", got, want)
	}
	if got := jt.Expires.Sub(jt.Created); got != DefaultJoinTTL {
		t.Fatalf("ttl: got %s, want %s", got, DefaultJoinTTL)
	}
	if len(jt.Managers) != 1 || jt.Managers[0] != "https://m1:7443" {
		t.Fatalf("managers %v", jt.Managers)
	}
	if _, err := e.st.Get(ctx, store.JoinTokenKey(HashToken(jt.Token))); err != nil {
		t.Fatalf("token not stored by its hash: %v", err)
	}

	code, body, cert := e.join(jt.Token, "n2")
	if code != http.StatusOK {
		t.Fatalf("join: got %d %s", code, body)
	}
	var jr client.JoinResponse
	json.Unmarshal(body, &jr)
	if jr.NodeID != "n2" || jr.ClusterID != "c1" || jr.CA != string(e.ca.CertPEM) || len(jr.Managers) != 1 {
		t.Fatalf("join answer %+v", jr)
	}
	var n client.Node
	if _, err := store.GetJSON(ctx, e.st, store.NodeKey("n2"), &n); err != nil {
		t.Fatal(err)
	}
	id, err := pki.CertIdentity(cert.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	want := client.Node{ID: "n2", Hostname: "n2.example", Addr: "10.1.2.3", Labels: map[string]string{"zone": "home"},
		Role: "agent", Status: "ready", Availability: "active", CertSerial: id.Serial}
	n.UpdatedAt = time.Time{}
	if got, _ := json.Marshal(n); string(got) != string(mustJSON(want)) {
		t.Fatalf("node record:\n got %s\nwant %s", got, mustJSON(want))
	}
	if id.NodeID != "n2" || id.Role != pki.RoleAgent {
		t.Fatalf("certificate identity %+v", id)
	}
	if _, err := e.st.Get(ctx, store.JoinTokenKey(HashToken(jt.Token))); err == nil {
		t.Fatal("the join did not delete the token")
	}
	// The certificate works on the agent API.
	if code, body := e.do(e.httpClient(cert), "POST", "/v1/agent/nodes/n2/heartbeat", "", client.NodeLoad{CPU: 1}); code != http.StatusOK {
		t.Fatalf("heartbeat: got %d %s", code, body)
	}
	// The same token again: refused.
	if code, body, _ := e.join(jt.Token, "n3"); code != http.StatusUnauthorized || decodeErr(t, body).Code != "join_refused" {
		t.Fatalf("second join with one token: got %d %s", code, body)
	}
	// A token never reaches the logs.
	if strings.Contains(e.logs.String(), jt.Token) || strings.Contains(e.logs.String(), strings.TrimPrefix(jt.Token, JoinTokenPrefix)) {
		t.Fatalf("a join token is in the logs:\n%s", e.logs)
	}
}

func TestJoinRefused(t *testing.T) {
	e := newTLSEnv(t, nil)
	ctx := context.Background()
	expired := JoinTokenPrefix + "expired0000"
	e.st.Txn(ctx, nil, store.Put(store.JoinTokenKey(HashToken(expired)), store.Encode(store.JoinTokenRecord{
		Role: "agent", Created: time.Now().Add(-2 * time.Hour), Expires: time.Now().Add(-time.Hour)})))
	e.mustJoin("taken")
	for _, tc := range []struct {
		name     string
		tok      func() string
		node     string
		wantCode int
		wantMsg  string
	}{
		{"expired", func() string { return expired }, "n2", 401, "token invalid or expired"},
		{"unknown", func() string { return JoinTokenPrefix + "nope" }, "n2", 401, "token invalid or expired"},
		{"api token", func() string { return token }, "n2", 401, "token invalid or expired"},
		{"manager token", func() string { return e.createToken("manager", time.Hour).Token }, "n2", 403, "for a manager"},
		{"bad name", func() string { return e.createToken("agent", 0).Token }, "No_Good", 400, "node name"},
		{"name taken", func() string { return e.createToken("agent", 0).Token }, "taken", 409, "already a member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.tok()
			code, body, _ := e.join(tok, tc.node)
			if code != tc.wantCode {
				t.Fatalf("got %d %s, want %d", code, body, tc.wantCode)
			}
			if got := decodeErr(t, body); !strings.Contains(got.Message+strings.Join(got.Details, " "), tc.wantMsg) {
				t.Fatalf("message %q does not say %q", got.Message, tc.wantMsg)
			}
			if strings.Contains(string(body), tok) {
				t.Fatalf("the answer repeats the token: %s", body)
			}
		})
	}
	if _, err := e.st.Get(ctx, store.NodeKey("n2")); err == nil {
		t.Fatal("a refused join wrote a node record")
	}
}

func TestJoinTokenIsNoAPIToken(t *testing.T) {
	e := newTLSEnv(t, nil)
	jt := e.createToken("agent", 0)
	code, body := e.do(e.httpClient(nil), "GET", "/v1/projects", jt.Token, nil)
	if code != http.StatusUnauthorized {
		t.Fatalf("join token as bearer token: got %d %s, want 401", code, body)
	}
	// Nor does a node certificate open the CLI API.
	cert := e.mustJoin("n2")
	if code, body := e.do(e.httpClient(cert), "GET", "/v1/projects", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("node certificate on the CLI API: got %d %s, want 401", code, body)
	}
}

func TestRejoinOfADownNode(t *testing.T) {
	e := newTLSEnv(t, nil)
	old := e.mustJoin("n2")
	e.markDown("n2")
	cert := e.mustJoin("n2")
	if code, body := e.do(e.httpClient(cert), "POST", "/v1/agent/nodes/n2/heartbeat", "", client.NodeLoad{}); code != http.StatusOK {
		t.Fatalf("new certificate: got %d %s", code, body)
	}
	if code, body := e.do(e.httpClient(old), "POST", "/v1/agent/nodes/n2/heartbeat", "", client.NodeLoad{}); code != http.StatusForbidden {
		t.Fatalf("replaced certificate: got %d %s, want 403", code, body)
	}
}

func TestAgentAPIAuth(t *testing.T) {
	e := newTLSEnv(t, nil)
	ctx := context.Background()
	n2 := e.mustJoin("n2")
	gone := e.mustJoin("gone")
	e.st.Txn(ctx, nil, store.Delete(store.NodeKey("gone")))
	for _, tc := range []struct {
		name     string
		cert     *tls.Certificate
		tok      string
		path     string
		wantCode int
	}{
		{"no certificate", nil, "", "/v1/agent/nodes/n2/heartbeat", 401},
		{"admin token, no certificate", nil, token, "/v1/agent/nodes/n2/heartbeat", 401},
		{"no certificate, unknown endpoint", nil, "", "/v1/agent/nothing", 401},
		{"removed node", gone, "", "/v1/agent/nodes/gone/heartbeat", 403},
		{"another node's path", n2, "", "/v1/agent/nodes/gone/heartbeat", 403},
		{"own path", n2, "", "/v1/agent/nodes/n2/heartbeat", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(e.httpClient(tc.cert), "POST", tc.path, tc.tok, client.NodeLoad{})
			if code != tc.wantCode {
				t.Fatalf("got %d %s, want %d", code, body, tc.wantCode)
			}
		})
	}
}

func TestAgentHeartbeatGoesToTheSink(t *testing.T) {
	b := beats{got: make(chan string, 1)}
	e := newTLSEnv(t, b)
	cert := e.mustJoin("n2")
	code, body := e.do(e.httpClient(cert), "POST", "/v1/agent/nodes/n2/heartbeat", "", client.NodeLoad{CPU: 0.5})
	if code != http.StatusOK {
		t.Fatalf("got %d %s", code, body)
	}
	var r agent.HeartbeatReply
	json.Unmarshal(body, &r)
	if got := <-b.got; got != "n2" {
		t.Fatalf("sink got a beat of %q", got)
	}
	if r.Interval.D() != 2*time.Second {
		t.Fatalf("interval: got %s, want 2s", r.Interval.D())
	}
}

// openStream opens an agent stream and returns a function reading the
// next set (skipping keep-alives); it returns ok=false when the stream ends.
func (e *tlsEnv) openStream(cert *tls.Certificate, path string) func() ([]store.TaskRecord, bool) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	hc := e.httpClient(cert)
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("stream: got %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	return func() ([]store.TaskRecord, bool) {
		for sc.Scan() {
			var f agent.StreamFrame[store.TaskRecord]
			if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
				e.t.Fatalf("bad frame %s: %v", sc.Bytes(), err)
			}
			if !f.KeepAlive {
				return f.Set, true
			}
		}
		return nil, false
	}
}

func TestAgentTasksStream(t *testing.T) {
	e := newTLSEnv(t, nil)
	ctx := context.Background()
	cert := e.mustJoin("n2")
	next := e.openStream(cert, "/v1/agent/nodes/n2/tasks")
	if set, ok := next(); !ok || len(set) != 0 {
		t.Fatalf("first set: got %v %v, want an empty set", set, ok)
	}
	task := store.TaskRecord{Replica: client.Replica{ID: "shop.web.1.a", Project: "shop", Service: "web", Slot: 1, Node: "n2"}}
	e.st.Txn(ctx, nil, store.Put(store.TaskKey("n2", task.ID), store.Encode(task)))
	e.st.Txn(ctx, nil, store.Put(store.TaskKey("n3", "other"), store.Encode(store.TaskRecord{Replica: client.Replica{ID: "other"}})))
	set, ok := next()
	if !ok || len(set) != 1 || set[0].ID != task.ID {
		t.Fatalf("after an assignment: got %+v %v", set, ok)
	}
	// The node is removed: its stream ends.
	e.st.Txn(ctx, nil, store.Delete(store.NodeKey("n2")))
	for {
		if _, ok := next(); !ok {
			break
		}
	}
}

func TestAgentStatusSecretsCleanups(t *testing.T) {
	e := newTLSEnv(t, nil)
	ctx := context.Background()
	cert := e.mustJoin("n2")
	hc := e.httpClient(cert)
	st := client.ReplicaStatus{State: client.StateRunning}
	if code, body := e.do(hc, "PUT", "/v1/agent/nodes/n2/tasks/t1/status", "", st); code != http.StatusGone || decodeErr(t, body).Code != agent.CodeTaskGone {
		t.Fatalf("status of an unassigned task: got %d %s", code, body)
	}
	// t1 (shop's web) mounts pw, nope and conf; shop's db, on another
	// node, mounts dbpw: n2 reads the first three only.
	web := client.ServiceSpec{Secrets: []client.FileRef{{Source: "pw"}, {Source: "nope"}}, Configs: []client.FileRef{{Source: "conf"}}}
	db := client.ServiceSpec{Secrets: []client.FileRef{{Source: "dbpw"}}, Configs: []client.FileRef{{Source: "dbconf"}}}
	e.st.Txn(ctx, nil,
		store.Put(store.TaskKey("n2", "t1"), store.Encode(store.TaskRecord{Replica: client.Replica{ID: "t1", Project: "shop", Service: "web"}, Spec: web})),
		store.Put(store.TaskKey("n3", "t2"), store.Encode(store.TaskRecord{Replica: client.Replica{ID: "t2", Project: "shop", Service: "db"}, Spec: db})))
	if code, body := e.do(hc, "PUT", "/v1/agent/nodes/n2/tasks/t1/status", "", st); code != http.StatusNoContent {
		t.Fatalf("status: got %d %s", code, body)
	}
	var got client.ReplicaStatus
	if _, err := store.GetJSON(ctx, e.st, store.TaskStatusKey("t1"), &got); err != nil || got.State != client.StateRunning {
		t.Fatalf("stored status %+v %v", got, err)
	}

	sealed, _ := e.box.Seal([]byte("s3cret"))
	e.st.Txn(ctx, nil,
		store.Put(store.SecretKey("shop", "pw"), store.Encode(store.SecretRecord{Sealed: sealed})),
		store.Put(store.SecretKey("bank", "pw"), store.Encode(store.SecretRecord{Sealed: sealed})),
		store.Put(store.SecretKey("shop", "dbpw"), store.Encode(store.SecretRecord{Sealed: sealed})),
		store.Put(store.ConfigKey("shop", "conf"), store.Encode(store.ConfigRecord{Data: []byte("x=1")})),
		store.Put(store.ConfigKey("shop", "dbconf"), store.Encode(store.ConfigRecord{Data: []byte("y=2")})))
	for _, tc := range []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/v1/agent/nodes/n2/secrets/shop/pw", 200, "s3cret"},
		{"/v1/agent/nodes/n2/configs/shop/conf", 200, "x=1"},
		{"/v1/agent/nodes/n2/secrets/shop/nope", 404, ""},
		{"/v1/agent/nodes/n2/secrets/bank/pw", 403, ""},     // no replica of bank on n2
		{"/v1/agent/nodes/n2/secrets/shop/dbpw", 403, ""},   // shop's db is not on n2
		{"/v1/agent/nodes/n2/configs/shop/dbconf", 403, ""}, // likewise
		{"/v1/agent/nodes/n2/configs/shop/pw", 403, ""},     // pw is a secret of web, not a config
		{"/v1/agent/nodes/n3/secrets/shop/dbpw", 403, ""},   // n3's path, n2's certificate
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, body := e.do(hc, "GET", tc.path, "", nil)
			if code != tc.wantCode || (tc.wantBody != "" && string(body) != tc.wantBody) {
				t.Fatalf("got %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
		})
	}

	e.st.Txn(ctx, nil, store.Put(store.CleanupKey("old"), store.Encode(store.CleanupRecord{Project: "old", Nodes: []string{"n2"}})))
	if code, body := e.do(hc, "POST", "/v1/agent/nodes/n2/cleanups/old/done", "", nil); code != http.StatusNoContent {
		t.Fatalf("cleanup done: got %d %s", code, body)
	}
	if _, err := e.st.Get(ctx, store.CleanupKey("old")); err == nil {
		t.Fatal("cleanup record still there")
	}
}

func TestAgentRegisterKeepsManagersFields(t *testing.T) {
	e := newTLSEnv(t, nil)
	ctx := context.Background()
	cert := e.mustJoin("n2")
	reg := client.Node{ID: "n2", Hostname: "box", Role: "manager", Availability: "active", Status: "ready", Labels: map[string]string{"zone": "home"},
		Addr: "10.1.2.3", CertSerial: "00", Capacity: client.ResourceAmounts{CPUs: 4, Memory: 1 << 30}, Version: "20.10"}
	var before client.Node
	rev, _ := store.GetJSON(ctx, e.st, store.NodeKey("n2"), &before)
	before.Availability = "drain"
	e.st.Txn(ctx, []store.Cmp{store.ModRevisionIs(store.NodeKey("n2"), rev)}, store.Put(store.NodeKey("n2"), store.Encode(before)))
	if code, body := e.do(e.httpClient(cert), "POST", "/v1/agent/nodes/n2/register", "", reg); code != http.StatusNoContent {
		t.Fatalf("register: got %d %s", code, body)
	}
	var n client.Node
	store.GetJSON(ctx, e.st, store.NodeKey("n2"), &n)
	if n.Hostname != "box" || n.Capacity.CPUs != 4 || n.Version != "20.10" {
		t.Fatalf("the node's own fields were not refreshed: %+v", n)
	}
	if n.Role != "agent" || n.Availability != "drain" || n.CertSerial != before.CertSerial || n.Labels["zone"] != "home" {
		t.Fatalf("the node changed what managers decide: %+v", n)
	}
	// A node for another one: refused.
	reg.ID = "n3"
	if code, body := e.do(e.httpClient(cert), "POST", "/v1/agent/nodes/n2/register", "", reg); code != http.StatusBadRequest {
		t.Fatalf("register of another id: got %d %s", code, body)
	}
}

func TestJoinTokensListAndRemove(t *testing.T) {
	e := newTLSEnv(t, nil)
	hc := e.httpClient(nil)
	jt := e.createToken("agent", 0)
	code, body := e.do(hc, "GET", "/v1/tokens", token, nil)
	var list []client.JoinToken
	json.Unmarshal(body, &list)
	if code != 200 || len(list) != 1 || list[0].ID != jt.ID || list[0].Token != "" {
		t.Fatalf("list: got %d %s", code, body)
	}
	if code, body := e.do(hc, "DELETE", "/v1/tokens/"+jt.ID, token, nil); code != http.StatusNoContent {
		t.Fatalf("rm: got %d %s", code, body)
	}
	if code, body, _ := e.join(jt.Token, "n2"); code != http.StatusUnauthorized {
		t.Fatalf("join with a removed token: got %d %s", code, body)
	}
}

func TestAgentEvents(t *testing.T) {
	e := newTLSEnv(t, nil)
	hc := e.httpClient(e.mustJoin("n2"))
	if code, body := e.do(hc, "POST", "/v1/agent/nodes/n2/events", "", client.Event{Type: "deploy", Action: "x"}); code != http.StatusBadRequest {
		t.Fatalf("a deploy event from an agent: got %d %s, want 400", code, body)
	}
	if code, body := e.do(hc, "POST", "/v1/agent/nodes/n2/events", "", client.Event{Type: "replica", Action: "started", Node: "n9"}); code != http.StatusNoContent {
		t.Fatalf("replica event: got %d %s", code, body)
	}
	var evs []client.Event
	kvs, _, _ := e.st.List(context.Background(), store.EventsPrefix)
	for _, kv := range kvs {
		var ev client.Event
		store.Decode(kv, &ev)
		if ev.Type == "replica" {
			evs = append(evs, ev)
		}
	}
	if len(evs) != 1 || evs[0].Node != "n2" {
		t.Fatalf("recorded replica events %+v, want one of n2", evs)
	}
}

// A join body is one JSON value within the join limit: a valid request
// followed by more data is refused (and the token stays usable), one padded
// past the limit gets 413; neither answer repeats the token.
func TestJoinBadBody(t *testing.T) {
	e := newTLSEnv(t, nil)
	tok := e.createToken("agent", 0).Token
	csr, _, err := pki.NewNodeKey("n2")
	if err != nil {
		t.Fatal(err)
	}
	valid, _ := json.Marshal(client.JoinRequest{Token: tok, NodeName: "n2", CSR: string(csr)})
	for _, tc := range []struct {
		name     string
		body     string
		wantCode int
		wantMsg  string
	}{
		{"trailing data", string(valid) + ` {"token": "` + tok + `"}`, 400, "not a join request"},
		{"padded past the limit", string(valid) + strings.Repeat(" ", maxJoinBody), 413, "larger than the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.httpClient(nil).Post(e.srv.URL+"/v1/join", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tc.wantCode)
			}
			if got := decodeErr(t, body); !strings.Contains(got.Message, tc.wantMsg) {
				t.Fatalf("message %q does not say %q", got.Message, tc.wantMsg)
			}
			if strings.Contains(string(body), tok) {
				t.Fatalf("the answer repeats the token: %s", body)
			}
		})
	}
	if _, err := e.st.Get(context.Background(), store.NodeKey("n2")); err == nil {
		t.Fatal("a refused join wrote a node record")
	}
	if code, body, _ := e.join(tok, "n2"); code != http.StatusOK {
		t.Fatalf("the token after refused joins: got %d %s, want 200", code, body)
	}
}

// TestAgentHeartbeatAsksForResyncWhileDown: while its record says the node
// is down (its replicas may have moved), the heartbeat answer tells the
// agent to reopen its streams; once it is ready again, it does not.
func TestAgentHeartbeatAsksForResyncWhileDown(t *testing.T) {
	e := newTLSEnv(t, nil)
	cert := e.mustJoin("n2")
	setStatus := func(status string) {
		var n client.Node
		rev, err := store.GetJSON(context.Background(), e.st, store.NodeKey("n2"), &n)
		if err != nil {
			t.Fatal(err)
		}
		n.Status = status
		if _, err := e.st.Txn(context.Background(), []store.Cmp{store.ModRevisionIs(store.NodeKey("n2"), rev)}, store.Put(store.NodeKey("n2"), store.Encode(n))); err != nil {
			t.Fatal(err)
		}
	}
	// The answer follows the record (through the node cache's watch).
	waitResync := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, body := e.do(e.httpClient(cert), "POST", "/v1/agent/nodes/n2/heartbeat", "", client.NodeLoad{})
			if code != http.StatusOK {
				t.Fatalf("heartbeat: got %d %s", code, body)
			}
			var r agent.HeartbeatReply
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if r.Resync == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("resync: got %v, want %v (answer %s)", r.Resync, want, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitResync(false)
	setStatus(client.NodeDown)
	waitResync(true)
	setStatus(client.NodeReady)
	waitResync(false)
}
