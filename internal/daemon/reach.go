package daemon

import (
	"context"
	"io"
	"log/slog"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/apiserver"
	"github.com/ruche-platform/ruche/internal/nodeapi"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// clusterLogs is the API's log source on a manager: the in-process agent
// for this node, the node API of every other node holding a replica.
type clusterLogs struct{ l *nodeapi.ClusterLogs }

// newClusterLogs builds the fan-out; calls to the node API send the
// manager's own node certificate held by mcert (in memory, RoleManager,
// renewed while the manager runs).
func newClusterLogs(ca *pki.CA, mcert *pki.Keypair, nodeID string, st store.Store, local *agent.Agent, log *slog.Logger) clusterLogs {
	deps := nodeapi.ClusterLogsDeps{Store: st, Remote: nodeapi.NewKeypairClient(mcert, ca.Pool()), Log: log}
	if local != nil {
		deps.Local = local
	}
	return clusterLogs{nodeapi.NewClusterLogs(nodeapi.ClusterLogsConfig{LocalNode: nodeID}, deps)}
}

// agentLogs is the in-process agent as the node API's log source; nil
// (not a typed nil) without an agent.
func agentLogs(ag *agent.Agent) nodeapi.LogSource {
	if ag == nil {
		return nil
	}
	return ag
}

func (c clusterLogs) Logs(ctx context.Context, project, service string, o apiserver.LogOptions, w io.Writer) error {
	return c.l.Logs(ctx, project, service, agent.LogOptions{Follow: o.Follow, Since: o.Since, Tail: o.Tail}, w)
}
