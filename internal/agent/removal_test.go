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
	replaced := &remoteError{status: 403, code: "forbidden", msg: "replaced"}
	type step struct {
		at  time.Duration // since the start
		err error         // nil: a success
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  bool
	}{
		{"removal answers over the window", []step{{0, removed}, {5 * time.Second, removed}, {10 * time.Second, removed}}, true},
		{"too short a window", []step{{0, removed}, {time.Second, removed}, {2 * time.Second, removed}, {3 * time.Second, removed}}, false},
		{"too few answers", []step{{0, removed}, {time.Minute, removed}}, false},
		{"a success starts again", []step{{0, removed}, {5 * time.Second, removed}, {6 * time.Second, nil}, {10 * time.Second, removed}, {11 * time.Second, removed}}, false},
		{"other refusals are no removal", []step{{0, replaced}, {5 * time.Second, replaced}, {10 * time.Second, replaced}}, false},
		{"other errors between do not reset", []step{{0, removed}, {3 * time.Second, replaced}, {5 * time.Second, removed}, {10 * time.Second, removed}}, true},
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
			got := false
			select {
			case <-r.done:
				got = true
			default:
			}
			if got != tc.want {
				t.Fatalf("removed: got %v, want %v", got, tc.want)
			}
		})
	}
	if !errors.Is(removed, ErrNodeRemoved) || !errors.Is(removed, ErrRefused) {
		t.Error("a node_removed answer is not ErrNodeRemoved and ErrRefused")
	}
}

// TestRemoteConnRemoved: a RemoteConn closes Removed after the managers'
// node_removed answers, and never for a manager that is down or answers
// 5xx (a manager restarting), however long that lasts.
func TestRemoteConnRemoved(t *testing.T) {
	var mode atomic.Value // "removed", "down", "ok"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "removed":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"status":403,"code":"node_removed","message":"node n2 was removed"}`))
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
	if isRemoved() {
		t.Fatal("removed after 5xx answers")
	}
	mode.Store("removed")
	_, err := c.Heartbeat(ctx, "n2", client.NodeLoad{})
	if !errors.Is(err, ErrNodeRemoved) {
		t.Fatalf("heartbeat: got %v, want ErrNodeRemoved", err)
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
		t.Fatal("not removed after 3 node_removed answers")
	}
}
