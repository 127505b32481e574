package daemon

import (
	"context"
	"time"

	"github.com/ruche-platform/ruche/internal/agent"
)

// crossNodeSettle is how long a stopping replica keeps running after this
// node's proxy drained it, when other nodes' proxies may send it requests.
const crossNodeSettle = 2 * time.Second

// crossNodeDrainer is the agent's drainer on a node of a cluster (it has
// an advertise address): the local proxy drains the replica (local may be
// nil: no ingress here), then other nodes' proxies get time to take the
// table without it (streamed at once, but not acknowledged) and to finish
// the requests they sent it, before its stop signal. Their own drain state
// is not known here; the replica's graceful stop covers what is longer.
// Single node: the local drainer as is.
func crossNodeDrainer(local agent.Drainer, multiNode bool) agent.Drainer {
	if !multiNode {
		return local
	}
	return settleDrainer{local: local, settle: crossNodeSettle}
}

type settleDrainer struct {
	local  agent.Drainer
	settle time.Duration
}

func (d settleDrainer) Drain(ctx context.Context, taskID string) error {
	var err error
	if d.local != nil {
		err = d.local.Drain(ctx, taskID)
	}
	t := time.NewTimer(d.settle)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}
