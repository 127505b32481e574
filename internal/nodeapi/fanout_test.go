package nodeapi

import (
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/store"
)

func putTask(t *testing.T, st store.Store, project, service string, slot int, node string) {
	t.Helper()
	tk := store.TaskRecord{Replica: client.Replica{
		ID: project + "." + service + "." + itoa(slot) + ".x", Project: project, Service: service, Slot: slot, Node: node,
		DesiredState: client.DesiredRunning,
	}}
	if _, err := st.Txn(context.Background(), nil, store.Put(store.TaskKey(node, tk.ID), store.Encode(tk))); err != nil {
		t.Fatal(err)
	}
}

func putNode(t *testing.T, st store.Store, n client.Node) {
	t.Helper()
	if _, err := st.Txn(context.Background(), nil, store.Put(store.NodeKey(n.ID), store.Encode(n))); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return client.Replica{Slot: n}.Name()[1:] }

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// TestClusterLogs: the local node through the agent, a remote node through
// its node API (real mutual TLS), a node that cannot be reached as one
// error line; nodes without a replica of the service are not asked.
func TestClusterLogs(t *testing.T) {
	ca := newCA(t)
	st := store.NewMemory()
	defer st.Close()
	n2 := &fakeLogs{lines: []string{"web.2 | from n2", "web.4 | also n2"}}
	srv := startNode(t, ca, "n2", n2)
	n4 := &fakeLogs{lines: []string{"api.1 | not asked"}}
	srv4 := startNode(t, ca, "n4", n4)
	putTask(t, st, "shop", "web", 1, "n1")
	putTask(t, st, "shop", "web", 2, "n2")
	putTask(t, st, "shop", "web", 4, "n2")
	putTask(t, st, "shop", "web", 3, "n3")
	putTask(t, st, "shop", "api", 1, "n4")
	putTask(t, st, "shop", "web", 5, "n5")
	putNode(t, st, client.Node{ID: "n2", Addr: "192.0.2.1", NodeAPIAddr: hostOf(srv)})
	putNode(t, st, client.Node{ID: "n3", Addr: "127.0.0.1"}) // default port: closed
	putNode(t, st, client.Node{ID: "n4", NodeAPIAddr: hostOf(srv4)})
	// n5 has no node record.
	mgr, err := ManagerCert(ca, "m1")
	if err != nil {
		t.Fatal(err)
	}
	local := &fakeLogs{lines: []string{"web.1 | from n1"}}
	cl := NewClusterLogs(ClusterLogsConfig{LocalNode: "n1", Port: closedPort(t)}, ClusterLogsDeps{
		Store: st, Local: local, Remote: NewClient(mgr, ca.Pool()),
	})
	var out strings.Builder
	if err := cl.Logs(context.Background(), "shop", "web", agent.LogOptions{Tail: 3}, &out); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	got := sortedLines(out.String())
	if len(got) != 5 {
		t.Fatalf("got lines %q, want 5", got)
	}
	if !strings.HasPrefix(got[0], "error: node n3: ") || !strings.Contains(got[0], "unreachable") {
		t.Errorf("n3: got %q, want an unreachable error line", got[0])
	}
	if !strings.HasPrefix(got[1], "error: node n5: ") || !strings.Contains(got[1], "no node record") {
		t.Errorf("n5: got %q, want a no-address error line", got[1])
	}
	if want := []string{"web.1 | from n1", "web.2 | from n2", "web.4 | also n2"}; !reflect.DeepEqual(got[2:], want) {
		t.Errorf("lines: got %q, want %q", got[2:], want)
	}
	if len(n2.opts()) != 1 || n2.opts()[0].Tail != 3 || len(local.opts()) != 1 {
		t.Errorf("calls: n2 %+v, local %+v; want one each with tail 3", n2.opts(), local.opts())
	}
	if len(n4.opts()) != 0 {
		t.Errorf("n4 holds no replica of the service and was asked: %+v", n4.opts())
	}
}

// syncBuffer is a goroutine-safe output.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedLines(s.b.String())
}

// fakeNodes is NodeLogs over in-memory nodes, for synctest bubbles.
type fakeNodes struct {
	mu    sync.Mutex
	fails map[string]int // node -> calls left that fail
	nodes map[string]*fakeLogs
	addrs []string
}

func (f *fakeNodes) Logs(ctx context.Context, node, addr, project, service string, opts agent.LogOptions, w io.Writer) error {
	f.mu.Lock()
	f.addrs = append(f.addrs, node+"@"+addr)
	n := f.nodes[node]
	fail := f.fails[node] > 0
	if fail {
		f.fails[node]--
	}
	f.mu.Unlock()
	if fail || n == nil {
		n2 := &fakeLogs{err: ErrUnreachable}
		n2.Logs(ctx, project, service, opts, w)
		return ErrUnreachable
	}
	return n.Logs(ctx, project, service, opts, w)
}

// TestClusterLogsFollow: a node that fails is reported once and retried
// with backoff, from where it broke; a node that gets a replica later is
// streamed from when the request began.
func TestClusterLogsFollow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		defer st.Close()
		putTask(t, st, "shop", "web", 1, "n1")
		putTask(t, st, "shop", "web", 2, "n2")
		putNode(t, st, client.Node{ID: "n2", Addr: "10.0.0.2"})
		putNode(t, st, client.Node{ID: "n3", Addr: "10.0.0.3", NodeAPIAddr: ":7555"})
		local := &fakeLogs{lines: []string{"web.1 | first"}, more: make(chan string)}
		n2 := &fakeLogs{lines: []string{"web.2 | back"}, more: make(chan string)}
		n3 := &fakeLogs{lines: []string{"web.3 | late"}, more: make(chan string)}
		remote := &fakeNodes{fails: map[string]int{"n2": 3}, nodes: map[string]*fakeLogs{"n2": n2, "n3": n3}}
		cl := NewClusterLogs(ClusterLogsConfig{LocalNode: "n1", RetryMin: time.Second, RetryMax: 4 * time.Second}, ClusterLogsDeps{
			Store: st, Local: local, Remote: remote,
		})
		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuffer
		done := make(chan error)
		began := time.Now()
		go func() { done <- cl.Logs(ctx, "shop", "web", agent.LogOptions{Follow: true, Tail: 10}, &out) }()
		synctest.Wait()
		if got, want := out.lines(), []string{"error: node n2: nodeapi: node unreachable", "web.1 | first"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("at first: got %q, want %q", got, want)
		}
		local.more <- "web.1 | second"
		// Retries after 1s, 2s, 4s: the third succeeds (failures 1..3, then n2 answers).
		time.Sleep(1*time.Second + 2*time.Second + 4*time.Second + time.Millisecond)
		synctest.Wait()
		want := []string{"error: node n2: nodeapi: node unreachable", "web.1 | first", "web.1 | second", "web.2 | back"}
		if got := out.lines(); !reflect.DeepEqual(got, want) {
			t.Fatalf("after the retries: got %q, want %q", got, want)
		}
		if calls := n2.opts(); len(calls) != 1 || calls[0].Tail != 0 || calls[0].Since.IsZero() {
			t.Errorf("n2 after a failure: got %+v, want tail 0 from where it broke", calls)
		}
		putTask(t, st, "shop", "web", 3, "n3")
		putTask(t, st, "shop", "api", 1, "n4")
		synctest.Wait()
		want = append(want, "web.3 | late")
		sortStrings(want)
		if got := out.lines(); !reflect.DeepEqual(got, want) {
			t.Fatalf("after a replica on n3: got %q, want %q", got, want)
		}
		if calls := n3.opts(); len(calls) != 1 || calls[0].Tail != 0 || !calls[0].Since.Equal(began) || !calls[0].Follow {
			t.Errorf("n3: got %+v, want follow from %v", calls, began)
		}
		remote.mu.Lock()
		addrs := remote.addrs
		remote.mu.Unlock()
		if last := addrs[len(addrs)-1]; last != "n3@10.0.0.3:7555" {
			t.Errorf("n3 reached at %q, want its node API port on its address", last)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Logs: %v", err)
		}
	})
}

func TestClusterLogsStoreError(t *testing.T) {
	st := store.NewMemory()
	st.Close()
	cl := NewClusterLogs(ClusterLogsConfig{}, ClusterLogsDeps{Store: st})
	err := cl.Logs(context.Background(), "shop", "web", agent.LogOptions{}, io.Discard)
	if err == nil || errors.Is(err, ErrUnreachable) {
		t.Errorf("got %v, want the store's error", err)
	}
}
