package controller

import (
	"context"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
)

// eventQueueLen bounds the passes whose events wait to be written.
const eventQueueLen = 1024

// eventQueue writes the events of passes off the reconcile loop, in order,
// by one writer (events.Recorder.RecordAll: one transaction per 100). In
// the loop, the events of a pass that placed 1,000 replicas cost ten
// transactions waited for one after the other (bench/scheduler). The queue
// is bounded: when it is full the loop waits, so events are never dropped
// and the loop never runs far ahead of them. Events are best effort as
// before: a failed write is logged by the recorder.
type eventQueue struct {
	ch   chan []client.Event
	done chan struct{}
}

// startEvents starts the writer. Writes outlive ctx: what is queued when
// Run ends is still written (each write bounded by the store), by stop.
func startEvents(ctx context.Context, rec *events.Recorder) *eventQueue {
	q := &eventQueue{ch: make(chan []client.Event, eventQueueLen), done: make(chan struct{})}
	wctx := context.WithoutCancel(ctx)
	go func() {
		defer close(q.done)
		for evs := range q.ch {
			rec.RecordAll(wctx, evs)
		}
	}()
	return q
}

// send queues the events of one pass.
func (q *eventQueue) send(evs []client.Event) {
	if len(evs) > 0 {
		q.ch <- evs
	}
}

// stop writes what is queued and ends the writer.
func (q *eventQueue) stop() {
	close(q.ch)
	<-q.done
}
