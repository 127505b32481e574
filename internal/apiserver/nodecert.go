package apiserver

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// nodeRemoved is the answer to a node whose record is gone: the agent
// stops on it (agent.ErrNodeRemoved) instead of retrying forever.
func nodeRemoved(node string) error {
	return &apiError{status: http.StatusForbidden, code: agent.CodeNodeRemoved,
		msg: fmt.Sprintf("node %s is not a member of this cluster: it was removed (ruche node rm)", node)}
}

// nodeReplaced is the answer to a certificate of a node whose name a new
// join took: the agent stops on it (agent.ErrNodeReplaced) instead of
// retrying forever.
func nodeReplaced(node string) error {
	return &apiError{status: http.StatusForbidden, code: agent.CodeNodeReplaced,
		msg: fmt.Sprintf("this certificate of node %s was replaced (the node joined again)", node)}
}

// renewNodeCert is POST /v1/agent/nodes/{node}/cert: a node renews its
// certificate, authenticated by the one it holds (agentAuth: signed by the
// cluster CA, naming {node}, with a serial its record accepts). The new
// certificate has the presented one's identity (node ID, role, names);
// the record then accepts the new serial and, until the next renewal, the
// presented one, so a lost answer does not lock the node out.
func (s *Server) renewNodeCert(w http.ResponseWriter, r *http.Request) error {
	if s.d.CA == nil {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this manager has no cluster CA"}
	}
	var req client.NodeCertRequest
	if err := decodeBody(r, &req, "node certificate request"); err != nil {
		return err
	}
	id, err := pki.PeerIdentity(r.TLS)
	if err != nil {
		return err // agentAuth checked it
	}
	if id.Role != pki.RoleAgent {
		return forbidden(fmt.Sprintf("a %s certificate is not renewed here", id.Role))
	}
	peer := r.TLS.VerifiedChains[0][0]
	names := []string{}
	for _, ip := range peer.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, peer.DNSNames...)
	ctx := r.Context()
	key := store.NodeKey(id.NodeID)
	for {
		var n client.Node
		rev, err := store.GetJSON(ctx, s.d.Store, key, &n)
		if errors.Is(err, store.ErrNotFound) {
			return nodeRemoved(id.NodeID)
		}
		if err != nil {
			return err
		}
		if id.Serial != n.CertSerial && id.Serial != n.CertSerialPrev {
			return nodeReplaced(id.NodeID)
		}
		certPEM, serial, err := s.d.CA.SignNode([]byte(req.CSR), pki.NodeRequest{ID: id.NodeID, Role: id.Role, Names: names})
		if errors.Is(err, pki.ErrBadCSR) {
			return invalid(err.Error())
		}
		if err != nil {
			return err
		}
		n.CertSerial, n.CertSerialPrev = serial, id.Serial
		wrote, err := s.d.Store.Txn(ctx, []store.Cmp{store.ModRevisionIs(key, rev)}, store.Put(key, store.Encode(n)))
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("renew node certificate: %w", err)
		}
		s.nodes.wrote(id.NodeID, n, wrote)
		s.log.Info("node certificate renewed", "node", id.NodeID, "serial", serial, "previous", id.Serial)
		writeJSON(w, http.StatusOK, client.NodeCertResponse{Cert: string(certPEM)})
		return nil
	}
}
