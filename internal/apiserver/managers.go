package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// Managers is the managers' membership: the store's members and the
// cluster keys a new manager needs (implemented by the daemon).
type Managers interface {
	// Add makes name at peerURL a store member and returns what the new
	// manager needs to start.
	Add(ctx context.Context, name, peerURL string) (*client.ManagerJoin, error)
	// List is every manager with its health and role.
	List(ctx context.Context) ([]client.Manager, error)
	// Remove takes name out of the store membership; without force it
	// refuses to remove the last manager or to leave fewer healthy
	// members than a quorum.
	Remove(ctx context.Context, name string, force bool) error
}

// joinManager is POST /v1/join with a manager token: the token is used up,
// the machine becomes a store member and gets a manager certificate, the
// CA and the secret key. All of it goes over the TLS connection the
// joining machine verified against its CA pin.
func (s *Server) joinManager(w http.ResponseWriter, r *http.Request, req *client.JoinRequest, tokKey string, tokRev int64, tok store.JoinTokenRecord) error {
	if s.d.Managers == nil {
		return &apiError{status: http.StatusForbidden, code: "join_refused",
			msg: "join refused: this token is for a manager, and this manager cannot add managers (on an external etcd, start the new manager with the same --store-endpoints)"}
	}
	u, err := url.Parse(req.PeerURL)
	if err != nil || u.Scheme != "https" || net.ParseIP(u.Hostname()) == nil || u.Port() == "" {
		return invalid(fmt.Sprintf("peer URL %q: want https://IP:PORT (the new manager needs --advertise-addr)", req.PeerURL))
	}
	if req.Addr != "" && u.Hostname() != req.Addr {
		return invalid(fmt.Sprintf("peer URL %s is not on the advertise address %s", req.PeerURL, req.Addr))
	}
	ctx := r.Context()
	_, err = s.d.Store.Txn(ctx, []store.Cmp{store.ModRevisionIs(tokKey, tokRev)}, store.Delete(tokKey))
	if errors.Is(err, store.ErrConflict) {
		return errJoinRefused // used by a concurrent join
	}
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	names := []string{req.NodeName}
	if req.Addr != "" {
		names = append(names, req.Addr)
	}
	certPEM, _, err := s.d.CA.SignNode([]byte(req.CSR), pki.NodeRequest{ID: req.NodeName, Role: pki.RoleManager, Names: names})
	if errors.Is(err, pki.ErrBadCSR) {
		return invalid(err.Error())
	}
	if err != nil {
		return err
	}
	urls := s.liveManagerURLs(ctx)
	// The member is added as a learner (it does not vote until it has
	// started and caught up): the store keeps its quorum meanwhile.
	mj, err := s.d.Managers.Add(ctx, req.NodeName, req.PeerURL)
	if err != nil {
		// Not added: the token serves again (the join is retried when
		// the store was not ready).
		if _, perr := s.d.Store.Txn(ctx, []store.Cmp{store.ModRevisionIs(tokKey, 0)}, store.Put(tokKey, store.Encode(tok))); perr != nil {
			s.log.Warn("join token not restored after a failed manager join", "err", perr)
		}
		return err
	}
	s.log.Info("manager joined", "manager", req.NodeName, "peer_url", req.PeerURL, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, client.JoinResponse{
		NodeID: req.NodeName, Cert: string(certPEM), CA: string(s.d.CA.CertPEM), ClusterID: s.cfg.ClusterID, Managers: urls,
		Manager: mj,
	})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.d.Events.Record(ctx, client.Event{Type: "manager", Action: "joined", Node: req.NodeName, Message: "joined from " + hostOf(r.RemoteAddr)})
	}()
	return nil
}

func (s *Server) managerRoutes() {
	s.handle("GET /v1/managers", s.listManagers)
	s.handle("DELETE /v1/managers/{name}", s.removeManager)
	s.handleAuth("POST /v1/managers/beat", s.managerAuth, s.managerBeat)
}

func (s *Server) listManagers(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.managers(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ms)
	return nil
}

// removeManager is DELETE /v1/managers/{name}[?force=true].
func (s *Server) removeManager(w http.ResponseWriter, r *http.Request) error {
	if s.d.Managers == nil {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this manager does not manage store members"}
	}
	name := r.PathValue("name")
	force, err := boolQuery(r, "force")
	if err != nil {
		return err
	}
	if err := s.d.Managers.Remove(r.Context(), name, force); err != nil {
		return err
	}
	s.log.Info("manager removed", "manager", name)
	s.d.Events.Record(r.Context(), client.Event{Type: "manager", Action: "removed", Node: name})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// managers is every manager; without a membership (a test server, an
// external store) just this one.
func (s *Server) managers(ctx context.Context) ([]client.Manager, error) {
	if s.d.Managers == nil {
		return []client.Manager{{Name: s.cfg.ManagerName, APIAddr: s.cfg.APIAddr, Leader: true, Healthy: true}}, nil
	}
	return s.d.Managers.List(ctx)
}

// liveManagerURLs are the API URLs of the managers that are alive, this
// one's first; the configured ones when the list cannot be had.
func (s *Server) liveManagerURLs(ctx context.Context) []string {
	own := s.managerURLs()
	if s.d.Managers == nil {
		return own
	}
	ms, err := s.d.Managers.List(ctx)
	if err != nil {
		return own
	}
	out := append([]string(nil), own...)
	for _, m := range ms {
		if m.Healthy && m.APIURL != "" && !slices.Contains(out, m.APIURL) {
			out = append(out, m.APIURL)
		}
	}
	return out
}

// heartbeatManagers answers agents' heartbeats with the live managers,
// from a copy refreshed at most every 5 s (heartbeats come every second
// from every node).
func (s *Server) heartbeatManagers(ctx context.Context) []string {
	if s.d.Managers == nil {
		return nil
	}
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	if time.Since(s.hbAt) > 5*time.Second {
		s.hbURLs, s.hbAt = s.liveManagerURLs(ctx), time.Now()
	}
	return s.hbURLs
}

// Conflict is an error a Managers implementation returns for a request the
// state of the cluster refuses (409, its message shown as is).
func Conflict(msg string) error { return conflict(msg) }

// NotFound is an error for a manager that does not exist (404).
func NotFound(msg string) error { return notFound(msg) }

// Unavailable is an error for a request to retry shortly (503): the
// store cannot add a member yet (a member joined moments ago).
func Unavailable(msg string) error {
	return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: msg}
}

// ManagerBeat is the body of POST /v1/managers/beat: a heartbeat of a
// manager's in-process agent, relayed to the other managers so whichever
// leads next has heard the node.
type ManagerBeat struct {
	Node string          `json:"node"`
	Load client.NodeLoad `json:"load"`
}

// managerBeat takes a relayed heartbeat from a peer holding a manager
// certificate of this cluster (managers hold the CA key anyway).
func (s *Server) managerBeat(w http.ResponseWriter, r *http.Request) error {
	var b ManagerBeat
	if err := decodeBody(r, &b, "manager beat"); err != nil {
		return err
	}
	if s.d.Heartbeats != nil && b.Node != "" {
		s.d.Heartbeats.Beat(b.Node, b.Load)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// managerAuth lets through a peer with a verified manager certificate.
func (s *Server) managerAuth(r *http.Request) error {
	id, err := pki.PeerIdentity(r.TLS)
	if err != nil || id.Role != pki.RoleManager {
		return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "this endpoint needs a manager certificate of this cluster"}
	}
	return nil
}
