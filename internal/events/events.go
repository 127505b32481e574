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
