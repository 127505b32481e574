package nodeapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/store"
)

// The drain of a stopping replica across the cluster. Its own node's proxy
// drains it first; then a manager asks every other node's proxy, through
// its node API, to drain it as well: each answers once the replica is out
// of its table and nothing it sent there is in flight (or its drain
// timeout passed). Only then is the replica stopped: "removed from every
// proxy, then drained", acknowledged by each proxy instead of assumed
// after a fixed wait.

// drain is POST /v1/drain?task=ID: this node's proxy drains the replica.
// A node without an ingress has nothing to drain.
func (s *Server) drain(w http.ResponseWriter, r *http.Request) {
	task := r.URL.Query().Get("task")
	if task == "" {
		http.Error(w, "task is required", http.StatusBadRequest)
		return
	}
	agent.WriteDrainAnswer(w, func() error {
		if s.d.Drainer == nil {
			return nil
		}
		return s.d.Drainer.Drain(r.Context(), task)
	})
}

// Drain asks node (at addr) to drain task from its proxy and waits for
// its answer.
func (c *Client) Drain(ctx context.Context, node, addr, task string) error {
	resp, err := c.open(ctx, node, addr, http.MethodPost, "/v1/drain", url.Values{"task": {task}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := agent.ReadDrainAnswer(resp.Body); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	return nil
}

// NodeDrainer drains a replica from one remote node's proxy: *Client.
type NodeDrainer interface {
	Drain(ctx context.Context, node, addr, task string) error
}

// ClusterDrainConfig configures ClusterDrain.
type ClusterDrainConfig struct {
	// LocalNode is the node of the manager's own proxy (Deps.Local),
	// drained directly; "" when the manager runs no agent.
	LocalNode string
	// Port is the node API port used when a node record names no
	// NodeAPIAddr. Default DefaultPort.
	Port string
	// Settle is how long a drain lasts at least, from its start, when a
	// node's proxy cannot be asked: another manager's (managers serve no
	// node API yet). Its table, streamed at once, drops the replica
	// meanwhile. Default 2s.
	Settle time.Duration
}

// ClusterDrainDeps are ClusterDrain's collaborators.
type ClusterDrainDeps struct {
	Store  store.Store
	Local  agent.Drainer // the manager's own proxy; may be nil
	Remote NodeDrainer   // may be nil: remote nodes count as failed
	Log    *slog.Logger
}

// ClusterDrain is the managers' side of a cross-node drain.
type ClusterDrain struct {
	cfg ClusterDrainConfig
	d   ClusterDrainDeps
	log *slog.Logger
}

// NewClusterDrain returns the cross-node drain. It does no I/O.
func NewClusterDrain(cfg ClusterDrainConfig, d ClusterDrainDeps) *ClusterDrain {
	if cfg.Port == "" {
		cfg.Port = DefaultPort
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Second
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ClusterDrain{cfg: cfg, d: d, log: log.With("component", "clusterdrain")}
}

// Drain drains task from the proxy of every node but from (whose own
// proxy did it already), all at once, and returns when each answered. A
// node marked down is skipped: it gets no table and is not expected to
// answer. Another manager serves no node API: for it, the drain lasts at
// least Settle. The error names every node that failed; the others
// drained.
func (c *ClusterDrain) Drain(ctx context.Context, task, from string) error {
	start := time.Now()
	kvs, _, err := c.d.Store.List(ctx, store.NodesPrefix)
	if err != nil {
		return fmt.Errorf("cross-node drain of %s: %w", task, err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var unasked []string
	for _, kv := range kvs {
		var n client.Node
		if err := store.Decode(kv, &n); err != nil || n.ID == "" || n.ID == from || n.Status == client.NodeDown {
			continue
		}
		if n.ID != c.cfg.LocalNode && n.NodeAPIAddr == "" && strings.Contains(n.Role, "manager") {
			unasked = append(unasked, n.ID)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n.ID == c.cfg.LocalNode {
				if c.d.Local != nil {
					if err := c.d.Local.Drain(ctx, task); err != nil {
						fail(fmt.Errorf("node %s: %w", n.ID, err))
					}
				}
				return
			}
			addr, err := nodeAPIAddr(n, c.cfg.Port)
			if err != nil {
				fail(fmt.Errorf("node %s: %w", n.ID, err))
				return
			}
			if c.d.Remote == nil {
				fail(fmt.Errorf("%w: node %s: no node API client", ErrUnreachable, n.ID))
				return
			}
			if err := c.d.Remote.Drain(ctx, n.ID, addr, task); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if len(unasked) > 0 {
		c.log.Debug("drain: managers' proxies cannot be asked; waiting a fixed time for them", "task", task, "nodes", unasked, "settle", c.cfg.Settle)
		t := time.NewTimer(time.Until(start.Add(c.cfg.Settle)))
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if len(errs) > 0 {
		return fmt.Errorf("cross-node drain of %s: %w", task, errors.Join(errs...))
	}
	return nil
}

// nodeAPIAddr is where node n serves its node API, from its record: its
// NodeAPIAddr (a wildcard host there means its Addr), else Addr:port.
func nodeAPIAddr(n client.Node, port string) (string, error) {
	if n.NodeAPIAddr != "" {
		host, p, err := net.SplitHostPort(n.NodeAPIAddr)
		if err == nil && (host == "" || host == "0.0.0.0" || host == "::") && n.Addr != "" {
			return net.JoinHostPort(n.Addr, p), nil // listening on every address
		}
		return n.NodeAPIAddr, nil
	}
	if n.Addr == "" {
		return "", ErrNoAddress
	}
	return net.JoinHostPort(n.Addr, port), nil
}
