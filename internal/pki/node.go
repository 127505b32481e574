package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"
)

// Roles a node certificate carries in its subject's OrganizationalUnit.
const (
	RoleAgent   = "agent"   // runs replicas; talks to managers
	RoleManager = "manager" // runs the API and the store; talks to agents
)

// NodeCertLifetime is how long a node certificate is valid. Revocation does
// not wait for expiry: a removed node's certificate is refused by the
// managers as soon as its node record is gone.
const NodeCertLifetime = 365 * 24 * time.Hour

// Errors of node identity.
var (
	ErrBadCSR       = errors.New("pki: invalid certificate request")
	ErrNoClientCert = errors.New("pki: no verified client certificate")
	ErrBadRole      = errors.New("pki: unknown node role")
	ErrAgentServer  = errors.New("pki: an agent's node certificate cannot serve the managers' API")
)

// NewNodeKey makes a node's private key and a certificate request for it,
// both PEM-encoded. The key never leaves the node: the request proves the
// node holds it, and the manager signs the request (SignNode).
func NewNodeKey(nodeID string) (csrPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("node key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeID}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("node certificate request: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal node key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// NodeRequest is what the manager decides about a node certificate; only
// the public key comes from the node's request.
type NodeRequest struct {
	ID    string   // node ID: the certificate's CommonName
	Role  string   // RoleAgent or RoleManager
	Names []string // IP addresses and DNS names the node serves on
}

// SignNode issues a node certificate for the key in csrPEM (whose signature
// is checked). The certificate serves as client certificate towards the
// managers and as server certificate for the node's own endpoint. It
// returns the certificate PEM and its serial number (hex), which the
// manager records so a removed node can be refused.
func (ca *CA) SignNode(csrPEM []byte, req NodeRequest) (certPEM []byte, serialHex string, err error) {
	if req.Role != RoleAgent && req.Role != RoleManager {
		return nil, "", fmt.Errorf("%w: %q", ErrBadRole, req.Role)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, "", fmt.Errorf("%w: not a PEM certificate request", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.ID, OrganizationalUnit: []string{req.Role}, Organization: []string{"ruche"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(NodeCertLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{req.ID},
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	for _, n := range req.Names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" && n != req.ID {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, "", fmt.Errorf("sign node certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tmpl.SerialNumber.Text(16), nil
}

// IssueNode makes a key here and signs a node certificate for it: for a
// certificate whose key is in this process already (a manager's own), not
// for a joining machine, whose key never leaves it (NewNodeKey there,
// SignNode here).
func (ca *CA) IssueNode(req NodeRequest) (tls.Certificate, error) {
	csr, key, err := NewNodeKey(req.ID)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM, _, err := ca.SignNode(csr, req)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("node certificate: %w", err)
	}
	return cert, nil
}

// Identity is who a verified peer certificate says it is.
type Identity struct {
	NodeID string
	Role   string
	Serial string // hex, as SignNode returns it
}

// PeerIdentity reads the node identity from a TLS connection whose client
// certificate was verified against the cluster CA (tls.Config.ClientCAs =
// CA.Pool(), ClientAuth VerifyClientCertIfGiven or stricter).
func PeerIdentity(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, ErrNoClientCert
	}
	return CertIdentity(cs.VerifiedChains[0][0])
}

// CertIdentity reads the node identity of a certificate (not verified here).
func CertIdentity(c *x509.Certificate) (Identity, error) {
	if len(c.Subject.OrganizationalUnit) != 1 {
		return Identity{}, fmt.Errorf("%w: certificate carries no role", ErrBadRole)
	}
	id := Identity{NodeID: c.Subject.CommonName, Role: c.Subject.OrganizationalUnit[0], Serial: c.SerialNumber.Text(16)}
	if id.Role != RoleAgent && id.Role != RoleManager {
		return Identity{}, fmt.Errorf("%w: %q", ErrBadRole, id.Role)
	}
	if id.NodeID == "" {
		return Identity{}, fmt.Errorf("%w: certificate names no node", ErrBadRole)
	}
	return id, nil
}

// VerifyAPIServer is the tls.Config.VerifyConnection of every client of a
// manager's API: the CLI, agents, joining machines, managers relaying
// heartbeats. An agent's node certificate chains to the cluster CA and is a
// server certificate too (it serves the node API), for the address the
// agent gave when it joined: on the chain alone one agent could stand in
// for a manager and be sent the admin token, join tokens (a manager's
// brings the CA key) or other agents' requests. The managers' API
// certificates carry no node role.
func VerifyAPIServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) > 0 && slices.Contains(cs.PeerCertificates[0].Subject.OrganizationalUnit, RoleAgent) {
		return ErrAgentServer
	}
	return nil
}
