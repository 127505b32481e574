package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
)

func TestRemovalVerdict(t *testing.T) {
	removed := &remoteError{status: 403, code: CodeNodeRemoved, msg: "removed"}
	replaced := &remoteError{status: 403, code: CodeNodeReplaced, msg: "replaced"}
	other := &remoteError{status: 403, code: "forbidden", msg: "another node's path"}
	type step struct {
		at  time.Duration // since the start
		err error         // nil: a success
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  error // the verdict; nil: none
	}{
		{"removal answers over the window", []step{{0, removed}, {5 * time.Second, removed}, {10 * time.Second, removed}}, ErrNodeRemoved},
		{"replaced answers over the window", []step{{0, replaced}, {5 * time.Second, replaced}, {10 * time.Second, replaced}}, ErrNodeReplaced},
		{"too short a window", []step{{0, removed}, {time.Second, removed}, {2 * time.Second, removed}, {3 * time.Second, removed}}, nil},
		{"too few answers", []step{{0, replaced}, {time.Minute, replaced}}, nil},
		{"a success starts again", []step{{0, removed}, {5 * time.Second, removed}, {6 * time.Second, nil}, {10 * time.Second, removed}, {11 * time.Second, removed}}, nil},
		{"a success starts again, replaced", []step{{0, replaced}, {5 * time.Second, replaced}, {6 * time.Second, nil}, {10 * time.Second, replaced}, {11 * time.Second, replaced}}, nil},
		{"other refusals are no removal", []step{{0, other}, {5 * time.Second, other}, {10 * time.Second, other}}, nil},
		{"other errors between do not reset", []step{{0, removed}, {3 * time.Second, other}, {5 * time.Second, removed}, {10 * time.Second, removed}}, ErrNodeRemoved},
		{"another terminal kind starts a run of its own", []step{{0, removed}, {5 * time.Second, removed}, {10 * time.Second, replaced}, {12 * time.Second, replaced}}, nil},
		{"the last kind's run decides", []step{{0, removed}, {5 * time.Second, replaced}, {10 * time.Second, replaced}, {15 * time.Second, replaced}}, ErrNodeReplaced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var now time.Time
			r := newRemoval(10 * time.Second)
			r.now = func() time.Time { return now }
			for _, s := range tc.steps {
				now = start.Add(s.at)
				r.observe(s.err)
			}
			closed := false
			select {
			case <-r.done:
				closed = true
			default:
			}
			if got := r.result(); got != tc.want || closed != (tc.want != nil) {
				t.Fatalf("verdict: got %v (done closed: %v), want %v", got, closed, tc.want)
			}
		})
	}
	if !errors.Is(removed, ErrNodeRemoved) || !errors.Is(removed, ErrRefused) {
		t.Error("a node_removed answer is not ErrNodeRemoved and ErrRefused")
	}
	if !errors.Is(replaced, ErrNodeReplaced) || !errors.Is(replaced, ErrRefused) || errors.Is(replaced, ErrNodeRemoved) {
		t.Error("a node_replaced answer is not ErrNodeReplaced and ErrRefused only")
	}
}

// TestRemoteConnRemoved: a RemoteConn closes Removed after the managers'
// node_removed (or node_replaced) answers, with that verdict, and never for
// a manager that is down or answers 5xx (a manager restarting), however
// long that lasts.
func TestRemoteConnRemoved(t *testing.T) {
	for _, tc := range []struct {
		code string
		want error
	}{
		{CodeNodeRemoved, ErrNodeRemoved},
		{CodeNodeReplaced, ErrNodeReplaced},
	} {
		t.Run(tc.code, func(t *testing.T) { testRemoteConnVerdict(t, tc.code, tc.want) })
	}
}

func testRemoteConnVerdict(t *testing.T, code string, want error) {
	var mode atomic.Value // "removed", "down", "ok"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "removed":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"status":403,"code":"` + code + `","message":"node n2 refused"}`))
		case "down":
			http.Error(w, "starting", http.StatusServiceUnavailable)
		default:
			w.Write([]byte(`{"interval":"1s"}`))
		}
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := NewRemoteConn(RemoteConfig{Managers: []string{srv.URL}, RootCAs: pool, RemovedAfter: time.Nanosecond})
	defer c.Close()
	ctx := context.Background()
	isRemoved := func() bool {
		select {
		case <-c.Removed():
			return true
		default:
			return false
		}
	}

	mode.Store("down")
	for range 10 {
		c.Heartbeat(ctx, "n2", client.NodeLoad{})
		c.RegisterNode(ctx, client.Node{ID: "n2"})
	}
	if isRemoved() || c.Verdict() != nil {
		t.Fatalf("removed after 5xx answers (verdict %v)", c.Verdict())
	}
	mode.Store("removed")
	_, err := c.Heartbeat(ctx, "n2", client.NodeLoad{})
	if !errors.Is(err, want) {
		t.Fatalf("heartbeat: got %v, want %v", err, want)
	}
	mode.Store("ok")
	if _, err := c.Heartbeat(ctx, "n2", client.NodeLoad{}); err != nil {
		t.Fatal(err)
	}
	mode.Store("removed")
	for range 2 {
		c.RegisterNode(ctx, client.Node{ID: "n2"})
	}
	if isRemoved() {
		t.Fatal("removed after 2 answers since a success, want 3")
	}
	c.RegisterNode(ctx, client.Node{ID: "n2"})
	if !isRemoved() {
		t.Fatalf("not removed after 3 %s answers", code)
	}
	if got := c.Verdict(); got != want {
		t.Fatalf("verdict: got %v, want %v", got, want)
	}
}
