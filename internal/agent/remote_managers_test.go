package agent_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
)

// TestRemoteHeartbeatEveryManager: a beat goes to every manager, returns
// with the first answer, never waits for a manager that hangs (and sends it
// no second beat while one is in flight), and learns the managers the
// answers name.
func TestRemoteHeartbeatEveryManager(t *testing.T) {
	var beatsA, beatsB, beatsC atomic.Int32
	release := make(chan struct{})
	var urlC string
	answer := func(n *atomic.Int32, managers func() []string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			json.NewEncoder(w).Encode(agent.HeartbeatReply{Interval: client.Duration(time.Second), Managers: managers()})
		}
	}
	c := httptest.NewTLSServer(answer(&beatsC, func() []string { return nil }))
	defer c.Close()
	urlC = c.URL
	a := httptest.NewTLSServer(answer(&beatsA, func() []string { return []string{urlC} }))
	defer a.Close()
	b := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		beatsB.Add(1)
		select { // a manager that does not answer
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer b.Close()
	defer close(release)

	pool := x509.NewCertPool()
	pool.AddCert(a.Certificate())
	rc := agent.NewRemoteConn(agent.RemoteConfig{Managers: []string{b.URL, a.URL}, RootCAs: pool, Timeout: time.Minute})
	defer rc.Close()
	ctx := context.Background()
	for i := range 3 {
		got, err := rc.Heartbeat(ctx, "n1", client.NodeLoad{})
		if err != nil || got != time.Second {
			t.Fatalf("beat %d: got %v, %v; want 1s, nil", i, got, err)
		}
	}
	if got, want := rc.Managers(), []string{b.URL, a.URL, urlC}; !slices.Equal(got, want) {
		t.Errorf("managers: got %v, want %v", got, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for (beatsC.Load() == 0 || beatsB.Load() == 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// A gets the first beat (nobody else answers it) and at most one per
	// call; a later one may be skipped while A's previous beat is still in
	// flight, since each call returns with the first answer (C's, say).
	if a := beatsA.Load(); a < 1 || a > 3 || beatsC.Load() == 0 {
		t.Errorf("beats: a got %d (want 1 to 3), c got %d (want some)", a, beatsC.Load())
	}
	if n := beatsB.Load(); n != 1 {
		t.Errorf("the hanging manager got %d beats, want 1 (one in flight at most)", n)
	}
}
