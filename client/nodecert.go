package client

// NodeCertRequest is the body of POST /v1/agent/nodes/{node}/cert: a node
// renewing its certificate, authenticated by the one it holds.
type NodeCertRequest struct {
	// CSR is the PEM certificate request for the node's new key.
	CSR string `json:"csr"`
}

// NodeCertResponse answers a NodeCertRequest: the new certificate (PEM),
// same node ID and role as the one it replaces.
type NodeCertResponse struct {
	Cert string `json:"cert"`
}
