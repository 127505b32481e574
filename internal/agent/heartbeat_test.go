package agent

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// beatSink records beats and answers with its interval.
type beatSink struct {
	mu       sync.Mutex
	at       []time.Time
	interval time.Duration
}

func (s *beatSink) Beat(node string, load client.NodeLoad) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, time.Now())
	return s.interval
}

func (s *beatSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.at)
}

func TestHeartbeatAdoptsManagersInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		sink := &beatSink{interval: 3 * time.Second}
		h.conn.Beats = sink
		h.start()
		defer h.stop()
		// One beat at once (after registration), then every 3s, not 1s.
		if got := sink.count(); got != 1 {
			t.Fatalf("beats at start: got %d, want 1", got)
		}
		advance(10 * time.Second)
		if got := sink.count(); got != 4 { // 0, 3, 6, 9
			t.Fatalf("beats after 10s at 3s: got %d, want 4", got)
		}
		sink.mu.Lock()
		sink.interval = 0 // 0 keeps the current interval
		sink.mu.Unlock()
		advance(6 * time.Second)
		if got := sink.count(); got != 6 {
			t.Fatalf("beats after 16s: got %d, want 6", got)
		}
	})
}

func TestHeartbeatStopsWithRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		sink := &beatSink{}
		h.conn.Beats = sink
		h.start()
		advance(2500 * time.Millisecond)
		h.stop()
		n := sink.count()
		if n != 3 { // default interval 1s: 0, 1, 2
			t.Fatalf("beats in 2.5s: got %d, want 3", n)
		}
		advance(5 * time.Second)
		if got := sink.count(); got != n {
			t.Fatalf("beats after Run returned: got %d, want %d", got, n)
		}
	})
}

// A node that comes back after being down finds the replicas the
// controller replaced elsewhere set to shutdown: it stops them at once
// (adopting their containers first), so the service does not run more
// replicas than asked for.
func TestBackFromDownStopsReplacedReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRuntime(testImage)
		h := newHarness(t, rt)
		replaced := task(1, "a1", client.ServiceSpec{})
		rt.addContainer(containerSpec(replaced, nil), true) // still running from before
		replaced.DesiredState = client.DesiredShutdown
		h.put(replaced)
		h.start()
		defer h.stop()
		h.waitState(replaced.ID, client.StateShutdown)
		if _, _, ok := rt.container(replaced.ID); ok {
			t.Error("replaced replica's container still there")
		}
		if creates, _ := rt.counts(); creates != 1 {
			t.Errorf("creates: got %d, want 1 (the old container only, nothing started)", creates)
		}
	})
}
