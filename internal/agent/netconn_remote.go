package agent

import (
	"context"
	"errors"
	"net/http"

	"github.com/ruche-platform/ruche/client"
)

// The agent API of ruche's networks across nodes (served by
// internal/apiserver, agentnet.go):
//
//	POST   {prefix}<node>/mesh/join            client.MeshNode → 200 client.MeshNode
//	POST   {prefix}<node>/subnets              client.SubnetRequest → 200 client.Subnet
//	DELETE {prefix}<node>/subnets/<network>    204 (none: 204 too)
//	GET    {prefix}<node>/mesh                 NDJSON StreamFrame[client.MeshState], one state a frame
//
// 400 code "invalid": a request the managers cannot read (ErrMeshInvalid);
// 409 CodeRangeMismatch (ErrRangeMismatch) and CodeRangeFull (ErrRangeFull).

var _ NetConn = (*RemoteConn)(nil)

// meshRemoteError turns the managers' answers back into the mesh errors,
// with the managers' message.
func meshRemoteError(err error) error {
	var re *remoteError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case re.code == CodeRangeMismatch:
		return &meshError{kind: ErrRangeMismatch, msg: re.msg}
	case re.code == CodeRangeFull:
		return &meshError{kind: ErrRangeFull, msg: re.msg}
	case re.status == http.StatusBadRequest:
		return &meshError{kind: ErrMeshInvalid, msg: re.msg}
	}
	return err
}

// JoinMesh records the node on the mesh (see NetConn).
func (c *RemoteConn) JoinMesh(ctx context.Context, n client.MeshNode) (client.MeshNode, error) {
	var out client.MeshNode
	if _, err := c.call(ctx, http.MethodPost, nodePath(n.Node, "mesh", "join"), n, &out); err != nil {
		return client.MeshNode{}, meshRemoteError(err)
	}
	return out, nil
}

// Subnet asks for the network's /24 on the node (see NetConn).
func (c *RemoteConn) Subnet(ctx context.Context, req client.SubnetRequest) (client.Subnet, error) {
	var out client.Subnet
	if _, err := c.call(ctx, http.MethodPost, nodePath(req.Node, "subnets"), req, &out); err != nil {
		return client.Subnet{}, meshRemoteError(err)
	}
	return out, nil
}

// ReleaseSubnet frees the network's subnet on the node.
func (c *RemoteConn) ReleaseSubnet(ctx context.Context, node, network string) error {
	if _, err := c.call(ctx, http.MethodDelete, nodePath(node, "subnets", network), nil, nil); err != nil {
		return meshRemoteError(err)
	}
	return nil
}

// WatchMesh follows the node's MeshState, reconnecting like the other
// streams (each frame's set holds one state); the latest only.
func (c *RemoteConn) WatchMesh(ctx context.Context, node string) (<-chan client.MeshState, error) {
	return lastOfSets(watchRemote[client.MeshState](ctx, c, nodePath(node, "mesh"))), nil
}

// lastOfSets passes on the last element of each set, the latest only; it
// closes when in does.
func lastOfSets[T any](in <-chan []T) <-chan T {
	out := make(chan T, 1)
	go func() {
		defer close(out)
		for set := range in {
			if len(set) == 0 {
				continue
			}
			select { // the only sender: after the drain the send cannot block
			case <-out:
			default:
			}
			out <- set[len(set)-1]
		}
	}()
	return out
}
