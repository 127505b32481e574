package nodes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/store"
)

// MonitorDeps are the Monitor's collaborators.
type MonitorDeps struct {
	Store   store.Store
	Tracker *Tracker
	Events  *events.Recorder // may be nil
	Log     *slog.Logger     // may be nil
}

// Monitor turns heartbeats into node status changes: a node silent for
// DownAfter is marked "down", a down node that beats again "ready". It
// writes changes only, and runs on the leader only (under the same
// election as the controller).
type Monitor struct {
	cfg    Config
	st     store.Store
	tr     *Tracker
	events *events.Recorder
	log    *slog.Logger
}

// NewMonitor returns a Monitor using the tracker's timing. It does no I/O.
func NewMonitor(d MonitorDeps) *Monitor {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{cfg: d.Tracker.Config(), st: d.Store, tr: d.Tracker, events: d.Events, log: log.With("component", "nodes")}
}

// nodeEntry is a node record as last seen in the store.
type nodeEntry struct {
	node client.Node
	rev  int64
	// graceUntil: the node is not marked down before (a new leader, a node
	// that just joined or rejoined: its first beat may be on its way).
	graceUntil time.Time
}

// Run watches node records and marks them down or ready until ctx ends,
// then returns nil. Every node gets a grace period of DownAfter plus one
// interval from the moment Run starts (a new leader knows no heartbeat
// yet: a change of leader must not mark nodes down).
func (m *Monitor) Run(ctx context.Context) error {
	start := time.Now()
	grace := start.Add(m.cfg.DownAfter + m.cfg.Interval)
	retry := m.cfg.Interval
	for {
		err := m.session(ctx, start, grace)
		if ctx.Err() != nil {
			return nil
		}
		m.log.Warn("node watch lost, listing again", "err", err, "retry_in", retry)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		retry = min(retry*2, 30*time.Second)
	}
}

// session lists the nodes and follows them until the watch breaks.
func (m *Monitor) session(ctx context.Context, start, grace time.Time) error {
	kvs, rev, err := m.st.List(ctx, store.NodesPrefix)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	nodes := map[string]nodeEntry{}
	for _, kv := range kvs {
		m.apply(nodes, store.Event{Type: store.EventPut, KV: kv}, grace)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch := m.st.Watch(wctx, store.NodesPrefix, rev+1)
	defer func() {
		cancel()
		for range watch {
		}
	}()
	tick := time.NewTicker(m.cfg.Interval)
	defer tick.Stop()
	for {
		m.check(ctx, nodes, start)
		select {
		case <-ctx.Done():
			return nil
		case resp, ok := <-watch:
			if !ok {
				return errors.New("node watch closed")
			}
			if resp.Err != nil {
				return fmt.Errorf("watch nodes: %w", resp.Err)
			}
			for _, ev := range resp.Events {
				m.apply(nodes, ev, time.Now().Add(m.cfg.DownAfter+m.cfg.Interval))
			}
		case <-tick.C:
		case <-m.tr.revived:
		}
	}
}

// apply folds a node record change in. A node that appears, or that
// someone else (a join taking over a down node's name) set back from down,
// gets a grace period until graceUntil.
func (m *Monitor) apply(nodes map[string]nodeEntry, ev store.Event, graceUntil time.Time) {
	id := store.Last(ev.KV.Key)
	if ev.Type == store.EventDelete {
		delete(nodes, id)
		m.tr.Forget(id)
		return
	}
	var n client.Node
	if err := store.Decode(ev.KV, &n); err != nil {
		m.log.Warn("node record ignored", "key", ev.KV.Key, "err", err)
		delete(nodes, id)
		return
	}
	prev, known := nodes[id]
	e := nodeEntry{node: n, rev: ev.KV.ModRevision, graceUntil: prev.graceUntil}
	if !known || (prev.node.Status == client.NodeDown && n.Status != client.NodeDown) {
		e.graceUntil = graceUntil
	}
	nodes[id] = e
}

// check marks down the nodes silent for DownAfter (once the grace period
// is over) and ready the down nodes that beat again.
func (m *Monitor) check(ctx context.Context, nodes map[string]nodeEntry, start time.Time) {
	now := time.Now()
	for id, e := range nodes {
		last, beat := m.tr.LastBeat(id)
		alive := beat && now.Sub(last) < m.cfg.DownAfter
		switch {
		case e.node.Status != client.NodeDown && !alive && !now.Before(e.graceUntil):
			silent := "no heartbeat since this manager started leading " + round(now.Sub(start)) + " ago"
			if beat {
				silent = "no heartbeat for " + round(now.Sub(last))
			}
			m.set(ctx, nodes, id, client.NodeDown, "down", fmt.Sprintf("node %s is down: %s", id, silent))
		case e.node.Status == client.NodeDown && alive:
			m.set(ctx, nodes, id, client.NodeReady, "ready", fmt.Sprintf("node %s is back: heartbeats again", id))
		case e.node.Status != client.NodeReady && e.node.Status != client.NodeDown && alive:
			// A record without a status (written by hand, or an older
			// version): a beating node is ready.
			m.set(ctx, nodes, id, client.NodeReady, "ready", fmt.Sprintf("node %s is ready: it beats", id))
		}
	}
}

// set writes node id's new status if its record did not change meanwhile;
// on a conflict the watch brings the newer record and the next check
// decides again.
func (m *Monitor) set(ctx context.Context, nodes map[string]nodeEntry, id, status, action, msg string) {
	e := nodes[id]
	n := e.node
	n.Status = status
	n.UpdatedAt = time.Now()
	key := store.NodeKey(id)
	rev, err := m.st.Txn(ctx, []store.Cmp{store.ModRevisionIs(key, e.rev)}, store.Put(key, store.Encode(n)))
	if err != nil {
		if !errors.Is(err, store.ErrConflict) && ctx.Err() == nil {
			m.log.Warn("cannot write node status", "node", id, "status", status, "err", err)
		}
		return
	}
	nodes[id] = nodeEntry{node: n, rev: rev, graceUntil: e.graceUntil}
	m.log.Info("node status", "node", id, "status", status, "message", msg)
	m.events.Record(ctx, client.Event{Type: "node", Action: action, Node: id, Message: msg})
}

func round(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
