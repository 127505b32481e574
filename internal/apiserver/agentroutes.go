package apiserver

import (
	"context"
	"net/http"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/routing"
)

// agentRouteTable registers the agent's routing table stream: agents have
// no store, so the managers compute each node's table.
func (s *Server) agentRouteTable() {
	s.handleAuth("GET "+agent.RemotePathPrefix+"{node}/routes", s.agentAuth, s.agentWatchRoutes)
	s.agentCertRoutes()
}

// agentWatchRoutes is GET /v1/agent/nodes/{node}/routes: the node's
// routing table (routing.Build with the node as LocalNode: its own
// replicas at their container addresses, the others through the ports
// their agents publish), as NDJSON agent.StreamFrame[routing.Route], the
// full table on connect and on every change, keep-alives in between.
//
// Each stream runs its own routing.Watcher over the store: fine for the
// handful of nodes ruche aims at; a shared cache building one table per
// node would be the next step for hundreds.
func (s *Server) agentWatchRoutes(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithCancel(r.Context())
	sets := make(chan []routing.Route, 1)
	wt := routing.New(routing.Config{LocalNode: r.PathValue("node"), DefaultTLS: s.cfg.DefaultTLS}, routing.Deps{
		Store: s.d.Store, Log: s.log,
		OnChange: func(t *routing.Table) {
			// Only this goroutine sends: after the drain the send cannot block.
			select {
			case <-sets:
			default:
			}
			sets <- t.Routes
		},
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		wt.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	return streamSets(s, w, r, sets)
}
