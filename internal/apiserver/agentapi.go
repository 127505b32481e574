package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/nodes"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// The agent API: what agent.RemoteConn calls, over mutual TLS only. Each
// handler authenticates the peer by its node certificate (agentAuth) and
// then does what agent.LocalConn does for the in-process agent: the store
// logic is LocalConn's, shared.
func (s *Server) agentRoutes() {
	p := agent.RemotePathPrefix + "{node}"
	s.handleAuth("POST "+p+"/register", s.agentAuth, s.agentRegister)
	s.handleAuth("GET "+p+"/tasks", s.agentAuth, s.agentWatchTasks)
	s.handleAuth("PUT "+p+"/tasks/{task}/status", s.agentAuth, s.agentReportStatus)
	s.handleAuth("GET "+p+"/secrets/{project}/{name}", s.agentAuth, s.agentSecret)
	s.handleAuth("GET "+p+"/configs/{project}/{name}", s.agentAuth, s.agentConfig)
	s.handleAuth("GET "+p+"/cleanups", s.agentAuth, s.agentWatchCleanups)
	s.handleAuth("POST "+p+"/cleanups/{project}/done", s.agentAuth, s.agentCleanupDone)
	s.handleAuth("POST "+p+"/heartbeat", s.agentAuth, s.agentHeartbeat)
	s.handleAuth("POST "+p+"/events", s.agentAuth, s.agentEvent)
	s.handleAuth("POST "+p+"/cert", s.agentAuth, s.renewNodeCert) // nodecert.go
	s.handleAuth("POST "+p+"/drain/{task}", s.agentAuth, s.agentDrain)
	s.agentNetRoutes() // agentnet.go: mesh and subnets
	// Anything else under /v1/agent/ still needs a node certificate before
	// it learns that the endpoint does not exist.
	s.handleAuth("/v1/agent/", s.agentAuth, func(w http.ResponseWriter, r *http.Request) error {
		return notFound(fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

// agentDrain is POST /v1/agent/nodes/{node}/drain/{task}: the node's own
// proxy drained the replica; the other nodes' proxies drain it now
// (nodeapi.ClusterDrain). The status goes out at once, the outcome as the
// answer's last line (agent.WriteDrainAnswer), so a drain as long as the
// proxies' drain timeout is not cut by the agent's header timeout.
func (s *Server) agentDrain(w http.ResponseWriter, r *http.Request) error {
	task, node := r.PathValue("task"), r.PathValue("node")
	agent.WriteDrainAnswer(w, func() error {
		if s.d.Drain == nil {
			return nil
		}
		return s.d.Drain.Drain(r.Context(), task, node)
	})
	return nil
}

func forbidden(msg string) error {
	return &apiError{status: http.StatusForbidden, code: "forbidden", msg: msg}
}

// agentAuth lets through a peer whose certificate the cluster CA signed,
// whose node record exists with that certificate's serial, and who acts
// for itself only.
func (s *Server) agentAuth(r *http.Request) error {
	id, err := pki.PeerIdentity(r.TLS)
	if err != nil {
		return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "the agent API needs a node certificate of this cluster"}
	}
	if node := r.PathValue("node"); node != "" && node != id.NodeID {
		return forbidden(fmt.Sprintf("node %s cannot act for node %s", id.NodeID, node))
	}
	serial, ok, err := s.nodes.serial(r.Context(), id.NodeID, id.Serial)
	if err != nil {
		return err
	}
	if !ok {
		return nodeRemoved(id.NodeID)
	}
	if serial != id.Serial {
		return nodeReplaced(id.NodeID)
	}
	return nil
}

// agentRegister refreshes the node's record with what the agent says of
// its machine, merged as nodes.Register does for every agent (managers keep
// role, availability, status and their labels); the certificate serial is
// the managers' too. A node without a record was removed: it does not come
// back by registering.
func (s *Server) agentRegister(w http.ResponseWriter, r *http.Request) error {
	node := r.PathValue("node")
	var n client.Node
	if err := decodeBody(r, &n, "node"); err != nil {
		return err
	}
	if n.ID != node {
		return invalid(fmt.Sprintf("node id %q does not match the path's %q", n.ID, node))
	}
	ctx := r.Context()
	key := store.NodeKey(node)
	for {
		var old client.Node
		rev, err := store.GetJSON(ctx, s.d.Store, key, &old)
		if errors.Is(err, store.ErrNotFound) {
			return nodeRemoved(node)
		}
		if err != nil {
			return err
		}
		up := nodes.Register(&old, n)
		up.Role, up.CertSerial, up.CertSerialPrev = old.Role, old.CertSerial, old.CertSerialPrev
		if up.Hostname == "" {
			up.Hostname = old.Hostname
		}
		_, err = s.d.Store.Txn(ctx, []store.Cmp{store.ModRevisionIs(key, rev)}, store.Put(key, store.Encode(up)))
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("register node: %w", err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) agentWatchTasks(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sets, err := s.local.WatchTasks(ctx, r.PathValue("node"))
	if err != nil {
		return err
	}
	return streamSets(s, w, r, sets)
}

func (s *Server) agentWatchCleanups(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sets, err := s.local.WatchCleanups(ctx, r.PathValue("node"))
	if err != nil {
		return err
	}
	return streamSets(s, w, r, sets)
}

// streamSets sends each set as an NDJSON frame, and keep-alive frames in
// between so a dead connection is noticed on both sides. It ends when the
// client goes, or when the node loses its right to the agent API.
func streamSets[T any](s *Server, w http.ResponseWriter, r *http.Request, sets <-chan []T) error {
	ctx := r.Context()
	out := s.newNDJSON(w)
	tick := time.NewTicker(s.cfg.AgentKeepalive)
	defer tick.Stop()
	// Held across iterations: a change while a set is being sent is seen
	// at the next select.
	changed := s.nodes.changes()
	for {
		select {
		case <-ctx.Done():
			return nil
		case set, ok := <-sets:
			if !ok {
				return nil
			}
			if set == nil {
				set = []T{}
			}
			if out.send(agent.StreamFrame[T]{Set: set}) != nil {
				return nil
			}
		case <-tick.C:
			if out.send(agent.StreamFrame[T]{KeepAlive: true}) != nil {
				return nil
			}
		case <-changed:
			changed = s.nodes.changes() // before the check: nothing falls in between
			if err := s.agentAuth(r); err != nil {
				return nil // the node was removed or replaced: its stream ends
			}
		}
	}
}

func (s *Server) agentReportStatus(w http.ResponseWriter, r *http.Request) error {
	var st client.ReplicaStatus
	if err := decodeBody(r, &st, "replica status"); err != nil {
		return err
	}
	err := s.local.ReportStatus(r.Context(), r.PathValue("task"), r.PathValue("node"), st)
	if errors.Is(err, agent.ErrTaskGone) {
		return &apiError{status: http.StatusGone, code: agent.CodeTaskGone, msg: "task " + r.PathValue("task") + " is no longer assigned to this node"}
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// fileOnNode checks that a task assigned to node mounts the project's
// secret or config name (refs picks which from a service): a node reads
// only what the replicas it runs use, not every file of their project.
func (s *Server) fileOnNode(ctx context.Context, node, project, name string, refs func(client.ServiceSpec) []client.FileRef) error {
	kvs, _, err := s.d.Store.List(ctx, store.NodeTasksPrefix(node))
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(kvs, func(kv store.KV) bool {
		var t store.TaskRecord
		return store.Decode(kv, &t) == nil && t.Project == project &&
			slices.ContainsFunc(refs(t.Spec), func(f client.FileRef) bool { return f.Source == name })
	}) {
		return forbidden(fmt.Sprintf("no replica assigned to node %s uses %s/%s", node, project, name))
	}
	return nil
}

func (s *Server) agentSecret(w http.ResponseWriter, r *http.Request) error {
	return s.agentFile(w, r, s.local.Secret, func(sp client.ServiceSpec) []client.FileRef { return sp.Secrets })
}

func (s *Server) agentConfig(w http.ResponseWriter, r *http.Request) error {
	return s.agentFile(w, r, s.local.Config, func(sp client.ServiceSpec) []client.FileRef { return sp.Configs })
}

func (s *Server) agentFile(w http.ResponseWriter, r *http.Request, get func(ctx context.Context, project, name string) ([]byte, error), refs func(client.ServiceSpec) []client.FileRef) error {
	project, name := r.PathValue("project"), r.PathValue("name")
	if err := s.fileOnNode(r.Context(), r.PathValue("node"), project, name, refs); err != nil {
		return err
	}
	data, err := get(r.Context(), project, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(fmt.Sprintf("no such secret or config: %s/%s", project, name))
	case errors.Is(err, agent.ErrNoOpener):
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this manager cannot open secrets"}
	case err != nil:
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(data)
	return nil
}

func (s *Server) agentCleanupDone(w http.ResponseWriter, r *http.Request) error {
	if err := s.local.CleanupDone(r.Context(), r.PathValue("project"), r.PathValue("node")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// agentHeartbeat takes a node's beat. While the node's record says it is
// down, the answer asks the agent to reopen its streams (Resync): its
// replicas may have been moved meanwhile, and a stream that went through
// the partition may be dead without the agent knowing it yet.
func (s *Server) agentHeartbeat(w http.ResponseWriter, r *http.Request) error {
	var load client.NodeLoad
	if err := decodeBody(r, &load, "node load"); err != nil {
		return err
	}
	// Read before the beat: the beat wakes the monitor, which marks the
	// node ready again.
	down, err := s.nodes.down(r.Context(), r.PathValue("node"))
	if err != nil {
		return err
	}
	d, err := s.local.Heartbeat(r.Context(), r.PathValue("node"), load)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, r.Body)
	writeJSON(w, http.StatusOK, agent.HeartbeatReply{Interval: client.Duration(d), Managers: s.heartbeatManagers(r.Context()), Resync: down})
	return nil
}

// agentEvent records a replica event of the node (the node is the
// certificate's, whatever the event says).
func (s *Server) agentEvent(w http.ResponseWriter, r *http.Request) error {
	var ev client.Event
	if err := decodeBody(r, &ev, "event"); err != nil {
		return err
	}
	if ev.Type != "replica" {
		return invalid(fmt.Sprintf("an agent records replica events only, not %q", ev.Type))
	}
	ev.Node = r.PathValue("node")
	if ev.Time.IsZero() || time.Since(ev.Time).Abs() > time.Hour {
		ev.Time = time.Now()
	}
	s.d.Events.Record(r.Context(), ev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
