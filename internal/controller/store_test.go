package controller

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// flakyStore wraps a store to make trouble: a write slipped in before the
// controller's first transaction, a first watch that breaks.
type flakyStore struct {
	store.Store
	beforeFirstTxn  func()
	breakWatchAfter int // responses; 0: never break

	once    sync.Once
	watches atomic.Int32
}

func (f *flakyStore) Txn(ctx context.Context, cmps []store.Cmp, ops ...store.Op) (int64, error) {
	if f.beforeFirstTxn != nil {
		f.once.Do(f.beforeFirstTxn)
	}
	return f.Store.Txn(ctx, cmps, ops...)
}

func (f *flakyStore) Watch(ctx context.Context, prefix string, rev int64) <-chan store.WatchResponse {
	in := f.Store.Watch(ctx, prefix, rev)
	if f.watches.Add(1) > 1 || f.breakWatchAfter == 0 {
		return in
	}
	out := make(chan store.WatchResponse)
	go func() {
		defer close(out)
		defer func() {
			for range in { // until the caller cancels
			}
		}()
		n := 0
		for resp := range in {
			if n == f.breakWatchAfter {
				select {
				case out <- store.WatchResponse{Err: store.ErrCompacted, Revision: resp.Revision}:
				case <-ctx.Done():
				}
				return
			}
			select {
			case out <- resp:
				n++
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// A write by the API between the controller's read and its write makes the
// controller start over from fresh state, not overwrite it.
func TestConflictRetriesWithFreshState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(nil))
		defer h.close()
		h.stopController()
		flaky := &flakyStore{Store: h.st}
		flaky.beforeFirstTxn = func() { h.deploy(web("v1", 2)) } // a scale 3 -> 2 sneaks in
		o := h.observe(func(w world) string {
			if c := w.count("web"); c > 2 {
				return "a third replica was created from stale state"
			}
			return ""
		})
		h.deploy(web("v1", 3))
		h.startControllerWith(flaky)
		w := h.waitStatus("web", limit, client.UpdateCompleted)
		o.check(t)
		if rec := w.services["web"]; rec.Spec.Replicas != 2 {
			t.Errorf("record replicas = %d, want 2 (the API's write kept)", rec.Spec.Replicas)
		}
		if got := len(w.running("web")); got != 2 {
			t.Errorf("running = %d, want 2", got)
		}
		if st := w.svcStatus["web"]; st.ObservedRevision != h.modRev(store.ServiceKey(project, "web")) {
			t.Errorf("ObservedRevision = %d, want the record's revision %d", st.ObservedRevision, h.modRev(store.ServiceKey(project, "web")))
		}
	})
}

// A broken watch (compaction, a lost connection) rebuilds the cache from a
// fresh list and goes on, without doubling anything.
func TestWatchLossRelists(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, byImage(nil))
		defer h.close()
		h.stopController()
		flaky := &flakyStore{Store: h.st, breakWatchAfter: 1} // mid-deploy
		h.startControllerWith(flaky)
		h.deploy(web("v1", 3))
		w := h.waitStatus("web", limit, client.UpdateCompleted)
		if got := flaky.watches.Load(); got < 2 {
			t.Errorf("watches = %d, want a second one after the loss", got)
		}
		if got, all := len(w.running("web")), w.count("web"); got != 3 || all != 3 {
			t.Errorf("running %d of %d tasks, want 3 of 3", got, all)
		}
	})
}

func (h *harness) modRev(key string) int64 {
	h.t.Helper()
	kv, err := h.st.Get(h.ctx, key)
	if err != nil {
		h.t.Fatal(err)
	}
	return kv.ModRevision
}

func TestParseTaskID(t *testing.T) {
	tests := []struct {
		id   string
		want svcKey
		slot int
		ok   bool
	}{
		{"shop.web.2.abcd1234", svcKey{"shop", "web"}, 2, true},
		{"shop.api.v2.10.abcd1234", svcKey{"shop", "api.v2"}, 10, true},
		{"shop.web.x.abcd1234", svcKey{}, 0, false},
		{"shop.2.abcd", svcKey{}, 0, false},
		{"nodots", svcKey{}, 0, false},
		{".web.1.n", svcKey{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, slot, ok := parseTaskID(tt.id)
			if got != tt.want || slot != tt.slot || ok != tt.ok {
				t.Errorf("parseTaskID(%q) = %v, %d, %v; want %v, %d, %v", tt.id, got, slot, ok, tt.want, tt.slot, tt.ok)
			}
		})
	}
	id := newTaskID(svcKey{"shop", "web"}, 3)
	if k, slot, ok := parseTaskID(id); !ok || k != (svcKey{"shop", "web"}) || slot != 3 {
		t.Errorf("parseTaskID(newTaskID) = %v, %d, %v", k, slot, ok)
	}
}

// The cache applies a key's events by revision: replays of older events
// (after a list at a later revision) change nothing.
func TestCacheIgnoresOlderRevisions(t *testing.T) {
	c := newCache()
	key := store.ServiceKey("shop", "web")
	put := func(replicas int, rev int64) {
		rec := store.ServiceRecord{Spec: client.ServiceSpec{Name: "web", Replicas: replicas}, Version: 1}
		if _, err := c.apply(store.Event{Type: store.EventPut, KV: store.KV{Key: key, Value: store.Encode(rec), ModRevision: rev}}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	del := func(rev int64) {
		if _, err := c.apply(store.Event{Type: store.EventDelete, KV: store.KV{Key: key, ModRevision: rev}}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	put(3, 10) // listed at revision 10
	put(1, 7)  // replayed
	del(8)     // replayed
	if got := c.services[svcKey{"shop", "web"}]; got.rev != 10 || got.v.Spec.Replicas != 3 {
		t.Errorf("after replay: %+v, want the revision 10 record", got)
	}
	del(11)
	if _, ok := c.services[svcKey{"shop", "web"}]; ok {
		t.Errorf("record still cached after a newer delete")
	}
	if got := c.dependents(svcKey{"shop", "db"}); len(got) != 0 {
		t.Errorf("dependents of db = %v, want none", got)
	}
}

// Task statuses are remembered Ready since the first time seen Ready, not
// since their last write.
func TestCacheReadySince(t *testing.T) {
	c := newCache()
	id := "shop.web.1.abcdefgh"
	restarts := 0
	put := func(ready bool, rev int64, at time.Time) {
		st := client.ReplicaStatus{State: client.StateRunning, Ready: ready, Restarts: restarts}
		if _, err := c.apply(store.Event{Type: store.EventPut, KV: store.KV{Key: store.TaskStatusKey(id), Value: store.Encode(st), ModRevision: rev}}, at); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	put(true, 1, t0)
	put(true, 2, t0.Add(time.Minute))
	if got := c.statuses[id].readySince; !got.Equal(t0) {
		t.Errorf("readySince = %v, want %v", got, t0)
	}
	put(false, 3, t0.Add(2*time.Minute))
	put(true, 4, t0.Add(3*time.Minute))
	if got, want := c.statuses[id].readySince, t0.Add(3*time.Minute); !got.Equal(want) {
		t.Errorf("readySince after a dip = %v, want %v", got, want)
	}
	// The longest stretch Ready is remembered after a dip (settledAt):
	// two minutes from t0, not the shorter one after it.
	put(false, 5, t0.Add(4*time.Minute))
	if got, want := c.statuses[id].wasReady, (stretch{t0, t0.Add(2 * time.Minute)}); got != want {
		t.Errorf("wasReady = %v, want %v", got, want)
	}
	// A restart starts a new stretch, even when its agent's not-ready
	// report was not seen.
	put(true, 6, t0.Add(5*time.Minute))
	restarts = 1
	put(true, 7, t0.Add(6*time.Minute))
	if got, want := c.statuses[id].readySince, t0.Add(6*time.Minute); !got.Equal(want) {
		t.Errorf("readySince after an unseen restart = %v, want %v", got, want)
	}
}

// limitedStore refuses transactions larger than etcd's --max-txn-ops.
type limitedStore struct {
	store.Store
	max int
}

func (l *limitedStore) Txn(ctx context.Context, cmps []store.Cmp, ops ...store.Op) (int64, error) {
	if len(cmps) > l.max || len(ops) > l.max {
		return 0, fmt.Errorf("too many operations in txn request: %d compares, %d ops", len(cmps), len(ops))
	}
	return l.Store.Txn(ctx, cmps, ops...)
}

// A deploy larger than one transaction can hold is written in several.
func TestLargeDeployIsBatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxOps, n = 16, 60
		h := newHarnessWith(t, byImage(nil), Config{Seed: 1, MaxTxnOps: maxOps})
		defer h.close()
		h.stopController()
		h.startControllerWith(&limitedStore{Store: h.st, max: maxOps})
		h.deploy(web("v1", n))
		w := h.waitStatus("web", limit, client.UpdateCompleted)
		if got := len(w.running("web")); got != n {
			t.Errorf("running = %d, want %d", got, n)
		}
		h.remove("web")
		h.waitFor("web removed", limit, func(w world) bool {
			_, ok := w.svcStatus["web"]
			return w.count("web") == 0 && !ok
		})
	})
}

// A pass stops adding task records once they reach MaxTxnBytes: with a
// budget smaller than one record, every transaction carries one task (and
// the status), and the deploy still converges.
func TestDeployBatchedByBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 6
		h := newHarnessWith(t, byImage(nil), Config{Seed: 1, MaxTxnBytes: 1})
		defer h.close()
		h.stopController()
		h.startControllerWith(&limitedStore{Store: h.st, max: 3})
		h.deploy(web("v1", n))
		w := h.waitStatus("web", limit, client.UpdateCompleted)
		if got := len(w.running("web")); got != n {
			t.Errorf("running = %d, want %d", got, n)
		}
	})
}

// laggingStore delivers each watch response 50 ms late, with the latest
// revision the store has sent in its header, as etcd does for a watch that
// is more than 1,000 revisions behind (mvcc syncWatchers sends a batch of
// old events with the store's current revision).
type laggingStore struct{ store.Store }

func (l laggingStore) Watch(ctx context.Context, prefix string, fromRev int64) <-chan store.WatchResponse {
	in := l.Store.Watch(ctx, prefix, fromRev)
	out := make(chan store.WatchResponse)
	var mu sync.Mutex
	var queue []store.WatchResponse
	var latest int64
	more := make(chan struct{}, 1)
	go func() {
		for resp := range in {
			mu.Lock()
			queue = append(queue, resp)
			latest = max(latest, resp.Revision)
			mu.Unlock()
			select {
			case more <- struct{}{}:
			default:
			}
		}
		close(more)
	}()
	go func() {
		defer close(out)
		for {
			mu.Lock()
			if len(queue) == 0 {
				mu.Unlock()
				if _, ok := <-more; !ok {
					return
				}
				continue
			}
			resp := queue[0]
			queue = queue[1:]
			mu.Unlock()
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			mu.Lock()
			resp.Revision = latest
			mu.Unlock()
			select {
			case out <- resp:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// A watch response whose header is ahead of its events must not let a pass
// run on a cache that lacks the controller's own last write: every slot
// gets exactly one task, ever.
func TestWatchHeaderAheadOfEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 40
		h := newHarnessWith(t, byImage(nil), Config{Seed: 1, MaxTxnOps: 8})
		defer h.close()
		h.stopController()
		h.startControllerWith(laggingStore{h.st})
		h.deploy(web("v1", n))
		w := h.waitStatus("web", limit, client.UpdateCompleted)
		if got := len(w.running("web")); got != n {
			t.Errorf("running = %d, want %d", got, n)
		}
		if got := h.metric("ruche_controller_tasks_created_total"); got != n {
			t.Errorf("tasks created = %v, want %d (a slot filled twice)", got, n)
		}
	})
}

// slowStore holds every transaction a second (of the bubble's clock) and
// records how many were in flight at once.
type slowStore struct {
	store.Store
	mu       sync.Mutex
	inFlight int
	most     int
}

func (s *slowStore) Txn(ctx context.Context, cmps []store.Cmp, ops ...store.Op) (int64, error) {
	s.mu.Lock()
	s.inFlight++
	s.most = max(s.most, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	time.Sleep(time.Second)
	return s.Store.Txn(ctx, cmps, ops...)
}

// The passes of one round commit concurrently: three services deployed
// while no controller runs are placed by the first round's three
// transactions at once, and each gets its replicas, once.
func TestRoundCommitsOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 3
		names := []string{"api", "web", "worker"}
		h := newHarness(t, byImage(nil))
		defer h.close()
		h.stopController()
		for _, name := range names {
			h.deploy(web("v1", n, func(s *client.ServiceSpec) { s.Name = name }))
		}
		slow := &slowStore{Store: h.st}
		h.startControllerWith(slow)
		for _, name := range names {
			w := h.waitStatus(name, limit, client.UpdateCompleted)
			if got := len(w.running(name)); got != n {
				t.Errorf("%s running = %d, want %d", name, got, n)
			}
		}
		if got, want := h.metric("ruche_controller_tasks_created_total"), float64(len(names)*n); got != want {
			t.Errorf("tasks created = %v, want %v", got, want)
		}
		slow.mu.Lock()
		defer slow.mu.Unlock()
		if got, want := slow.most, len(names); got != want {
			t.Errorf("transactions in flight at most = %d, want %d (one per service of the round)", got, want)
		}
	})
}
