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
// proxy did it already), all at once, and returns when each answered:
// the nodes of the node records, and the managers of the manager records
// (a `ruche server` has a proxy but no node record). A node marked down
// is skipped: it gets no table and is not expected to answer. A manager
// with no node API (an older one), or one without a node record that
// cannot be reached, is not waited for by an answer: the drain then lasts
// at least Settle. The error names every node that failed; the others
// drained.
func (c *ClusterDrain) Drain(ctx context.Context, task, from string) error {
	start := time.Now()
	targets, err := c.targets(ctx, from)
	if err != nil {
		return fmt.Errorf("cross-node drain of %s: %w", task, err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		unasked []string
	)
	for _, tg := range targets {
		if tg.addr == "" && tg.name != c.cfg.LocalNode {
			unasked = append(unasked, tg.name)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch {
			case tg.name == c.cfg.LocalNode:
				if c.d.Local != nil {
					if err = c.d.Local.Drain(ctx, task); err != nil {
						err = fmt.Errorf("node %s: %w", tg.name, err)
					}
				}
			case c.d.Remote == nil:
				err = fmt.Errorf("%w: node %s: no node API client", ErrUnreachable, tg.name)
			default:
				err = c.d.Remote.Drain(ctx, tg.name, tg.addr, task) // names the node
			}
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if tg.bestEffort {
				unasked = append(unasked, tg.name)
				c.log.Debug("drain: a manager's proxy did not answer", "task", task, "manager", tg.name, "err", err)
				return
			}
			errs = append(errs, err)
		}()
	}
	wg.Wait()
	if len(unasked) > 0 {
		c.log.Debug("drain: waiting a fixed time for proxies that cannot be asked", "task", task, "nodes", unasked, "settle", c.cfg.Settle)
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

// drainTarget is a proxy to ask: its node (or manager) name and node API
// address ("" when it has none).
type drainTarget struct {
	name, addr string
	// bestEffort: a manager known only by its manager record; a failure
	// to answer costs the settle time, not an error.
	bestEffort bool
}

// targets are the proxies a drain asks, from the node and manager records.
func (c *ClusterDrain) targets(ctx context.Context, from string) ([]drainTarget, error) {
	mkvs, _, err := c.d.Store.List(ctx, store.ManagersPrefix)
	if err != nil {
		return nil, err
	}
	managers := map[string]string{} // name -> node API address
	for _, kv := range mkvs {
		var m store.ManagerRecord
		if store.Decode(kv, &m) == nil && m.Name != "" {
			managers[m.Name] = m.NodeAPIAddr
		}
	}
	nkvs, _, err := c.d.Store.List(ctx, store.NodesPrefix)
	if err != nil {
		return nil, err
	}
	var out []drainTarget
	seen := map[string]bool{from: true}
	for _, kv := range nkvs {
		var n client.Node
		if store.Decode(kv, &n) != nil || n.ID == "" || seen[n.ID] {
			continue
		}
		seen[n.ID] = true
		if n.Status == client.NodeDown {
			continue
		}
		tg := drainTarget{name: n.ID}
		_, manager := managers[n.ID]
		switch {
		case n.NodeAPIAddr == "" && managers[n.ID] != "":
			tg.addr = managers[n.ID]
		case n.NodeAPIAddr == "" && (manager || strings.Contains(n.Role, "manager")):
			// a manager without a node API: not asked
		default:
			if tg.addr, err = nodeAPIAddr(n, c.cfg.Port); err != nil {
				tg.addr = "" // no address: not asked
			}
		}
		out = append(out, tg)
	}
	for name, addr := range managers {
		if !seen[name] {
			out = append(out, drainTarget{name: name, addr: addr, bestEffort: true})
		}
	}
	return out, nil
}

// nodeAPIAddr is where node n serves its node API, from its record: its
// NodeAPIAddr (a wildcard host there means its Addr), else Addr:port.
func nodeAPIAddr(n client.Node, port string) (string, error) {
	if n.NodeAPIAddr != "" {
		return Reachable(n.NodeAPIAddr, n.Addr), nil
	}
	if n.Addr == "" {
		return "", ErrNoAddress
	}
	return net.JoinHostPort(n.Addr, port), nil
}

// Reachable is listen address addr as other machines reach it: a wildcard
// or empty host becomes host (when host is known). Anything else, and "",
// stays as it is.
func Reachable(addr, host string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return addr
	}
	if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	return net.JoinHostPort(host, port)
}
