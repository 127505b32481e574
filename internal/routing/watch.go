package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// Config configures a Watcher.
type Config struct {
	LocalNode  string
	DefaultTLS string
}

// Deps are the Watcher's collaborators.
type Deps struct {
	Store store.Store
	Log   *slog.Logger
	// OnChange receives every new table, in order, from one goroutine.
	OnChange func(*Table)
}

// Watcher keeps the routing table current from the store.
type Watcher struct {
	cfg Config
	d   Deps
	log *slog.Logger

	services map[string]store.ServiceRecord
	tasks    map[string]store.TaskRecord // by key
	statuses map[string]client.ReplicaStatus
	nodes    map[string]client.Node
	mesh     map[string]bool // nodes on the mesh
	last     []byte
}

// New returns a Watcher. It does no I/O.
func New(cfg Config, d Deps) *Watcher {
	return &Watcher{cfg: cfg, d: d, log: d.Log.With("component", "routing")}
}

// Run lists, builds, and follows the store until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		rev, err := w.load(ctx)
		if err != nil {
			w.log.Warn("routing: load failed; retrying", "err", err)
			if !sleep(ctx, time.Second) {
				break
			}
			continue
		}
		w.emit(rev)
		for resp := range w.d.Store.Watch(ctx, store.Root, rev+1) {
			if resp.Err != nil {
				w.log.Info("routing: watch ended; reloading", "err", resp.Err)
				break
			}
			changed := false
			for _, ev := range resp.Events {
				changed = w.apply(ev) || changed
			}
			if changed {
				// The revision of the last event applied, not the
				// response header's: etcd sends a catching-up watch the
				// current revision with older events.
				w.emit(resp.Events[len(resp.Events)-1].KV.ModRevision)
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (w *Watcher) load(ctx context.Context) (int64, error) {
	w.services = map[string]store.ServiceRecord{}
	w.tasks = map[string]store.TaskRecord{}
	w.statuses = map[string]client.ReplicaStatus{}
	w.nodes = map[string]client.Node{}
	w.mesh = map[string]bool{}
	_, rev, err := w.d.Store.List(ctx, store.ClusterKey)
	if err != nil {
		return 0, err
	}
	// Each list is at its own revision, at or after rev; watching from
	// rev+1 replays what came in between, and apply is idempotent.
	for _, prefix := range []string{store.ServicesPrefix, store.TasksPrefix, store.TaskStatusPrefix, store.NodesPrefix, store.MeshNodesPrefix} {
		kvs, _, err := w.d.Store.List(ctx, prefix)
		if err != nil {
			return 0, err
		}
		for _, kv := range kvs {
			w.apply(store.Event{Type: store.EventPut, KV: kv})
		}
	}
	return rev, nil
}

// apply updates the cache with one event and reports whether it may change
// the table.
func (w *Watcher) apply(ev store.Event) bool {
	k := ev.KV.Key
	del := ev.Type == store.EventDelete
	switch {
	case strings.HasPrefix(k, store.ServicesPrefix):
		p, s, ok := store.SplitService(k)
		if !ok {
			return false
		}
		if del {
			delete(w.services, p+"/"+s)
			return true
		}
		var rec store.ServiceRecord
		if w.decode(ev.KV, &rec) {
			w.services[p+"/"+s] = rec
		}
	case strings.HasPrefix(k, store.TasksPrefix):
		if del {
			delete(w.tasks, k)
			return true
		}
		var t store.TaskRecord
		if w.decode(ev.KV, &t) {
			w.tasks[k] = t
		}
	case strings.HasPrefix(k, store.TaskStatusPrefix):
		id := store.Last(k)
		if del {
			delete(w.statuses, id)
			return true
		}
		var st client.ReplicaStatus
		if w.decode(ev.KV, &st) {
			w.statuses[id] = st
		}
	case strings.HasPrefix(k, store.NodesPrefix):
		if del {
			delete(w.nodes, store.Last(k))
			return true
		}
		var n client.Node
		if w.decode(ev.KV, &n) {
			w.nodes[n.ID] = n
		}
	case strings.HasPrefix(k, store.MeshNodesPrefix):
		if del {
			delete(w.mesh, store.Last(k))
			return true
		}
		var n client.MeshNode
		if w.decode(ev.KV, &n) {
			w.mesh[n.Node] = n.PublicKey != ""
		}
	default:
		return false
	}
	return true
}

func (w *Watcher) decode(kv store.KV, v any) bool {
	if err := store.Decode(kv, v); err != nil {
		w.log.Warn("routing: skipping a record", "err", err)
		return false
	}
	return true
}

// emit builds the table and hands it on if it differs from the last one.
func (w *Watcher) emit(rev int64) {
	tasks := make([]store.TaskRecord, 0, len(w.tasks))
	for _, t := range w.tasks {
		tasks = append(tasks, t)
	}
	t := Build(Input{Services: w.services, Tasks: tasks, Statuses: w.statuses, Nodes: w.nodes, Mesh: w.mesh,
		LocalNode: w.cfg.LocalNode, DefaultTLS: w.cfg.DefaultTLS}, rev)
	b, err := json.Marshal(t.Routes)
	if err != nil {
		panic(fmt.Sprintf("routing: marshal table: %v", err))
	}
	if bytes.Equal(b, w.last) {
		return
	}
	w.last = b
	if w.d.OnChange != nil {
		w.d.OnChange(t)
	}
}
