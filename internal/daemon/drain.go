package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/proxy"
)

// drainTimeout is the proxies' drain timeout of these ingress flags.
func drainTimeout(cfg IngressConfig) time.Duration {
	if cfg.DrainTimeout > 0 {
		return cfg.DrainTimeout
	}
	return proxy.DefaultDrainTimeout
}

// crossNodeSettle is how long a stopping replica keeps running after this
// node's proxy drained it when the other nodes' proxies could not be asked
// (no manager answered): time for them to take the table without it,
// streamed at once, and to finish what they sent it.
const crossNodeSettle = 2 * time.Second

// crossNodeMargin is added to the proxies' drain timeout to bound the
// wait for the other nodes (a node that stops answering mid-drain).
const crossNodeMargin = 15 * time.Second

// drainOthers drains a replica from the proxies of every node but this
// one: the managers' nodeapi.ClusterDrain, in process on a manager, over
// the agent API on an agent node.
type drainOthers func(ctx context.Context, taskID string) error

// crossNodeDrainer is the agent's drainer. On a single node it is the
// local proxy (local may be nil: no ingress). In a cluster (others
// non-nil) the local proxy drains the replica first, then every other
// node's proxy does, each answering once the replica is out of its table
// and nothing it sent there is in flight: the replica is out of every
// proxy before its stop signal. When the others cannot be asked, it warns
// and waits crossNodeSettle instead. timeout is the proxies' drain
// timeout.
func crossNodeDrainer(local agent.Drainer, others drainOthers, timeout time.Duration, log *slog.Logger) agent.Drainer {
	if others == nil {
		return local
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return clusterDrainer{local: local, others: others, bound: timeout + crossNodeMargin, log: log}
}

type clusterDrainer struct {
	local  agent.Drainer
	others drainOthers
	bound  time.Duration
	log    *slog.Logger
}

func (d clusterDrainer) Drain(ctx context.Context, taskID string) error {
	var err error
	if d.local != nil {
		err = d.local.Drain(ctx, taskID)
	}
	octx, cancel := context.WithTimeout(ctx, d.bound)
	oerr := d.others(octx, taskID)
	cancel()
	if oerr == nil || ctx.Err() != nil {
		if err == nil {
			err = ctx.Err()
		}
		return err
	}
	d.log.Warn("other nodes' proxies did not confirm the drain; waiting a fixed time instead", "task", taskID, "settle", crossNodeSettle, "err", oerr)
	t := time.NewTimer(crossNodeSettle)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	if err == nil {
		err = fmt.Errorf("other nodes: %w", oerr)
	}
	return err
}
