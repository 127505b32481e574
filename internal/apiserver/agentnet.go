package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
)

// agentNetRoutes registers the agent API of ruche's networks across nodes
// (the managers own the addressing; agent.NetConn, netconn_remote.go):
//
//	POST   /v1/agent/nodes/{node}/mesh/join           client.MeshNode → 200 client.MeshNode
//	POST   /v1/agent/nodes/{node}/subnets             client.SubnetRequest → 200 client.Subnet
//	DELETE /v1/agent/nodes/{node}/subnets/{network}   204
//	GET    /v1/agent/nodes/{node}/mesh                NDJSON agent.StreamFrame[client.MeshState], one state a frame
//
// 400 invalid (bad body, a node other than the path's, a bad range, key,
// endpoint or prefix), 409 range_mismatch (not the cluster's private
// range) or range_full (no address or /24 left); 401/403 as the rest of
// the agent API.
func (s *Server) agentNetRoutes() {
	p := agent.RemotePathPrefix + "{node}"
	s.handleAuth("POST "+p+"/mesh/join", s.agentAuth, s.agentJoinMesh)
	s.handleAuth("POST "+p+"/subnets", s.agentAuth, s.agentSubnet)
	s.handleAuth("DELETE "+p+"/subnets/{network}", s.agentAuth, s.agentReleaseSubnet)
	s.handleAuth("GET "+p+"/mesh", s.agentAuth, s.agentWatchMesh)
}

// netError maps the errors of agent.LocalConn's addressing to the API's.
func netError(err error) error {
	switch {
	case errors.Is(err, agent.ErrMeshInvalid):
		return invalid(err.Error())
	case errors.Is(err, agent.ErrRangeMismatch):
		return &apiError{status: http.StatusConflict, code: agent.CodeRangeMismatch, msg: err.Error()}
	case errors.Is(err, agent.ErrRangeFull):
		return &apiError{status: http.StatusConflict, code: agent.CodeRangeFull, msg: err.Error()}
	}
	return err
}

func (s *Server) agentJoinMesh(w http.ResponseWriter, r *http.Request) error {
	return agentNetCall(w, r, "mesh node", func(n client.MeshNode) string { return n.Node }, s.local.JoinMesh)
}

func (s *Server) agentSubnet(w http.ResponseWriter, r *http.Request) error {
	return agentNetCall(w, r, "subnet request", func(q client.SubnetRequest) string { return q.Node }, s.local.Subnet)
}

// agentNetCall decodes the body, checks that it names the path's node,
// and answers call's result.
func agentNetCall[In, Out any](w http.ResponseWriter, r *http.Request, what string, node func(In) string, call func(context.Context, In) (Out, error)) error {
	var in In
	if err := decodeBody(r, &in, what); err != nil {
		return err
	}
	if got, want := node(in), r.PathValue("node"); got != want {
		return invalid(fmt.Sprintf("node %q does not match the path's %q", got, want))
	}
	out, err := call(r.Context(), in)
	if err != nil {
		return netError(err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) agentReleaseSubnet(w http.ResponseWriter, r *http.Request) error {
	if err := s.local.ReleaseSubnet(r.Context(), r.PathValue("node"), r.PathValue("network")); err != nil {
		return netError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// agentWatchMesh streams the node's MeshState, each as a frame whose set
// holds that one state (streamSets' frames, keep-alives and end when the
// node loses its right to the API).
func (s *Server) agentWatchMesh(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	states, err := s.local.WatchMesh(ctx, r.PathValue("node"))
	if err != nil {
		return netError(err)
	}
	sets := make(chan []client.MeshState, 1)
	go func() {
		defer close(sets)
		for ms := range states { // closes when ctx ends
			select { // the only sender: after the drain the send cannot block
			case <-sets:
			default:
			}
			sets <- []client.MeshState{ms}
		}
	}()
	return streamSets(s, w, r, sets)
}
