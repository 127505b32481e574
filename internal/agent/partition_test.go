package agent

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// partitionedManager is a manager the node is cut off from, then reaches
// again. While cut, every request fails (and the test breaks the open
// connections, or leaves them silent); meanwhile the managers mark the
// node down (heartbeat answers say resync) and move its replicas (the
// task set changes). A task stream sends the set when it is opened, then
// nothing: not even keep-alives, as through a partition.
type partitionedManager struct {
	srv    *httptest.Server
	opened atomic.Int32 // task streams answered
	failed atomic.Int32 // task streams refused while cut
	cut    atomic.Bool
	down   atomic.Bool

	mu    sync.Mutex
	tasks []store.TaskRecord
}

func newPartitionedManager(t *testing.T, tasks ...store.TaskRecord) (*partitionedManager, *RemoteConn) {
	m := &partitionedManager{tasks: tasks}
	m.srv = httptest.NewTLSServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(m.srv.Certificate())
	rc := NewRemoteConn(RemoteConfig{Managers: []string{m.srv.URL}, RootCAs: pool, StreamIdle: 35 * time.Second})
	t.Cleanup(rc.Close)
	return m, rc
}

func (m *partitionedManager) setTasks(tasks ...store.TaskRecord) {
	m.mu.Lock()
	m.tasks = tasks
	m.mu.Unlock()
}

func (m *partitionedManager) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	m.mu.Lock()
	tasks := slices.Clone(m.tasks)
	m.mu.Unlock()
	stream := func(set any) {
		json.NewEncoder(w).Encode(map[string]any{"set": set})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	switch {
	case m.cut.Load():
		if strings.HasSuffix(p, "/tasks") {
			m.failed.Add(1)
		}
		http.Error(w, "unreachable", http.StatusBadGateway)
	case strings.HasSuffix(p, "/heartbeat"):
		json.NewEncoder(w).Encode(HeartbeatReply{Interval: client.Duration(100 * time.Millisecond), Resync: m.down.Load()})
	case strings.HasSuffix(p, "/tasks"):
		m.opened.Add(1)
		stream(tasks)
	case strings.HasSuffix(p, "/cleanups"):
		stream([]store.CleanupRecord{})
	case strings.HasSuffix(p, "/status"):
		if !slices.ContainsFunc(tasks, func(t store.TaskRecord) bool { return strings.Contains(p, "/"+t.ID+"/") }) {
			http.Error(w, `{"code":"`+CodeTaskGone+`","message":"gone"}`, http.StatusGone)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default: // register, events
		w.WriteHeader(http.StatusNoContent)
	}
}

// partition cuts the node off from m; breaking also breaks the open
// connections, and returns once the agent would not try its stream again
// for 3.2s by itself (four refused reconnections, after 0.2s, 0.4s, 0.8s
// and 1.6s). Without breaking, the open stream just goes silent.
func (m *partitionedManager) partition(t *testing.T, breaking bool) {
	t.Helper()
	m.cut.Store(true)
	if !breaking {
		return
	}
	m.srv.CloseClientConnections()
	deadline := time.Now().Add(10 * time.Second)
	for m.failed.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d reconnections refused in 10s, want 4", m.failed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventually waits up to d for ok, and returns how long it took.
func eventually(t *testing.T, d time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestRemoteResyncAfterPartition: a node cut off from the managers long
// enough to be marked down has its replicas moved elsewhere; when it
// reaches them again, its first heartbeat answer (resync) reopens the task
// stream at once, so the agent learns within moments that the replicas it
// still runs are no longer its own. Without it, the agent ran them next to
// their replacements until its stream noticed by itself: StreamIdle (35s
// by default) for a stream the partition left silent, the reconnection
// backoff (up to 10s) for one that broke.
func TestRemoteResyncAfterPartition(t *testing.T) {
	for _, tc := range []struct {
		name     string
		breaking bool
	}{{"the stream goes silent", false}, {"the stream breaks", true}} {
		t.Run(tc.name, func(t *testing.T) {
			m, rc := newPartitionedManager(t, task(1, "a1", client.ServiceSpec{}))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tasks, _ := rc.WatchTasks(ctx, "n1")
			var got []store.TaskRecord
			take := func() bool {
				select {
				case got = <-tasks:
					return true
				default:
					return false
				}
			}
			eventually(t, 5*time.Second, "the first set", take)
			// A heartbeat of a node that is not down changes nothing.
			if _, err := rc.Heartbeat(ctx, "n1", client.NodeLoad{}); err != nil {
				t.Fatal(err)
			}
			m.partition(t, tc.breaking)
			m.down.Store(true)
			m.setTasks()
			m.cut.Store(false)

			if _, err := rc.Heartbeat(ctx, "n1", client.NodeLoad{}); err != nil {
				t.Fatal(err)
			}
			took := eventually(t, 2*time.Second, "the set after the partition", take)
			t.Logf("the agent had the new set %s after it reached the managers again", took.Round(time.Millisecond))
			if len(got) != 0 {
				t.Fatalf("set after the partition: got %d tasks, want none", len(got))
			}
			if n := m.opened.Load(); n != 2 {
				t.Fatalf("task streams opened: got %d, want 2", n)
			}
			// Every manager answers resync until the node is marked ready:
			// the streams are not reopened for each answer.
			if _, err := rc.Heartbeat(ctx, "n1", client.NodeLoad{}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if n := m.opened.Load(); n != 2 {
				t.Fatalf("task streams opened after a second resync answer: got %d, want 2", n)
			}
		})
	}
}

// TestAgentStopsMovedReplicaAfterPartition runs the whole agent: while it
// cannot reach the managers it keeps its replica running (it does not know
// that it moved), and once it can, the replica the managers moved away
// (desired shutdown, as the controller's evacuation leaves it) is stopped
// within moments of its first heartbeat, not after the stream's backoff.
func TestAgentStopsMovedReplicaAfterPartition(t *testing.T) {
	tk := task(1, "a1", client.ServiceSpec{})
	m, rc := newPartitionedManager(t, tk)
	rt := newFakeRuntime(testImage)
	a := New(Config{NodeID: "n1", DataDir: t.TempDir(), HeartbeatInterval: 100 * time.Millisecond},
		Deps{Runtime: rt, Conn: rc, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	running := func() bool {
		c, _, ok := rt.container(tk.ID)
		return ok && c.Running
	}
	eventually(t, 5*time.Second, "the replica running", running)

	m.partition(t, true)
	m.down.Store(true)
	moved := tk
	moved.DesiredState = client.DesiredShutdown
	m.setTasks(moved)
	if !running() {
		t.Fatal("the agent stopped its replica because it could not reach the managers")
	}
	m.cut.Store(false)

	took := eventually(t, 2*time.Second, "the moved replica stopped", func() bool { return !running() })
	t.Logf("the moved replica ran %s after the node reached the managers again", took.Round(time.Millisecond))
}
