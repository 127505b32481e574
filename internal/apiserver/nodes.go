package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/nodes"
	"github.com/ruche-platform/ruche/internal/store"
)

// Node management: `ruche node ls|drain|activate|rm|label` and
// `ruche rebalance`. Node status is the leader's node monitor's; here are
// the user's decisions (availability, labels, removal, moves).

func (s *Server) nodeRoutes() {
	s.handle("GET /v1/nodes", s.getNodes)
	s.handle("GET /v1/nodes/{node}", s.getNode)
	s.handle("POST /v1/nodes/{node}/drain", s.setAvailability(client.AvailabilityDrain))
	s.handle("POST /v1/nodes/{node}/active", s.setAvailability(client.AvailabilityActive))
	s.handle("POST /v1/nodes/{node}/labels", s.labelNode)
	s.handle("DELETE /v1/nodes/{node}", s.removeNode)
	s.handle("POST /v1/rebalance", s.rebalance)
}

// loadSource is what the node health tracker answers besides heartbeats:
// nodes' live load, kept in memory by the leader's tracker.
type loadSource interface {
	Load(node string) (client.NodeLoad, bool)
}

// withLoad fills each node's live load from the heartbeat tracker, when
// this manager has one (the one that receives the node's heartbeats).
func (s *Server) withLoad(ns []client.Node) []client.Node {
	src, ok := s.d.Heartbeats.(loadSource)
	if !ok {
		return ns
	}
	for i := range ns {
		if l, ok := src.Load(ns[i].ID); ok {
			ns[i].Load = &l
		}
	}
	return ns
}

func (s *Server) getNodes(w http.ResponseWriter, r *http.Request) error {
	snap, err := s.loadSnapshot(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.withLoad(snap.nodeViews()))
	return nil
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) error {
	n, err := s.nodeView(r.Context(), r.PathValue("node"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

// nodeView is one node as GET /v1/nodes shows it: with its replica count
// and live load.
func (s *Server) nodeView(ctx context.Context, id string) (client.Node, error) {
	snap, err := s.loadSnapshot(ctx)
	if err != nil {
		return client.Node{}, err
	}
	for _, n := range s.withLoad(snap.nodeViews()) {
		if n.ID == id {
			return n, nil
		}
	}
	return client.Node{}, noSuchNode(id)
}

// writeNode answers with node id's view after a change.
func (s *Server) writeNode(w http.ResponseWriter, r *http.Request, id string) error {
	n, err := s.nodeView(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

func noSuchNode(id string) error {
	return notFound(fmt.Sprintf("no such node: %s (ruche node ls lists them)", id))
}

// editNode applies edit to node id's record in a compare-and-swap loop and
// returns the record written (or the unchanged one when edit reports no
// change).
func (s *Server) editNode(ctx context.Context, id string, edit func(n *client.Node) (changed bool, err error)) (client.Node, error) {
	key := store.NodeKey(id)
	for {
		var n client.Node
		rev, err := store.GetJSON(ctx, s.d.Store, key, &n)
		if errors.Is(err, store.ErrNotFound) {
			return n, noSuchNode(id)
		}
		if err != nil {
			return n, err
		}
		changed, err := edit(&n)
		if err != nil || !changed {
			return n, err
		}
		n.UpdatedAt = time.Now().UTC()
		_, err = s.d.Store.Txn(ctx, []store.Cmp{store.ModRevisionIs(key, rev)}, store.Put(key, store.Encode(n)))
		if errors.Is(err, store.ErrConflict) {
			continue // a heartbeat status change or a registration: read again
		}
		return n, err
	}
}

// setAvailability drains a node (its replicas are moved away, start-first,
// by the controller) or makes it active again (nothing moves back).
func (s *Server) setAvailability(a string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("node")
		was := ""
		_, err := s.editNode(r.Context(), id, func(n *client.Node) (bool, error) {
			was = n.Availability
			if n.Availability == a {
				return false, nil
			}
			n.Availability = a
			return true, nil
		})
		if err != nil {
			return err
		}
		if was != a {
			msg := "drained: its replicas move to other nodes"
			action := "drain"
			if a == client.AvailabilityActive {
				msg, action = "active: takes new replicas again", "activate"
			}
			s.d.Events.Record(r.Context(), client.Event{Type: "node", Action: action, Node: id, Message: "node " + id + " " + msg})
		}
		return s.writeNode(w, r, id)
	}
}

// labelKey is what a node label key may be: what constraints
// (node.labels.<key>) can name.
var labelKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)

func (s *Server) labelNode(w http.ResponseWriter, r *http.Request) error {
	var req client.NodeLabelRequest
	if err := decodeBody(r, &req, "label request"); err != nil {
		return err
	}
	if len(req.Set) == 0 && len(req.Remove) == 0 {
		return invalid("nothing to do: give labels to set (k=v) or to remove (k-)")
	}
	var bad []string
	for k := range req.Set {
		if !labelKey.MatchString(k) {
			bad = append(bad, fmt.Sprintf("label key %q: letters, digits, '.', '_', '/', '-' only", k))
		}
	}
	for _, k := range req.Remove {
		if !labelKey.MatchString(k) {
			bad = append(bad, fmt.Sprintf("label key %q: letters, digits, '.', '_', '/', '-' only", k))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return invalid(bad[0], bad...)
	}
	id := r.PathValue("node")
	_, err := s.editNode(r.Context(), id, func(n *client.Node) (bool, error) {
		nodes.SetLabels(n, req.Set, req.Remove)
		return true, nil
	})
	if err != nil {
		return err
	}
	var parts []string
	for k, v := range req.Set {
		parts = append(parts, k+"="+v)
	}
	for _, k := range req.Remove {
		parts = append(parts, k+"-")
	}
	sort.Strings(parts)
	s.d.Events.Record(r.Context(), client.Event{Type: "node", Action: "label", Node: id, Message: "labels " + strings.Join(parts, " ")})
	return s.writeNode(w, r, id)
}

// removeNode deletes a node's record, so its certificate is refused from
// then on. It is refused while replicas are assigned to the node, unless
// force: then its task records go too and the controller places the
// replicas elsewhere (their status keys are collected as orphans).
func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("node")
	force, err := boolQuery(r, "force")
	if err != nil {
		return err
	}
	key := store.NodeKey(id)
	kv, err := s.d.Store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return noSuchNode(id)
	}
	if err != nil {
		return err
	}
	kvs, _, err := s.d.Store.List(ctx, store.NodeTasksPrefix(id))
	if err != nil {
		return err
	}
	var running []string
	for _, tkv := range kvs {
		var t store.TaskRecord
		if err := store.Decode(tkv, &t); err != nil {
			return err
		}
		if t.DesiredState == client.DesiredRunning {
			running = append(running, t.Project+"/"+t.Replica.Name())
		}
	}
	sort.Strings(running)
	if len(running) > 0 && !force {
		list := strings.Join(running[:min(len(running), 5)], ", ")
		if len(running) > 5 {
			list += fmt.Sprintf(" and %d more", len(running)-5)
		}
		return conflict(fmt.Sprintf("node %s has %d replicas assigned (%s): `ruche node drain %s` moves them first, or --force removes the node anyway (they are placed elsewhere)",
			id, len(running), list, id))
	}
	// One transaction: the node, its assignments and its place on ruche's
	// networks (mesh record, subnets) go together; the task prefix delete
	// is one operation whatever their number.
	meshOps, err := s.local.MeshRemoveOps(ctx, id)
	if err != nil {
		return err
	}
	ops := append([]store.Op{store.Delete(key), store.DeletePrefix(store.NodeTasksPrefix(id))}, meshOps...)
	if _, err := s.d.Store.Txn(ctx, []store.Cmp{store.ModRevisionIs(key, kv.ModRevision)}, ops...); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return conflict(fmt.Sprintf("node %s changed meanwhile; try again", id))
		}
		return err
	}
	msg := "node " + id + " removed"
	if len(running) > 0 {
		msg += fmt.Sprintf(" with %d replicas (placed elsewhere)", len(running))
	}
	s.d.Events.Record(ctx, client.Event{Type: "node", Action: "remove", Node: id, Message: msg})
	writeJSON(w, http.StatusOK, client.NodeRemoveResponse{Node: id, Replicas: running})
	return nil
}

// rebalance marks the replicas nodes.PlanRebalance picks as Moving; the
// controller moves them start-first, one at a time per service.
func (s *Server) rebalance(w http.ResponseWriter, r *http.Request) error {
	var req client.RebalanceRequest
	if err := decodeBody(r, &req, "rebalance request"); err != nil {
		return err
	}
	if req.Service != "" && req.Project == "" {
		return invalid("a service needs its project: project/service")
	}
	if req.Force && req.Service == "" {
		return invalid("--force moves replicas away from their volume's data: name one service (project/service)")
	}
	ctx := r.Context()
	snap, err := s.loadSnapshot(ctx)
	if err != nil {
		return err
	}
	if req.Project != "" {
		svcs, ok := snap.services[req.Project]
		if !ok {
			return notFound("no such project: " + req.Project)
		}
		if _, ok := svcs[req.Service]; req.Service != "" && !ok {
			return notFound(fmt.Sprintf("no such service: %s/%s", req.Project, req.Service))
		}
	}
	busy := map[string]bool{}
	for k, u := range snap.updates {
		if !u.Terminal() {
			busy[k] = true
		}
	}
	tasks := make([]nodes.RebalanceTask, 0, len(snap.records))
	for _, t := range snap.records {
		tasks = append(tasks, nodes.RebalanceTask{Rec: t, Ready: snap.statuses[t.ID].Ready})
	}
	moves := nodes.PlanRebalance(s.withLoad(snap.nodeViews()), tasks, nodes.RebalanceOptions{
		Project: req.Project, Service: req.Service, Force: req.Force, Busy: busy,
	})
	resp := client.RebalanceResponse{Moves: moves, DryRun: req.DryRun}
	if resp.Moves == nil {
		resp.Moves = []client.Move{}
	}
	if !req.DryRun && len(moves) > 0 {
		if resp.Revision, err = s.markMoving(ctx, snap, moves); err != nil {
			return err
		}
		for _, m := range moves {
			s.d.Events.Record(ctx, client.Event{Type: "replica", Action: "rebalance", Project: m.Project, Service: m.Service,
				Replica: m.Name, Node: m.From, Message: m.Name + " to be moved off " + m.From + ": " + m.Reason})
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// markMoving sets Moving on the moved tasks, comparing each task's
// revision: a task the controller changed meanwhile makes it a conflict.
func (s *Server) markMoving(ctx context.Context, snap *snapshot, moves []client.Move) (int64, error) {
	byID := map[string]store.TaskRecord{}
	for _, t := range snap.records {
		byID[t.ID] = t
	}
	var cmps []store.Cmp
	var ops []store.Op
	var last int64
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		rev, err := s.d.Store.Txn(ctx, cmps, ops...)
		if errors.Is(err, store.ErrConflict) {
			return conflict("replicas changed meanwhile; run ruche rebalance again")
		}
		if err != nil {
			return err
		}
		last, cmps, ops = rev, nil, nil
		return nil
	}
	for _, m := range moves {
		t := byID[m.Replica]
		key := store.TaskKey(t.Node, t.ID)
		kv, err := s.d.Store.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return 0, conflict("replicas changed meanwhile; run ruche rebalance again")
		}
		if err != nil {
			return 0, err
		}
		var cur store.TaskRecord
		if err := store.Decode(kv, &cur); err != nil {
			return 0, err
		}
		cur.Moving = m.Reason
		cmps = append(cmps, store.ModRevisionIs(key, kv.ModRevision))
		ops = append(ops, store.Put(key, store.Encode(cur)))
		if len(ops) >= 100 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	return last, flush()
}

// nodeDownMessage is what `ruche ps` shows for a replica wanted running on
// a down node: the controller replaces it elsewhere if a node can run it,
// unless a named volume binds it to its node.
func (snap *snapshot) nodeDownMessage(t client.Replica) string {
	for _, rec := range snap.records {
		if rec.ID != t.ID {
			continue
		}
		for _, m := range rec.Spec.Mounts {
			if m.Type == client.MountVolume && m.Source != "" {
				return fmt.Sprintf("node %s is down; waits for it: volume %s lives there (ruche rebalance %s/%s --force moves it)",
					t.Node, m.Source, t.Project, t.Service)
			}
		}
	}
	// The API does not know whether a node can run it; the controller
	// says so in a "replica waiting" event when none can.
	return "node " + t.Node + " is down; replaced elsewhere if a node can run it (ruche events says why not)"
}
