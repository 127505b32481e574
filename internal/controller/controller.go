// Package controller is the reconciler: it watches desired state (service
// records) and reported state (task statuses, nodes) in the store, and
// writes task assignments and service update statuses until the two agree.
// It converges replica counts, rolls updates out (and back), honours
// depends_on, and removes what was removed. See README.md for the design.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/scheduler"
	"github.com/ruche-platform/ruche/internal/store"
)

// ErrWatchClosed is returned (and the cache rebuilt) when the store closes
// the watch without saying why.
var ErrWatchClosed = errors.New("controller: store watch closed")

// Config tunes the controller. Zero values take the defaults.
type Config struct {
	// ResyncInterval is how often every service is reconciled again even
	// if nothing changed: a safety net, not the mechanism. Default 1m.
	ResyncInterval time.Duration
	// RetryMin and RetryMax bound the backoff after a failed write or a
	// lost watch. Defaults 500ms and 30s.
	RetryMin, RetryMax time.Duration
	// MaxTxnOps caps the operations of one transaction (etcd refuses more
	// than --max-txn-ops, 128 by default). Default 100.
	MaxTxnOps int
	// MaxTxnBytes bounds the task records one transaction writes: a pass
	// stops adding once they reach it (etcd refuses requests past
	// --max-request-bytes, 1.5 MiB by default). Default 1 MiB.
	MaxTxnBytes int
	// Seed seeds the scheduler's tie breaking; 0 picks a random seed.
	Seed uint64
}

func (c Config) withDefaults() Config {
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = time.Minute
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 500 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.MaxTxnOps <= 0 {
		c.MaxTxnOps = 100
	}
	if c.MaxTxnOps < 8 {
		c.MaxTxnOps = 8
	}
	if c.MaxTxnBytes <= 0 {
		c.MaxTxnBytes = 1 << 20
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	return c
}

// Deps are the controller's collaborators.
type Deps struct {
	Store   store.Store
	Log     *slog.Logger
	Metrics prometheus.Registerer // may be nil
	Events  *events.Recorder      // may be nil
	// Loads gives the nodes' live load to the scheduler (the node health
	// tracker); may be nil.
	Loads LoadSource
}

// LoadSource is the live load of nodes (nodes.Tracker).
type LoadSource interface {
	Load(node string) (client.NodeLoad, bool)
}

// Controller reconciles services. Run it only while holding leadership.
type Controller struct {
	cfg    Config
	st     store.Store
	log    *slog.Logger
	events *events.Recorder
	evq    *eventQueue // during Run: the events' writer (eventlog.go)
	loads  LoadSource
	m      *metrics
	rng    *rand.Rand
	// backoff is the replacement bookkeeping of failed replicas, by
	// service and slot (replace.go). In memory: a new controller starts
	// every slot's backoff afresh. Only the goroutine of Run touches it,
	// and it outlives the sessions of one Run (a lost watch keeps it).
	backoff map[svcKey]map[int]slotBackoff
	// waits is why a task waits for its node (nodes.go), by task ID, so
	// that a `replica waiting` event is recorded once per reason. Only
	// Run's goroutine touches it.
	waits map[string]string
}

// New returns a Controller. It does no I/O.
func New(cfg Config, deps Deps) *Controller {
	cfg = cfg.withDefaults()
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Controller{
		cfg:     cfg,
		st:      deps.Store,
		log:     log.With("component", "controller"),
		events:  deps.Events,
		loads:   deps.Loads,
		m:       newMetrics(deps.Metrics),
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		backoff: map[svcKey]map[int]slotBackoff{},
		waits:   map[string]string{},
	}
}

// Run reconciles until ctx ends, then returns nil. A lost watch rebuilds
// the cache from a fresh list.
func (c *Controller) Run(ctx context.Context) error {
	c.evq = startEvents(ctx, c.events)
	defer c.evq.stop()
	backoff := c.cfg.RetryMin
	for {
		caughtUp, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if caughtUp {
			backoff = c.cfg.RetryMin
		}
		c.log.Warn("store watch lost, listing again", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, c.cfg.RetryMax)
	}
}

// run is the state of one session: a cache built from one list and kept
// current by one watch.
type run struct {
	c       *Controller
	cache   *cache
	planner *scheduler.Planner
	dirty   map[svcKey]bool
	wakes   map[svcKey]time.Time // timers: monitor windows, delays, retries
	retries map[svcKey]time.Duration
	// waitRev is the revision the cache must reach before reconciling:
	// the end of the initial replay, then the controller's own last
	// write, so a pass never acts on a state older than its last write.
	waitRev int64
	// catchUpBy bounds the wait for the initial replay: if the lists'
	// revisions differ because of writes outside store.Root (a shared
	// etcd), no event will ever say so. Acting on a slightly mixed cache
	// is safe: every write compares the revisions it read.
	catchUpBy time.Time
}

// catchUpWait is how long the initial replay may take; see run.catchUpBy.
const catchUpWait = time.Second

// session lists, watches and reconciles until the watch fails or ctx ends.
func (c *Controller) session(ctx context.Context) (caughtUp bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &run{c: c, cache: newCache(), dirty: map[svcKey]bool{}, wakes: map[svcKey]time.Time{}, retries: map[svcKey]time.Duration{}}
	minRev, maxRev, err := r.list(ctx)
	if err != nil {
		cancel()
		return false, err
	}
	watch := c.st.Watch(ctx, store.Root, minRev+1)
	defer func() {
		cancel()
		for range watch { // the watch's goroutine ends before Run returns
		}
	}()
	r.cache.rev, r.waitRev = minRev, maxRev
	if minRev < maxRev {
		r.catchUpBy = time.Now().Add(catchUpWait)
	}
	r.markAll()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	resync := time.NewTicker(c.cfg.ResyncInterval)
	defer resync.Stop()
	for {
		now := time.Now()
		r.due(now)
		if !r.catchUpBy.IsZero() && (r.cache.rev >= r.waitRev || !now.Before(r.catchUpBy)) {
			r.cache.rev = max(r.cache.rev, r.waitRev)
			r.catchUpBy = time.Time{}
		}
		if r.cache.rev >= r.waitRev && len(r.dirty) > 0 {
			caughtUp = true
			r.reconcileDirty(ctx, now)
			if ctx.Err() != nil {
				return caughtUp, ctx.Err()
			}
		}
		r.resetTimer(timer, now)
		select {
		case <-ctx.Done():
			return caughtUp, ctx.Err()
		case resp, ok := <-watch:
			for {
				if !ok {
					return caughtUp, ErrWatchClosed
				}
				if resp.Err != nil {
					return caughtUp, fmt.Errorf("watch: %w", resp.Err)
				}
				r.applyWatch(resp)
				// Fold in whatever else is queued before reconciling.
				select {
				case resp, ok = <-watch:
					continue
				default:
				}
				break
			}
		case <-timer.C:
		case <-resync.C:
			r.markAll()
		}
	}
}

// list reads every prefix the controller needs into the cache.
func (r *run) list(ctx context.Context) (minRev, maxRev int64, err error) {
	now := time.Now()
	for _, prefix := range listPrefixes {
		kvs, rev, err := r.c.st.List(ctx, prefix)
		if err != nil {
			return 0, 0, fmt.Errorf("list %s: %w", prefix, err)
		}
		if minRev == 0 || rev < minRev {
			minRev = rev
		}
		maxRev = max(maxRev, rev)
		for _, kv := range kvs {
			if _, err := r.cache.apply(store.Event{Type: store.EventPut, KV: kv}, now); err != nil {
				r.c.log.Warn("record ignored", "key", kv.Key, "err", err)
			}
		}
	}
	return minRev, maxRev, nil
}

func (r *run) applyWatch(resp store.WatchResponse) {
	now := time.Now()
	for _, ev := range resp.Events {
		t, err := r.cache.apply(ev, now)
		if err != nil {
			r.c.log.Warn("record ignored", "key", ev.KV.Key, "err", err)
		}
		if t.all {
			r.markAll()
		}
		for _, k := range t.services {
			r.dirty[k] = true
		}
	}
	r.cache.rev = max(r.cache.rev, seenRev(resp))
}

// seenRev is the revision the cache has seen all of once it has applied
// resp: its last event's. Not the header's: etcd sends a watch that is
// more than 1,000 revisions behind its events in batches, each with the
// store's current revision in the header (mvcc syncWatchers), so the
// header can be ahead of events still to come, and read-your-writes would
// then reconcile on a cache that lacks the controller's own last write
// (duplicate replicas under load: bench/scheduler). The header counts only
// for a response without events (a progress notification).
func seenRev(resp store.WatchResponse) int64 {
	if n := len(resp.Events); n > 0 {
		return resp.Events[n-1].KV.ModRevision
	}
	return resp.Revision
}

func (r *run) markAll() {
	for _, k := range r.cache.allServices() {
		r.dirty[k] = true
	}
}

// due marks the services whose timer has fired.
func (r *run) due(now time.Time) {
	for k, t := range r.wakes {
		if !now.Before(t) {
			delete(r.wakes, k)
			r.dirty[k] = true
		}
	}
}

func (r *run) resetTimer(t *time.Timer, now time.Time) {
	next := r.catchUpBy
	for _, w := range r.wakes {
		if next.IsZero() || w.Before(next) {
			next = w
		}
	}
	if next.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(next.Sub(now), 0))
}

// reconcileDirty reconciles every dirty service once, with one scheduler
// plan shared by all, so that placements of one round see each other.
//
// Passes decide one after the other, on the loop, but their transactions
// run concurrently (up to commitsInFlight), and the round ends once all
// have returned: the store then batches them (one fsync for many) instead
// of the loop waiting for each in turn. Nothing a pass decides reads
// another's commit: the cache does not change during a round, each
// service has one pass per round, and passes write disjoint keys (their
// own service's records and tasks), so they cannot conflict with each
// other. Results are then taken in the order the passes were decided.
func (r *run) reconcileDirty(ctx context.Context, now time.Time) {
	keys := make([]svcKey, 0, len(r.dirty))
	for k := range r.dirty {
		keys = append(keys, k)
	}
	clear(r.dirty)
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	r.changedFirst(keys)
	r.planner = nil // built on first use, see plan
	commits := make([]*commit, 0, len(keys))
	slots := make(chan struct{}, commitsInFlight)
	var wg sync.WaitGroup
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		r.c.m.passes.Inc()
		p := newPass(r, r.cache.view(k), now)
		p.reconcile()
		c := &commit{k: k, p: p}
		commits = append(commits, c)
		if !p.writes() {
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			c.rev, c.err = p.commit(ctx)
			<-slots
		})
	}
	wg.Wait()
	for _, c := range commits {
		r.committed(ctx, c, now)
	}
}

// commitsInFlight bounds the transactions of a round running at once
// (each holds up to MaxTxnOps operations).
const commitsInFlight = 8

// commit is a decided pass and what its transaction returned.
type commit struct {
	k   svcKey
	p   *pass
	rev int64
	err error
}

// committed takes a pass's result: retries, timers, bookkeeping, events.
func (r *run) committed(ctx context.Context, c *commit, now time.Time) {
	k, p, rev, err := c.k, c.p, c.rev, c.err
	switch {
	case err == nil:
	case errors.Is(err, store.ErrConflict):
		// Someone wrote what the pass read: retry once the watch brings it.
		r.c.log.Debug("conflict, retrying with fresh state", "service", k)
		r.dirty[k] = true
		r.waitRev = max(r.waitRev, r.cache.rev+1)
		return
	case ctx.Err() != nil:
		return
	default:
		backoff := r.retries[k]
		backoff = min(max(backoff*2, r.c.cfg.RetryMin), r.c.cfg.RetryMax)
		r.retries[k] = backoff
		r.wakes[k] = now.Add(backoff)
		r.c.log.Error("reconcile failed", "service", k, "err", err, "retry_in", backoff)
		return
	}
	delete(r.retries, k)
	if rev > 0 {
		r.waitRev = max(r.waitRev, rev)
	}
	delete(r.wakes, k)
	if !p.wake.IsZero() {
		r.wakes[k] = p.wake
	}
	if p.full {
		r.dirty[k] = true
	}
	if p.backoffSet {
		if len(p.backoff) == 0 {
			delete(r.c.backoff, k)
		} else {
			r.c.backoff[k] = p.backoff
		}
	}
	r.c.keepWaits(p.waitsSet)
	r.c.m.created.Add(float64(p.created))
	r.c.m.replaced.Add(float64(p.replaced))
	for _, res := range p.results {
		r.c.m.updates.WithLabelValues(res).Inc()
	}
	r.c.evq.send(p.events) // written off the loop, in order (eventlog.go)
	if old := p.v.status; p.statusSet && (old == nil || old.State != p.status.State || old.Message != p.status.Message) {
		r.c.log.Info("service status", "service", k, "state", p.status.State, "version", p.status.Version, "message", p.status.Message)
	}
}

// snapshot is the cluster for the scheduler: nodes, and the tasks that
// still hold resources on them.
func (r *run) snapshot() scheduler.Snapshot {
	var snap scheduler.Snapshot
	for _, n := range r.cache.nodes {
		node := n.v
		if r.c.loads != nil {
			if l, ok := r.c.loads.Load(node.ID); ok {
				node.Load = &l
			}
		}
		snap.Nodes = append(snap.Nodes, node)
	}
	snap.Tasks = make([]scheduler.Task, 0, len(r.cache.tasks))
	for id, t := range r.cache.tasks {
		if se := r.cache.statuses[id]; se != nil {
			switch se.st.State {
			case client.StateShutdown, client.StateFailed, client.StateComplete:
				continue
			}
		}
		snap.Tasks = append(snap.Tasks, t.sched)
	}
	return snap
}
