package daemon

import (
	"context"
	"fmt"
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

// newClusterLogs issues the manager its client certificate for the node
// API (in memory, RoleManager) and builds the fan-out.
func newClusterLogs(ca *pki.CA, nodeID string, st store.Store, local *agent.Agent, log *slog.Logger) (clusterLogs, error) {
	cert, err := nodeapi.ManagerCert(ca, nodeID)
	if err != nil {
		return clusterLogs{}, fmt.Errorf("manager certificate for the node api: %w", err)
	}
	deps := nodeapi.ClusterLogsDeps{Store: st, Remote: nodeapi.NewClient(cert, ca.Pool()), Log: log}
	if local != nil {
		deps.Local = local
	}
	return clusterLogs{nodeapi.NewClusterLogs(nodeapi.ClusterLogsConfig{LocalNode: nodeID}, deps)}, nil
}

func (c clusterLogs) Logs(ctx context.Context, project, service string, o apiserver.LogOptions, w io.Writer) error {
	return c.l.Logs(ctx, project, service, agent.LogOptions{Follow: o.Follow, Since: o.Since, Tail: o.Tail}, w)
}
