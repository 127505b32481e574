package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// maxJoinBody bounds a join request (a CSR and a few labels).
const maxJoinBody = 64 << 10

// nodeNameRE is what a node name may be: a DNS label, so it is a store key
// element, a certificate name and a container label value at once.
var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (s *Server) joinRoutes() {
	s.handleAuth("GET /v1/join/ca", nil, s.joinCA)
	s.handleAuth("POST /v1/join", nil, s.join)
}

var errJoinRefused = &apiError{status: http.StatusUnauthorized, code: "join_refused", msg: "join refused: token invalid or expired"}

// joinCA is GET /v1/join/ca: the cluster CA certificate (public). A joining
// machine fetches it before it trusts the manager, checks it against the
// pin it was given (--ca-hash), and only then sends its token.
func (s *Server) joinCA(w http.ResponseWriter, r *http.Request) error {
	if s.d.CA == nil {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this manager has no cluster CA"}
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(s.d.CA.CertPEM)
	return nil
}

// join is POST /v1/join: a machine proves a join token and gets its node
// certificate. The token is checked, the node record written and the
// token deleted in one transaction, so a token serves exactly once.
func (s *Server) join(w http.ResponseWriter, r *http.Request) error {
	if s.d.CA == nil {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this manager has no cluster CA"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxJoinBody)
	var req client.JoinRequest
	if err := decodeStrict(r, &req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err // names the limit only
		}
		// The decoder's message may quote the body: never echo it, it holds the token.
		return invalid("request body is not a join request")
	}
	if err := checkJoinRequest(&req); err != nil {
		return err
	}
	ctx := r.Context()
	tokKey := store.JoinTokenKey(HashToken(req.Token))
	var tok store.JoinTokenRecord
	tokRev, err := store.GetJSON(ctx, s.d.Store, tokKey, &tok)
	if errors.Is(err, store.ErrNotFound) || (err == nil && time.Now().After(tok.Expires)) {
		s.log.Warn("join refused: token invalid or expired", "node", req.NodeName, "remote", r.RemoteAddr)
		return errJoinRefused
	}
	if err != nil {
		return err
	}
	if tok.Role == client.JoinRoleManager {
		return s.joinManager(w, r, &req, tokKey, tokRev, tok)
	}
	if tok.Role != client.JoinRoleAgent {
		return &apiError{status: http.StatusForbidden, code: "join_refused",
			msg: fmt.Sprintf("join refused: this token is for a %s; an agent needs a token made with `ruche token create --role agent`", tok.Role)}
	}
	if req.PeerURL != "" {
		return &apiError{status: http.StatusForbidden, code: "join_refused",
			msg: "join refused: this token is for an agent; a manager needs a token made with `ruche token create --role manager`"}
	}
	// The node follows the cluster's networks. No record (a cluster made
	// before there was one): Docker's, which were the only ones.
	nets, err := s.clusterNetworks(ctx)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	nodeKey := store.NodeKey(req.NodeName)
	var old client.Node
	nodeRev, err := store.GetJSON(ctx, s.d.Store, nodeKey, &old)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if nodeRev != 0 && old.Status != "down" {
		return conflict(fmt.Sprintf("a node named %q is already a member (status %s): choose another --node-name, or remove it first with `ruche node rm %s`",
			req.NodeName, old.Status, req.NodeName))
	}
	names := []string{req.NodeName}
	if req.Addr != "" {
		names = append(names, req.Addr)
	}
	certPEM, serial, err := s.d.CA.SignNode([]byte(req.CSR), pki.NodeRequest{ID: req.NodeName, Role: pki.RoleAgent, Names: names})
	if errors.Is(err, pki.ErrBadCSR) {
		return invalid(err.Error())
	}
	if err != nil {
		return err
	}
	node := client.Node{
		ID: req.NodeName, Hostname: req.Hostname, Addr: req.Addr, Labels: req.Labels,
		Role: "agent", Status: "ready", Availability: "active", CertSerial: serial, UpdatedAt: time.Now().UTC(),
	}
	if node.Hostname == "" {
		node.Hostname = req.NodeName
	}
	_, err = s.d.Store.Txn(ctx, []store.Cmp{store.ModRevisionIs(tokKey, tokRev), store.ModRevisionIs(nodeKey, nodeRev)},
		store.Delete(tokKey), store.Put(nodeKey, store.Encode(node)))
	if errors.Is(err, store.ErrConflict) {
		if _, gerr := s.d.Store.Get(ctx, tokKey); errors.Is(gerr, store.ErrNotFound) {
			return errJoinRefused // used by a concurrent join
		}
		return conflict("the node record changed during the join; retry")
	}
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	s.log.Info("node joined", "node", node.ID, "addr", node.Addr, "hostname", node.Hostname, "rejoin", nodeRev != 0)
	s.d.Events.Record(ctx, client.Event{Type: "node", Action: "joined", Node: node.ID, Message: "joined from " + hostOf(r.RemoteAddr)})
	resp := client.JoinResponse{
		NodeID: node.ID, Cert: string(certPEM), CA: string(s.d.CA.CertPEM), ClusterID: s.cfg.ClusterID, Managers: s.managerURLs(),
	}
	resp.Networks, resp.PrivateRange = nets.Mode, nets.Range
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// clusterNetworks reads the cluster's replica networks; none recorded (a
// cluster made before the record): the zero record, Docker's.
func (s *Server) clusterNetworks(ctx context.Context) (store.NetworksRecord, error) {
	var nets store.NetworksRecord
	if _, err := store.GetJSON(ctx, s.d.Store, store.NetworksKey, &nets); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nets, fmt.Errorf("the cluster's networks: %w", err)
	}
	return nets, nil
}

// checkJoinRequest validates what the joining machine chose.
func checkJoinRequest(req *client.JoinRequest) error {
	if !strings.HasPrefix(req.Token, JoinTokenPrefix) {
		return errJoinRefused
	}
	var problems []string
	if !nodeNameRE.MatchString(req.NodeName) {
		problems = append(problems, fmt.Sprintf("node name %q: use lower-case letters, digits and '-' (at most 63)", req.NodeName))
	}
	if req.Addr != "" && net.ParseIP(req.Addr) == nil {
		problems = append(problems, fmt.Sprintf("advertise address %q is not an IP address", req.Addr))
	}
	for k := range req.Labels {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			problems = append(problems, fmt.Sprintf("label key %q is not valid", k))
		}
	}
	if req.CSR == "" {
		problems = append(problems, "csr is missing")
	}
	switch len(problems) {
	case 0:
		return nil
	case 1:
		return invalid(problems[0])
	}
	return invalid("invalid join request", problems...)
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
