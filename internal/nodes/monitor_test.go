package nodes

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/store"
)

// bench is a monitor on a memory store with nodes n1 and n2, in a bubble.
type bench struct {
	t    *testing.T
	st   *store.Memory
	tr   *Tracker
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func newBench(t *testing.T, status string) *bench {
	b := &bench{t: t, st: store.NewMemory(), tr: NewTracker(Config{})}
	b.ctx, b.stop = context.WithCancel(context.Background())
	for _, id := range []string{"n1", "n2"} {
		n := client.Node{ID: id, Status: status, Availability: client.AvailabilityActive}
		if _, err := b.st.Txn(b.ctx, nil, store.Put(store.NodeKey(id), store.Encode(n))); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func (b *bench) startMonitor() context.CancelFunc {
	ctx, cancel := context.WithCancel(b.ctx)
	m := NewMonitor(MonitorDeps{Store: b.st, Tracker: b.tr, Events: events.NewRecorder(b.st, slog.New(slog.DiscardHandler))})
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := m.Run(ctx); err != nil {
			b.t.Errorf("Run: %v", err)
		}
	}()
	return cancel
}

// beat makes node beat every second until stop is closed.
func (b *bench) beat(node string) (stop func()) {
	ctx, cancel := context.WithCancel(b.ctx)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			b.tr.Beat(node, client.NodeLoad{CPU: 0.5, Updated: time.Now()})
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return func() { cancel(); synctest.Wait() }
}

func (b *bench) close() {
	b.stop()
	b.wg.Wait()
	b.st.Close()
}

func (b *bench) status(id string) string {
	b.t.Helper()
	synctest.Wait()
	var n client.Node
	if _, err := store.GetJSON(b.ctx, b.st, store.NodeKey(id), &n); err != nil {
		b.t.Fatal(err)
	}
	return n.Status
}

func (b *bench) nodeEvents() []string {
	b.t.Helper()
	synctest.Wait()
	kvs, _, err := b.st.List(b.ctx, store.EventsPrefix)
	if err != nil {
		b.t.Fatal(err)
	}
	var out []string
	for _, kv := range kvs {
		var ev client.Event
		if err := store.Decode(kv, &ev); err != nil {
			b.t.Fatal(err)
		}
		if ev.Type == "node" {
			out = append(out, ev.Node+" "+ev.Action)
		}
	}
	return out
}

// sleepTo sleeps until d after the bubble's start.
func sleepTo(start time.Time, d time.Duration) {
	time.Sleep(time.Until(start.Add(d)))
	synctest.Wait()
}

func TestMonitorGraceThenDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBench(t, client.NodeReady)
		defer b.close()
		start := time.Now()
		stop1 := b.beat("n1")
		defer stop1()
		b.startMonitor()
		// n2 never beats: the grace period is DownAfter + Interval = 6s.
		sleepTo(start, 5900*time.Millisecond)
		if got := b.status("n2"); got != client.NodeReady {
			t.Fatalf("n2 at 5.9s (grace): got %q, want ready", got)
		}
		sleepTo(start, 6100*time.Millisecond)
		if got := b.status("n2"); got != client.NodeDown {
			t.Fatalf("n2 after grace: got %q, want down", got)
		}
		if got := b.status("n1"); got != client.NodeReady {
			t.Fatalf("n1 beats: got %q, want ready", got)
		}
		if got, want := b.nodeEvents(), []string{"n2 down"}; !equal(got, want) {
			t.Fatalf("events: got %v, want %v", got, want)
		}
	})
}

func TestMonitorDownAfterSilenceAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBench(t, client.NodeReady)
		defer b.close()
		start := time.Now()
		stop1 := b.beat("n1")
		defer stop1()
		stop2 := b.beat("n2")
		b.startMonitor()
		sleepTo(start, 20*time.Second)
		if got := b.status("n2"); got != client.NodeReady {
			t.Fatalf("n2 beating: got %q, want ready", got)
		}
		// n2's last beat is at 20s; it is down once silent for 5s (the
		// monitor checks every second).
		stop2()
		sleepTo(start, 24500*time.Millisecond)
		if got := b.status("n2"); got != client.NodeReady {
			t.Fatalf("n2 silent 4.5s: got %q, want ready", got)
		}
		sleepTo(start, 26100*time.Millisecond)
		if got := b.status("n2"); got != client.NodeDown {
			t.Fatalf("n2 silent 6s: got %q, want down", got)
		}
		// One beat brings it back at once, not at the next tick.
		sleepTo(start, 30500*time.Millisecond)
		b.tr.Beat("n2", client.NodeLoad{})
		if got := b.status("n2"); got != client.NodeReady {
			t.Fatalf("n2 beat again: got %q, want ready", got)
		}
		if got, want := b.nodeEvents(), []string{"n2 down", "n2 ready"}; !equal(got, want) {
			t.Fatalf("events: got %v, want %v", got, want)
		}
	})
}

// A new leader (a restarted monitor) gives every node the grace period
// again, even one whose last beat is older than DownAfter.
func TestMonitorRestartGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBench(t, client.NodeReady)
		defer b.close()
		start := time.Now()
		stop1 := b.beat("n1")
		defer stop1()
		b.tr.Beat("n2", client.NodeLoad{}) // then silent
		cancel := b.startMonitor()
		sleepTo(start, 3*time.Second)
		cancel() // leadership lost
		sleepTo(start, 60*time.Second)
		if got := b.status("n2"); got != client.NodeReady {
			t.Fatalf("no leader: got %q, want ready (nobody marks)", got)
		}
		b.startMonitor()
		sleepTo(start, 65500*time.Millisecond)
		if got := b.status("n2"); got != client.NodeReady {
			t.Fatalf("new leader, in grace: got %q, want ready", got)
		}
		sleepTo(start, 66500*time.Millisecond)
		if got := b.status("n2"); got != client.NodeDown {
			t.Fatalf("new leader, after grace: got %q, want down", got)
		}
		if got := b.status("n1"); got != client.NodeReady {
			t.Fatalf("n1: got %q, want ready", got)
		}
	})
}

// A node already down stays down without writes while it is silent.
func TestMonitorWritesChangesOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBench(t, client.NodeDown)
		defer b.close()
		start := time.Now()
		_, rev0, _ := b.st.List(b.ctx, store.NodesPrefix)
		b.startMonitor()
		sleepTo(start, 30*time.Second)
		kvs, _, err := b.st.List(b.ctx, store.NodesPrefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range kvs {
			if kv.ModRevision > rev0 {
				t.Errorf("%s rewritten at %d although nothing changed", kv.Key, kv.ModRevision)
			}
		}
		if got := b.nodeEvents(); len(got) != 0 {
			t.Errorf("events: got %v, want none", got)
		}
	})
}

func TestTrackerLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewTracker(Config{Interval: 2 * time.Second, DownAfter: 10 * time.Second})
		if _, ok := tr.Load("n1"); ok {
			t.Fatal("load of a node that never beat")
		}
		if got := tr.Beat("n1", client.NodeLoad{CPU: 1.5, Memory: 100}); got != 2*time.Second {
			t.Fatalf("interval: got %v, want 2s", got)
		}
		l, ok := tr.Load("n1")
		if !ok || l.CPU != 1.5 || l.Memory != 100 {
			t.Fatalf("load: got %+v %v", l, ok)
		}
		time.Sleep(10 * time.Second)
		if _, ok := tr.Load("n1"); ok {
			t.Fatal("stale load still reported")
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A node that joins (its record appears) or rejoins (a join sets a down
// node's record back to ready) gets the grace period from then: its first
// beat may be on its way.
func TestMonitorGraceForJoiningNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBench(t, client.NodeDown)
		defer b.close()
		start := time.Now()
		b.startMonitor()
		sleepTo(start, 20*time.Second)
		put := func(id, status string) {
			n := client.Node{ID: id, Status: status, Availability: client.AvailabilityActive}
			if _, err := b.st.Txn(b.ctx, nil, store.Put(store.NodeKey(id), store.Encode(n))); err != nil {
				t.Fatal(err)
			}
		}
		put("n3", client.NodeReady) // joins
		put("n2", client.NodeReady) // rejoins after being down
		sleepTo(start, 25900*time.Millisecond)
		for _, id := range []string{"n2", "n3"} {
			if got := b.status(id); got != client.NodeReady {
				t.Fatalf("%s 5.9s after joining: got %q, want ready (grace)", id, got)
			}
		}
		sleepTo(start, 26100*time.Millisecond)
		for _, id := range []string{"n2", "n3"} {
			if got := b.status(id); got != client.NodeDown {
				t.Fatalf("%s silent after its grace: got %q, want down", id, got)
			}
		}
		if got := b.status("n1"); got != client.NodeDown {
			t.Fatalf("n1: got %q, want down (untouched)", got)
		}
	})
}

func TestMonitorUnknownStatusBecomesReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBench(t, "")
		defer b.close()
		start := time.Now()
		stop := b.beat("n1")
		defer stop()
		b.startMonitor()
		sleepTo(start, 1500*time.Millisecond)
		if got := b.status("n1"); got != client.NodeReady {
			t.Fatalf("beating node without status: got %q, want ready", got)
		}
		sleepTo(start, 7*time.Second)
		if got := b.status("n2"); got != client.NodeDown {
			t.Fatalf("silent node without status: got %q, want down", got)
		}
	})
}
