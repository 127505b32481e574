// Package events records what happens in the cluster (deploys, replica
// state changes, rollbacks, node changes) for `ruche events`. Events are
// store keys under a lease, so they expire by themselves after Retention.
package events

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// Retention is how long events are kept.
const Retention = 24 * time.Hour

// Recorder writes events. It is safe for concurrent use. Recording is best
// effort: a failure is logged, never returned, so that an event never
// blocks the work it describes.
type Recorder struct {
	st  store.Store
	log *slog.Logger
	seq atomic.Uint32

	mu      sync.Mutex
	lease   store.LeaseID
	leaseAt time.Time
}

// NewRecorder returns a Recorder writing to st.
func NewRecorder(st store.Store, log *slog.Logger) *Recorder {
	return &Recorder{st: st, log: log.With("component", "events")}
}

// Record stores ev, stamping its time if unset.
func (r *Recorder) Record(ctx context.Context, ev client.Event) {
	if r == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	lease, err := r.currentLease(ctx)
	if err == nil {
		_, err = r.st.Txn(ctx, nil, store.PutWithLease(store.EventKey(ev.Time, r.seq.Add(1)), store.Encode(ev), lease))
	}
	if err != nil {
		r.log.Warn("event not recorded", "type", ev.Type, "action", ev.Action, "err", err)
	}
}

// maxBatch bounds the events of one transaction, under etcd's default
// --max-txn-ops of 128.
const maxBatch = 100

// RecordAll stores evs, stamping the times of those unset, in
// transactions of up to 100 events: a controller pass that schedules a
// hundred replicas writes one transaction, not a hundred. Order is kept
// (keys take increasing sequence numbers).
func (r *Recorder) RecordAll(ctx context.Context, evs []client.Event) {
	if r == nil || len(evs) == 0 {
		return
	}
	lease, err := r.currentLease(ctx)
	if err != nil {
		r.log.Warn("events not recorded", "count", len(evs), "err", err)
		return
	}
	now := time.Now()
	for len(evs) > 0 {
		n := min(len(evs), maxBatch)
		ops := make([]store.Op, 0, n)
		for _, ev := range evs[:n] {
			if ev.Time.IsZero() {
				ev.Time = now
			}
			ops = append(ops, store.PutWithLease(store.EventKey(ev.Time, r.seq.Add(1)), store.Encode(ev), lease))
		}
		if _, err := r.st.Txn(ctx, nil, ops...); err != nil {
			r.log.Warn("events not recorded", "count", n, "type", evs[0].Type, "action", evs[0].Action, "err", err)
		}
		evs = evs[n:]
	}
}

// currentLease shares one lease among the events of an hour, so there is a
// lease per hour rather than per event.
func (r *Recorder) currentLease(ctx context.Context) (store.LeaseID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease != store.NoLease && time.Since(r.leaseAt) < time.Hour {
		return r.lease, nil
	}
	id, err := r.st.Grant(ctx, Retention+time.Hour)
	if err != nil {
		return 0, err
	}
	r.lease, r.leaseAt = id, time.Now()
	return id, nil
}
