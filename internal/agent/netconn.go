package agent

import (
	"context"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// NetConn is the managers' side of ruche's own networks across nodes
// (DESIGN.md "Private networks"): they own the addressing and tell each
// node the mesh to build. LocalConn implements it over the store, and
// RemoteConn over the agent API; the store logic is LocalConn's.
type NetConn interface {
	// JoinMesh records the node on ruche's networks (its key, endpoint
	// and the prefixes it must not be given) and returns the record with
	// the node's mesh address. It refuses a range other than the
	// cluster's.
	JoinMesh(ctx context.Context, n client.MeshNode) (client.MeshNode, error)
	// Subnet gives the /24 of a network on a node: the one it has, else
	// Want if free, else the first free one. It refuses a range other
	// than the cluster's.
	Subnet(ctx context.Context, req client.SubnetRequest) (client.Subnet, error)
	// ReleaseSubnet frees the subnet of a network on a node (none: no
	// error).
	ReleaseSubnet(ctx context.Context, node, network string) error
	// WatchMesh sends the node's MeshState in full on every change. The
	// channel closes when ctx ends.
	WatchMesh(ctx context.Context, node string) (<-chan client.MeshState, error)
}

// NetworkAliases are the names a replica answers to on each of its
// networks (by engine name): those Docker's networks give it as aliases.
func NetworkAliases(rec store.TaskRecord) map[string][]string {
	names := map[string][]string{}
	for _, a := range containerSpec(rec, nil).Networks {
		names[a.Network] = a.Aliases
	}
	return names
}
