package agent

import (
	"context"
	"time"

	"github.com/ruche-platform/ruche/internal/runtime"
)

// The sweep of unused project networks.
//
// A project's network stays on a node after its last replica there is
// gone: when the replicas moved to other nodes, were scaled away, or were
// removed as orphans after a restore from a backup. Only `ruche rm` asks
// the nodes to clean up, and an engine has a few dozen address pools: the
// leftovers, one per project and node, end up making every new network
// fail ("could not find an available, non-overlapping IPv4 address
// pool"). So the cleaner also removes, now and then, the networks of this
// cluster whose project has nothing on the engine and nothing assigned
// here, once they are older than Config.NetworkIdle.
//
// The age is what keeps a network a replica is about to use: a supervisor
// ensures its networks, then creates its container. If a sweep still wins
// that race, the create finds the network missing and ensures it again
// (task.go), as for a network removed by hand. Networks without the
// cluster label (another cluster's on a shared engine, or made before the
// label existed) are never touched.

// sweepEvery is how often the cleaner sweeps: a tenth of the idle time,
// at least once a minute when the idle time is long.
func (a *Agent) sweepEvery() time.Duration {
	return min(a.cfg.NetworkIdle/10, time.Minute)
}

// sweepNetworks removes this cluster's project networks that are older
// than the idle time and whose project is not in busy and has no
// container on the engine (any node's, any state). Failures are logged;
// the next sweep tries again.
func (a *Agent) sweepNetworks(ctx context.Context, busy map[string]bool) {
	if a.cfg.NetworkIdle < 0 || a.cfg.ClusterID == "" {
		return
	}
	if a.pn != nil {
		// ruche's own: no address in use is enough (an address is taken
		// before the container is created, so none is about to be used).
		if err := a.removePrivnets("", busy); err != nil {
			a.log.Warn("network sweep: removing an unused private network failed", "err", err)
		}
	}
	nets, err := a.rt.Networks(ctx, map[string]string{runtime.LabelManaged: "true", runtime.LabelCluster: a.cfg.ClusterID})
	if err != nil {
		a.log.Warn("network sweep: listing networks failed", "err", err)
		return
	}
	for _, n := range nets {
		project := n.Labels[runtime.LabelProject]
		if project == "" || busy[project] || time.Since(n.Created) < a.cfg.NetworkIdle {
			continue
		}
		cs, err := a.rt.ListSummaries(ctx, map[string]string{runtime.LabelManaged: "true", runtime.LabelProject: project})
		if err != nil {
			a.log.Warn("network sweep: listing containers failed", "err", err)
			return
		}
		if len(cs) > 0 {
			continue
		}
		if err := a.rt.RemoveNetwork(ctx, n.Name); err != nil {
			a.log.Warn("network sweep: removing an unused network failed", "network", n.Name, "project", project, "err", err)
			continue
		}
		a.log.Info("removed an unused project network", "network", n.Name, "project", project, "created", n.Created.UTC().Format(time.RFC3339))
	}
}
