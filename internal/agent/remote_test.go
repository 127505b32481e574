package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/apiserver"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
)

type fixedBeats time.Duration

func (b fixedBeats) Beat(string, client.NodeLoad) time.Duration { return time.Duration(b) }

type connEnv struct {
	st   *store.Memory
	box  *secret.Box
	conn agent.Conn
	srv  *httptest.Server // remote only
}

func newBox(t *testing.T) *secret.Box {
	box, err := secret.New(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func localEnv(t *testing.T) *connEnv {
	st := store.NewMemory()
	t.Cleanup(st.Close)
	box := newBox(t)
	c := agent.NewLocalConn(st, box)
	c.Beats = fixedBeats(3 * time.Second)
	return &connEnv{st: st, box: box, conn: c}
}

// remoteEnv runs the real API over mutual TLS on loopback and a
// RemoteConn with a node certificate for node "n2" (whose record exists,
// as after a join). Managers lists a dead address first: the conn must go
// on to the next.
func remoteEnv(t *testing.T) *connEnv {
	st := store.NewMemory()
	t.Cleanup(st.Close)
	box := newBox(t)
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.ServerCert(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := apiserver.New(apiserver.Config{AgentKeepalive: 100 * time.Millisecond}, apiserver.Deps{
		Store: st, Secrets: box, Opener: box, CA: ca, Heartbeats: fixedBeats(3 * time.Second),
		Log: log, Events: events.NewRecorder(st, log), Registry: prometheus.NewRegistry(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { api.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := httptest.NewUnstartedServer(api.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	csr, key, err := pki.NewNodeKey("n2")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, serial, err := ca.SignNode(csr, pki.NodeRequest{ID: "n2", Role: pki.RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	st.Txn(context.Background(), nil, store.Put(store.NodeKey("n2"), store.Encode(client.Node{ID: "n2", Role: "agent", Status: "ready", Availability: "active", CertSerial: serial})))
	cert, err := tls.X509KeyPair(certPEM, key)
	if err != nil {
		t.Fatal(err)
	}
	// A closed port on loopback: a manager that is down.
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	rc := agent.NewRemoteConn(agent.RemoteConfig{
		Managers: []string{"https" + deadURL[len("http"):], srv.URL}, Cert: cert, RootCAs: ca.Pool(),
		Timeout: 5 * time.Second, StreamIdle: time.Second,
	})
	t.Cleanup(rc.Close)
	return &connEnv{st: st, box: box, conn: rc, srv: srv}
}

// connEnvs are the Conns the behaviour tests run on: the in-process one
// and the remote one through the real API.
var connEnvs = []struct {
	name string
	env  func(*testing.T) *connEnv
}{{"local", localEnv}, {"remote", remoteEnv}}

// next waits for a set on ch.
func next[T any](t *testing.T, ch <-chan []T) []T {
	t.Helper()
	select {
	case set, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return set
	case <-time.After(10 * time.Second):
		t.Fatal("no set within 10s")
	}
	return nil
}

// waitSet reads sets until one satisfies ok.
func waitSet[T any](t *testing.T, ch <-chan []T, what string, ok func([]T) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case set := <-ch:
			if ok(set) {
				return
			}
		case <-deadline:
			t.Fatalf("no set with %s within 10s", what)
		}
	}
}

// TestConnBehaviour runs the same checks on every Conn: the in-process one
// and the remote one through the real API.
func TestConnBehaviour(t *testing.T) {
	for _, tc := range connEnvs {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.env(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const node = "n2"

			if err := e.conn.RegisterNode(ctx, client.Node{ID: node, Hostname: "box", Role: "agent", Status: "ready", Availability: "active",
				Capacity: client.ResourceAmounts{CPUs: 2}}); err != nil {
				t.Fatalf("register: %v", err)
			}
			var n client.Node
			if _, err := store.GetJSON(ctx, e.st, store.NodeKey(node), &n); err != nil || n.Capacity.CPUs != 2 || n.Hostname != "box" {
				t.Fatalf("node record after register: %+v %v", n, err)
			}

			tasks, err := e.conn.WatchTasks(ctx, node)
			if err != nil {
				t.Fatal(err)
			}
			if set := next(t, tasks); len(set) != 0 {
				t.Fatalf("first task set: got %d tasks, want 0", len(set))
			}
			task := store.TaskRecord{Replica: client.Replica{ID: "shop.web.1.x", Project: "shop", Service: "web", Slot: 1, Node: node},
				Spec: client.ServiceSpec{Secrets: []client.FileRef{{Source: "pw"}, {Source: "nope"}}, Configs: []client.FileRef{{Source: "conf"}}}}
			e.st.Txn(ctx, nil, store.Put(store.TaskKey(node, task.ID), store.Encode(task)))
			e.st.Txn(ctx, nil, store.Put(store.TaskKey("n9", "elsewhere"), store.Encode(store.TaskRecord{Replica: client.Replica{ID: "elsewhere"}})))
			waitSet(t, tasks, "the new task", func(s []store.TaskRecord) bool { return len(s) == 1 && s[0].ID == task.ID })

			st := client.ReplicaStatus{State: client.StateRunning, Ready: true}
			if err := e.conn.ReportStatus(ctx, task.ID, node, st); err != nil {
				t.Fatalf("report: %v", err)
			}
			var got client.ReplicaStatus
			if _, err := store.GetJSON(ctx, e.st, store.TaskStatusKey(task.ID), &got); err != nil || !got.Ready {
				t.Fatalf("stored status %+v %v", got, err)
			}
			if err := e.conn.ReportStatus(ctx, "nope", node, st); !errors.Is(err, agent.ErrTaskGone) {
				t.Fatalf("report of an unassigned task: got %v, want ErrTaskGone", err)
			}

			sealed, _ := e.box.Seal([]byte("s3cret"))
			e.st.Txn(ctx, nil, store.Put(store.SecretKey("shop", "pw"), store.Encode(store.SecretRecord{Sealed: sealed})),
				store.Put(store.ConfigKey("shop", "conf"), store.Encode(store.ConfigRecord{Data: []byte("x=1")})))
			if b, err := e.conn.Secret(ctx, "shop", "pw"); err != nil || string(b) != "s3cret" {
				t.Fatalf("secret: got %q %v", b, err)
			}
			if b, err := e.conn.Config(ctx, "shop", "conf"); err != nil || string(b) != "x=1" {
				t.Fatalf("config: got %q %v", b, err)
			}
			if _, err := e.conn.Secret(ctx, "shop", "nope"); err == nil {
				t.Fatal("missing secret: no error")
			}

			cleanups, err := e.conn.WatchCleanups(ctx, node)
			if err != nil {
				t.Fatal(err)
			}
			if set := next(t, cleanups); len(set) != 0 {
				t.Fatalf("first cleanup set: got %d, want 0", len(set))
			}
			e.st.Txn(ctx, nil, store.Put(store.CleanupKey("old"), store.Encode(store.CleanupRecord{Project: "old", Nodes: []string{node}})))
			waitSet(t, cleanups, "the cleanup", func(s []store.CleanupRecord) bool { return len(s) == 1 && s[0].Project == "old" })
			if err := e.conn.CleanupDone(ctx, "old", node); err != nil {
				t.Fatalf("cleanup done: %v", err)
			}
			waitSet(t, cleanups, "no cleanup", func(s []store.CleanupRecord) bool { return len(s) == 0 })

			if d, err := e.conn.Heartbeat(ctx, node, client.NodeLoad{CPU: 1}); err != nil || d != 3*time.Second {
				t.Fatalf("heartbeat: got %s %v, want 3s", d, err)
			}

			cancel()
			for range tasks { // the channel closes when ctx ends
			}
		})
	}
}

// TestRemoteWatchReconnects cuts every connection: the watch comes back with
// the full set, by itself.
func TestRemoteWatchReconnects(t *testing.T) {
	e := remoteEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tasks, _ := e.conn.WatchTasks(ctx, "n2")
	next(t, tasks)
	e.srv.CloseClientConnections()
	task := store.TaskRecord{Replica: client.Replica{ID: "t1", Node: "n2"}}
	e.st.Txn(ctx, nil, store.Put(store.TaskKey("n2", task.ID), store.Encode(task)))
	waitSet(t, tasks, "the task written while cut off", func(s []store.TaskRecord) bool { return len(s) == 1 })
	e.srv.CloseClientConnections()
	waitSet(t, tasks, "the full set again after a cut", func(s []store.TaskRecord) bool { return len(s) == 1 })
}

// TestRemoteRefusedAfterRemoval: a removed node gets ErrRefused.
func TestRemoteRefusedAfterRemoval(t *testing.T) {
	e := remoteEnv(t)
	ctx := context.Background()
	e.st.Txn(ctx, nil, store.Delete(store.NodeKey("n2")))
	_, err := e.conn.Heartbeat(ctx, "n2", client.NodeLoad{})
	if !errors.Is(err, agent.ErrRefused) {
		t.Fatalf("heartbeat of a removed node: got %v, want ErrRefused", err)
	}
	if err := e.conn.RegisterNode(ctx, client.Node{ID: "n2"}); !errors.Is(err, agent.ErrRefused) {
		t.Fatalf("register of a removed node: got %v, want ErrRefused", err)
	}
}

// TestRemoteSilentStreamReopened: a stream that stops sending (not even
// keep-alives) is deemed dead after StreamIdle and opened again.
func TestRemoteSilentStreamReopened(t *testing.T) {
	opened := make(chan struct{}, 10)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opened <- struct{}{}
		w.Write([]byte(`{"set":[]}` + "\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then silence
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	rc := agent.NewRemoteConn(agent.RemoteConfig{Managers: []string{srv.URL}, RootCAs: pool, StreamIdle: 200 * time.Millisecond})
	defer rc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tasks, _ := rc.WatchTasks(ctx, "n2")
	for i := range 2 {
		select {
		case <-opened:
		case <-time.After(10 * time.Second):
			t.Fatalf("stream opened %d times, want 2", i)
		}
		next(t, tasks)
	}
}

// TestRemoteRecordsEvents: a joined node's replica events reach the
// managers' event log, under its own node name.
func TestRemoteRecordsEvents(t *testing.T) {
	e := remoteEnv(t)
	rc := e.conn.(*agent.RemoteConn)
	rc.Record(context.Background(), client.Event{Type: "replica", Action: "started", Project: "shop", Replica: "web.1", Node: "someone-else"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		kvs, _, _ := e.st.List(context.Background(), store.EventsPrefix)
		if len(kvs) == 1 {
			var ev client.Event
			store.Decode(kvs[0], &ev)
			if ev.Action != "started" || ev.Node != "n2" {
				t.Fatalf("recorded %+v", ev)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events recorded, want 1", len(kvs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRemoteRefusesAnAgentAsManager: another agent's node certificate,
// signed by the cluster CA for the manager's address, does not make its
// holder a manager: the agent sends it nothing (and takes no tasks from it).
func TestRemoteRefusesAnAgentAsManager(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	evil, err := ca.IssueNode(pki.NodeRequest{ID: "evil", Role: pki.RoleAgent, Names: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int32
	fake := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.Write([]byte(`{"interval":"1s"}`))
	}))
	fake.TLS = &tls.Config{Certificates: []tls.Certificate{evil}}
	fake.StartTLS()
	defer fake.Close()
	rc := agent.NewRemoteConn(agent.RemoteConfig{Managers: []string{fake.URL}, Cert: evil, RootCAs: ca.Pool(), Timeout: 5 * time.Second})
	defer rc.Close()
	_, err = rc.Heartbeat(context.Background(), "n2", client.NodeLoad{})
	if n := got.Load(); n != 0 || err == nil {
		t.Fatalf("requests the impostor got: %d (heartbeat error %v), want 0 and an error", n, err)
	}
}

// TestHeartbeatRefusalOutranksAnUnreachableManager: when one manager
// refuses the node and another cannot answer, the heartbeat reports the
// refusal, whichever answer came last.
func TestHeartbeatRefusalOutranksAnUnreachableManager(t *testing.T) {
	refusing := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"status":403,"code":"` + agent.CodeNodeRemoved + `","message":"node n2 was removed"}`))
	}))
	defer refusing.Close()
	failing := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // answers last
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	pool := x509.NewCertPool()
	pool.AddCert(refusing.Certificate())
	pool.AddCert(failing.Certificate())
	rc := agent.NewRemoteConn(agent.RemoteConfig{Managers: []string{refusing.URL, failing.URL}, RootCAs: pool})
	defer rc.Close()
	_, err := rc.Heartbeat(context.Background(), "n2", client.NodeLoad{})
	if !errors.Is(err, agent.ErrNodeRemoved) {
		t.Fatalf("got %v, want ErrNodeRemoved", err)
	}
}
