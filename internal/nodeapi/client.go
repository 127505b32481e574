package nodeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
)

// Client calls the node API of agents, as a manager: its client
// certificate is a manager node certificate (see ManagerCert). A node is
// authenticated by its certificate: signed by the cluster CA for the node
// ID the caller expects (the certificate's DNS name), whatever address it
// is reached at.
type Client struct {
	pair *pki.Keypair
	ca   *x509.CertPool

	mu      sync.Mutex
	clients map[string]*http.Client // by node ID
}

// NewClient returns a client sending cert. It does no I/O.
func NewClient(cert tls.Certificate, ca *x509.CertPool) *Client {
	return NewKeypairClient(pki.NewKeypair(cert), ca)
}

// NewKeypairClient returns a client sending pair's current certificate, so
// new connections use a renewed one. It does no I/O.
func NewKeypairClient(pair *pki.Keypair, ca *x509.CertPool) *Client {
	return &Client{pair: pair, ca: ca, clients: map[string]*http.Client{}}
}

func (c *Client) http(node string) *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.clients[node]; ok {
		return hc
	}
	tr := &http.Transport{
		Proxy:       nil,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig: &tls.Config{
			GetClientCertificate: c.pair.GetClientCertificate,
			RootCAs:              c.ca,
			ServerName:           node, // node certificates carry their node ID as DNS name
			MinVersion:           tls.VersionTLS12,
		},
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	hc := &http.Client{Transport: tr}
	c.clients[node] = hc
	return hc
}

// Logs streams the logs of a service's replicas on node (reached at addr,
// host:port) to w, line by line, until the node ends the stream or ctx
// ends. A node's "error: ..." line (its failure after the stream began)
// comes back as the error.
func (c *Client) Logs(ctx context.Context, node, addr, project, service string, opts agent.LogOptions, w io.Writer) error {
	q := url.Values{"project": {project}, "service": {service}}
	if opts.Follow {
		q.Set("follow", "true")
	}
	if !opts.Since.IsZero() {
		q.Set("since", opts.Since.UTC().Format(time.RFC3339Nano))
	}
	if opts.Tail != 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	resp, err := c.open(ctx, node, addr, http.MethodGet, "/v1/logs", q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	lw := &lineWriter{w: w}
	_, err = io.Copy(lw, resp.Body)
	lw.flush()
	if lw.remoteErr != "" {
		return fmt.Errorf("node %s: %s", node, lw.remoteErr)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%w: node %s: stream cut: %w", ErrUnreachable, node, err)
	}
	return nil
}

// open sends a request to node's API at addr and returns the answer if
// its status is 200, else an error with the node's message.
func (c *Client) open(ctx context.Context, node, addr, method, path string, q url.Values) (*http.Response, error) {
	u := url.URL{Scheme: "https", Host: addr, Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	resp, err := c.http(node).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: node %s at %s: %w", ErrUnreachable, node, addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("node %s: %s: %s", node, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// ManagerCert issues this manager its own node certificate (RoleManager),
// the client certificate of its calls to the node API. It is kept in
// memory: a new one at every start, renewed while the manager runs
// (daemon/managercerts.go).
func ManagerCert(ca *pki.CA, name string) (tls.Certificate, error) {
	cert, err := ca.IssueNode(pki.NodeRequest{ID: name, Role: pki.RoleManager})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("manager certificate: %w", err)
	}
	return cert, nil
}
