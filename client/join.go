package client

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"time"
)

// Join token roles.
const (
	JoinRoleAgent   = "agent"
	JoinRoleManager = "manager"
)

// TokenRequest is the body of POST /v1/tokens: a join token.
type TokenRequest struct {
	Role string `json:"role"` // JoinRoleAgent or JoinRoleManager
	// TTL is how long the token can be used (default 1h).
	TTL Duration `json:"ttl,omitempty"`
}

// JoinToken describes a join token. Token (the secret) is set only in the
// answer to its creation: the managers keep only its hash.
type JoinToken struct {
	ID      string    `json:"id"` // the first characters of the token's hash
	Token   string    `json:"token,omitempty"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// CAHash pins the cluster CA for the joining machine: "sha256:<hex>" of
	// the CA certificate's public key (as kubeadm's discovery hash).
	CAHash string `json:"ca_hash,omitempty"`
	// Managers are the API URLs a machine can join through.
	Managers []string `json:"managers,omitempty"`
}

// JoinRequest is the body of POST /v1/join (no bearer token: the join
// token in it is the credential).
type JoinRequest struct {
	Token    string            `json:"token"`
	NodeName string            `json:"node_name"`
	Hostname string            `json:"hostname,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Addr is the node's advertise address (an IP address).
	Addr string `json:"addr,omitempty"`
	// CSR is the PEM certificate request for the node's key.
	CSR string `json:"csr"`
	// PeerURL is a joining manager's etcd peer URL
	// ("https://ADVERTISE:7480"); only with a manager token.
	PeerURL string `json:"peer_url,omitempty"`
}

// ManagerJoin is what a joining manager gets besides its node certificate:
// the cluster's keys and its etcd membership. It travels only over the
// TLS connection verified against the pinned CA, and is never logged.
type ManagerJoin struct {
	CAKey     string `json:"ca_key"`     // PEM
	SecretKey []byte `json:"secret_key"` // the secret box key
	// InitialCluster is the etcd initial-cluster string with the new
	// member in it: the new manager starts its member as "existing".
	InitialCluster string `json:"initial_cluster"`
}

// JoinResponse is what a node gets when it joins.
type JoinResponse struct {
	NodeID    string   `json:"node_id"`
	Cert      string   `json:"cert"` // PEM, signed by the cluster CA
	CA        string   `json:"ca"`   // PEM
	ClusterID string   `json:"cluster_id"`
	Managers  []string `json:"managers"`
	// Manager is set for a manager join only.
	Manager *ManagerJoin `json:"manager,omitempty"`
	// Networks is the cluster's kind of replica networks ("docker" or
	// "ruche") and PrivateRange the range of ruche's: the node follows
	// them. Empty from managers older than the record: "docker".
	Networks     string `json:"networks,omitempty"`
	PrivateRange string `json:"private_range,omitempty"`
}

// CreateJoinToken makes a join token for role, valid for ttl (0: the
// server's default, 1h).
func (c *Client) CreateJoinToken(ctx context.Context, role string, ttl time.Duration) (*JoinToken, error) {
	var out JoinToken
	return &out, c.do(ctx, http.MethodPost, "/v1/tokens", jsonBody(TokenRequest{Role: role, TTL: Duration(ttl)}), "application/json", &out)
}

// JoinTokens lists the join tokens not yet used (without their secret).
func (c *Client) JoinTokens(ctx context.Context) ([]JoinToken, error) {
	var out []JoinToken
	return out, c.do(ctx, http.MethodGet, "/v1/tokens", nil, "", &out)
}

// RemoveJoinToken deletes the join token whose ID starts with id.
func (c *Client) RemoveJoinToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+esc(id), nil, "", nil)
}

// Servers returns the API URLs the client uses.
func (c *Client) Servers() []string { return append([]string(nil), c.servers...) }

// CAHash is the pin of a cluster CA: "sha256:" and the hex SHA-256 of the
// certificate's SubjectPublicKeyInfo (the form kubeadm uses).
func CAHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}
