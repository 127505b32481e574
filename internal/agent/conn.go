package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/nodes"
	"github.com/ruche-platform/ruche/internal/store"
)

// Conn is the agent's link to the managers: its assignments in, its
// reports out. The agent knows nothing of the store; LocalConn is the
// in-process implementation over a store.Store (ruche up), a remote one
// over mutual TLS comes with multi-node.
type Conn interface {
	// RegisterNode announces the node (and refreshes its description).
	RegisterNode(ctx context.Context, n client.Node) error
	// WatchTasks sends the node's full task set on every change
	// (level-triggered). The channel closes when ctx ends.
	WatchTasks(ctx context.Context, node string) (<-chan []store.TaskRecord, error)
	// ReportStatus writes a task's status; it fails with ErrTaskGone when
	// the task is no longer assigned (a status never outlives its task).
	ReportStatus(ctx context.Context, taskID string, node string, st client.ReplicaStatus) error
	// Secret returns a secret's opened (decrypted) content.
	Secret(ctx context.Context, project, name string) ([]byte, error)
	// Config returns a config's content.
	Config(ctx context.Context, project, name string) ([]byte, error)
	// WatchCleanups sends the cleanup records naming the node, in full, on
	// every change.
	WatchCleanups(ctx context.Context, node string) (<-chan []store.CleanupRecord, error)
	// CleanupDone takes the node out of a project's cleanup record,
	// deleting the record when no node is left.
	CleanupDone(ctx context.Context, project, node string) error
	// Heartbeat tells the managers the node is alive, with its live load.
	// The answer is the interval the managers want heartbeats at (0: keep
	// the current one).
	Heartbeat(ctx context.Context, node string, load client.NodeLoad) (time.Duration, error)
}

// HeartbeatSink takes heartbeats on the manager side: the leader's node
// health tracker. It returns the heartbeat interval agents should use.
type HeartbeatSink interface {
	Beat(node string, load client.NodeLoad) time.Duration
}

// Opener opens sealed secrets (see store.SecretRecord).
type Opener interface {
	Open(sealed []byte) ([]byte, error)
}

// LocalConn is a Conn over a store.Store, for an agent in the manager's
// process.
type LocalConn struct {
	st      store.Store
	secrets Opener
	// Beats takes the node's heartbeats; nil drops them (no node health
	// tracking in this process).
	Beats HeartbeatSink
}

// NewLocalConn returns a Conn over st; secrets (may be nil when no project
// uses secrets) opens sealed secret records.
func NewLocalConn(st store.Store, secrets Opener) *LocalConn {
	return &LocalConn{st: st, secrets: secrets}
}

var _ Conn = (*LocalConn)(nil)

// RegisterNode writes the node record, keeping what the managers own in it
// (role, availability, status, their labels: nodes.Register) when it exists.
func (c *LocalConn) RegisterNode(ctx context.Context, n client.Node) error {
	key := store.NodeKey(n.ID)
	for {
		var old client.Node
		rev, err := store.GetJSON(ctx, c.st, key, &old)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("register node: %w", err)
		}
		var prev *client.Node
		if rev != 0 {
			prev = &old
		}
		rec := nodes.Register(prev, n)
		_, err = c.st.Txn(ctx, []store.Cmp{store.ModRevisionIs(key, rev)}, store.Put(key, store.Encode(rec)))
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("register node: %w", err)
		}
		return nil
	}
}

// Heartbeat hands the beat to Beats.
func (c *LocalConn) Heartbeat(ctx context.Context, node string, load client.NodeLoad) (time.Duration, error) {
	if c.Beats == nil {
		return 0, nil
	}
	return c.Beats.Beat(node, load), nil
}

// WatchTasks watches the node's assignments.
func (c *LocalConn) WatchTasks(ctx context.Context, node string) (<-chan []store.TaskRecord, error) {
	return watchSet(ctx, c.st, store.NodeTasksPrefix(node), func(kv store.KV) (store.TaskRecord, bool) {
		var t store.TaskRecord
		if err := store.Decode(kv, &t); err != nil || t.ID == "" {
			return t, false
		}
		return t, true
	})
}

// WatchCleanups watches the cleanup records naming node.
func (c *LocalConn) WatchCleanups(ctx context.Context, node string) (<-chan []store.CleanupRecord, error) {
	return watchSet(ctx, c.st, store.CleanupPrefix, func(kv store.KV) (store.CleanupRecord, bool) {
		var r store.CleanupRecord
		if err := store.Decode(kv, &r); err != nil {
			return r, false
		}
		return r, slices.Contains(r.Nodes, node)
	})
}

// ReportStatus writes st if the task is still assigned to node.
func (c *LocalConn) ReportStatus(ctx context.Context, taskID, node string, st client.ReplicaStatus) error {
	_, err := c.st.Txn(ctx, []store.Cmp{store.KeyExists(store.TaskKey(node, taskID))},
		store.Put(store.TaskStatusKey(taskID), store.Encode(st)))
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("report status of %s: %w", taskID, ErrTaskGone)
	}
	if err != nil {
		return fmt.Errorf("report status of %s: %w", taskID, err)
	}
	return nil
}

// Secret reads and opens a secret.
func (c *LocalConn) Secret(ctx context.Context, project, name string) ([]byte, error) {
	var rec store.SecretRecord
	if _, err := store.GetJSON(ctx, c.st, store.SecretKey(project, name), &rec); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	if c.secrets == nil {
		return nil, fmt.Errorf("secret %s: %w", name, ErrNoOpener)
	}
	data, err := c.secrets.Open(rec.Sealed)
	if err != nil {
		return nil, fmt.Errorf("open secret %s: %w", name, err)
	}
	return data, nil
}

// Config reads a config.
func (c *LocalConn) Config(ctx context.Context, project, name string) ([]byte, error) {
	var rec store.ConfigRecord
	if _, err := store.GetJSON(ctx, c.st, store.ConfigKey(project, name), &rec); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return rec.Data, nil
}

// CleanupDone takes node out of the project's cleanup record.
func (c *LocalConn) CleanupDone(ctx context.Context, project, node string) error {
	key := store.CleanupKey(project)
	for {
		var rec store.CleanupRecord
		rev, err := store.GetJSON(ctx, c.st, key, &rec)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("cleanup done: %w", err)
		}
		rec.Nodes = slices.DeleteFunc(rec.Nodes, func(n string) bool { return n == node })
		op := store.Put(key, store.Encode(rec))
		if len(rec.Nodes) == 0 {
			op = store.Delete(key)
		}
		_, err = c.st.Txn(ctx, []store.Cmp{store.ModRevisionIs(key, rev)}, op)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cleanup done: %w", err)
		}
		return nil
	}
}

// watchSet lists prefix, then follows it, sending the full decoded set on
// every change. On a watch error it re-lists (with backoff) and goes on.
// The channel holds at most one set: a slow reader gets the latest.
func watchSet[T any](ctx context.Context, st store.Store, prefix string, decode func(store.KV) (T, bool)) (<-chan []T, error) {
	kvs, rev, err := st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make(chan []T, 1)
	go func() {
		defer close(out)
		items := map[string]T{}
		reset := func(kvs []store.KV) {
			clear(items)
			for _, kv := range kvs {
				if v, ok := decode(kv); ok {
					items[kv.Key] = v
				}
			}
		}
		send := func() {
			keys := make([]string, 0, len(items))
			for k := range items {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			set := make([]T, 0, len(keys))
			for _, k := range keys {
				set = append(set, items[k])
			}
			select { // replace a set the reader has not taken yet
			case <-out:
			default:
			}
			out <- set
		}
		reset(kvs)
		send()
		bo := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
		for {
			wctx, cancel := context.WithCancel(ctx)
			for resp := range st.Watch(wctx, prefix, rev+1) {
				if resp.Err != nil {
					break
				}
				for _, ev := range resp.Events {
					if v, ok := decode(ev.KV); ok && ev.Type == store.EventPut {
						items[ev.KV.Key] = v
					} else {
						delete(items, ev.KV.Key)
					}
				}
				rev = resp.Revision
				bo.reset()
				send()
			}
			cancel()
			for {
				if !sleep(ctx, bo.next()) {
					return
				}
				kvs, rev, err = st.List(ctx, prefix)
				if err == nil {
					break
				}
			}
			reset(kvs)
			send()
		}
	}()
	return out, nil
}
