package nodeapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/store"
)

// NodeLogs fetches a service's logs from one remote node: *Client.
type NodeLogs interface {
	Logs(ctx context.Context, node, addr, project, service string, opts agent.LogOptions, w io.Writer) error
}

// ClusterLogsConfig configures ClusterLogs.
type ClusterLogsConfig struct {
	// LocalNode is the node of the in-process agent (Deps.Local), asked
	// directly; "" when the manager runs no agent.
	LocalNode string
	// Port is the node API port used when a node record names no
	// NodeAPIAddr: <Addr>:<Port>. Default DefaultPort.
	Port string
	// RetryMin and RetryMax bound the backoff of a followed node that
	// cannot be reached. Defaults 1s and 30s.
	RetryMin, RetryMax time.Duration
}

// ClusterLogsDeps are ClusterLogs' collaborators.
type ClusterLogsDeps struct {
	Store  store.Store
	Local  LogSource // may be nil
	Remote NodeLogs  // may be nil: remote nodes are reported unreachable
	Log    *slog.Logger
}

// ClusterLogs is the managers' log source: it fans a request out to every
// node holding a replica of the service (from the task records), merges
// their lines, and with Follow also streams nodes that get a replica
// later. A node it cannot reach is reported as one line,
// "error: node N: ...", and (when following) retried with backoff; the
// other nodes' streams go on.
type ClusterLogs struct {
	cfg ClusterLogsConfig
	d   ClusterLogsDeps
	log *slog.Logger
}

// NewClusterLogs returns the log source. It does no I/O.
func NewClusterLogs(cfg ClusterLogsConfig, d ClusterLogsDeps) *ClusterLogs {
	if cfg.Port == "" {
		cfg.Port = DefaultPort
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(30*time.Second, cfg.RetryMin)
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ClusterLogs{cfg: cfg, d: d, log: log.With("component", "clusterlogs")}
}

// Logs writes the merged output of the service's replicas on every node
// to w. Without Follow it returns once every node's stream ended; with
// Follow, when ctx ends. Failures of single nodes are lines in the output,
// not errors; the error is for what concerns the whole request (the store).
func (l *ClusterLogs) Logs(ctx context.Context, project, service string, opts agent.LogOptions, w io.Writer) error {
	start := time.Now()
	kvs, rev, err := l.d.Store.List(ctx, store.TasksPrefix)
	if err != nil {
		return fmt.Errorf("logs: list tasks: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := &fanout{l: l, ctx: ctx, project: project, service: service, out: &lockedWriter{w: w}, nodes: map[string]bool{}}
	for _, kv := range kvs {
		if node, ok := f.nodeOf(kv); ok {
			f.add(node, opts)
		}
	}
	if opts.Follow {
		// A node that gets its first replica later is streamed from when
		// the request began: what its replicas wrote since.
		later := opts
		later.Tail = 0
		if later.Since.Before(start) {
			later.Since = start
		}
		for resp := range l.d.Store.Watch(ctx, store.TasksPrefix, rev+1) {
			if resp.Err != nil {
				if ctx.Err() == nil {
					f.line(fmt.Sprintf("error: following the service's replicas: %v", resp.Err))
				}
				break
			}
			for _, ev := range resp.Events {
				if ev.Type != store.EventPut {
					continue
				}
				if node, ok := f.nodeOf(ev.KV); ok {
					f.add(node, later)
				}
			}
		}
		<-ctx.Done()
	}
	f.wg.Wait()
	return nil
}

type fanout struct {
	l                *ClusterLogs
	ctx              context.Context
	project, service string
	out              *lockedWriter
	wg               sync.WaitGroup
	nodes            map[string]bool // owned by Logs' goroutine
}

// nodeOf returns the node of a task record of the service.
func (f *fanout) nodeOf(kv store.KV) (string, bool) {
	var t store.TaskRecord
	if store.Decode(kv, &t) != nil || t.Project != f.project || t.Service != f.service || t.Node == "" {
		return "", false
	}
	return t.Node, true
}

// add starts streaming a node not streamed yet.
func (f *fanout) add(node string, opts agent.LogOptions) {
	if f.nodes[node] {
		return
	}
	f.nodes[node] = true
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.follow(node, opts)
	}()
}

// line writes one whole line.
func (f *fanout) line(s string) {
	_, _ = f.out.Write([]byte(strings.TrimRight(s, "\n") + "\n"))
}

// follow streams one node; when following, it reconnects after a failure
// or an end of stream, from where it broke, reporting only the first of a
// run of failures.
func (f *fanout) follow(node string, opts agent.LogOptions) {
	bo := f.l.cfg.RetryMin
	failing := false
	for {
		began := time.Now()
		err := f.stream(node, opts)
		if f.ctx.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				f.line(fmt.Sprintf("error: node %s: %v", node, err))
			}
			f.l.log.Debug("node logs failed", "node", node, "err", err)
		}
		failing = err != nil
		if !opts.Follow {
			return
		}
		broke := time.Now()
		if err == nil || broke.Sub(began) > f.l.cfg.RetryMax {
			bo = f.l.cfg.RetryMin // it streamed for a while: start the backoff over
		}
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(bo):
		}
		bo = min(2*bo, f.l.cfg.RetryMax)
		// Pick up where it broke: lines written meanwhile, not the tail again.
		opts.Tail = 0
		if opts.Since.Before(broke) {
			opts.Since = broke
		}
	}
}

// stream copies one node's logs once.
func (f *fanout) stream(node string, opts agent.LogOptions) error {
	lw := &lineWriter{w: f.out}
	defer lw.flush()
	if node == f.l.cfg.LocalNode && f.l.d.Local != nil {
		err := f.l.d.Local.Logs(f.ctx, f.project, f.service, opts, lw)
		if err == nil && lw.remoteErr != "" {
			err = errors.New(lw.remoteErr)
		}
		return err
	}
	if f.l.d.Remote == nil {
		return fmt.Errorf("%w: this manager does not reach other nodes", ErrUnreachable)
	}
	addr, err := f.addr(node)
	if err != nil {
		return err
	}
	return f.l.d.Remote.Logs(f.ctx, node, addr, f.project, f.service, opts, lw)
}

// addr is where the node serves its node API, from its node record.
func (f *fanout) addr(node string) (string, error) {
	var n client.Node
	if _, err := store.GetJSON(f.ctx, f.l.d.Store, store.NodeKey(node), &n); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("%w: no node record", ErrNoAddress)
		}
		return "", err
	}
	return nodeAPIAddr(n, f.l.cfg.Port)
}
