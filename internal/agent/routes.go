package agent

import (
	"context"

	"github.com/ruche-platform/ruche/internal/routing"
)

// WatchRoutes follows the node's routing table as the managers compute it
// (GET {prefix}<node>/routes; an agent has no store): the full table on
// every change, the latest only, reconnecting like the other streams. The
// channel closes when ctx ends.
func (c *RemoteConn) WatchRoutes(ctx context.Context, node string) <-chan []routing.Route {
	return watchRemote[routing.Route](ctx, c, nodePath(node, "routes"))
}
