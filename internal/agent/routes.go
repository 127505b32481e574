package agent

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/ruche-platform/ruche/internal/routing"
	"github.com/ruche-platform/ruche/internal/store"
)

// WatchRoutes follows the node's routing table as the managers compute it
// (GET {prefix}<node>/routes; an agent has no store): the full table on
// every change, the latest only, reconnecting like the other streams. The
// channel closes when ctx ends.
func (c *RemoteConn) WatchRoutes(ctx context.Context, node string) <-chan []routing.Route {
	return watchRemote[routing.Route](ctx, c, nodePath(node, "routes"))
}

// CertBundle is a TLS certificate an agent's ingress serves: the host (or
// "*.domain") of a route, the chain (DER, leaf first) and the private key
// (PKCS #8 DER). Sent only over the agent API's mutual TLS.
type CertBundle struct {
	Host  string   `json:"host"`
	Chain [][]byte `json:"chain"`
	Key   []byte   `json:"key"`
}

// WatchCerts follows the certificates of the routes the node serves
// (GET {prefix}<node>/certs), the full set on every change, the latest only.
func (c *RemoteConn) WatchCerts(ctx context.Context, node string) <-chan []CertBundle {
	return watchRemote[CertBundle](ctx, c, nodePath(node, "certs"))
}

// ACMEALPNCert fetches the certificate an ACME TLS-ALPN-01 validation of
// host expects (GET {prefix}<node>/acme-tls-alpn/<host>) from the
// managers, whichever node started the order. store.ErrNotFound: no such
// challenge.
func (c *RemoteConn) ACMEALPNCert(ctx context.Context, node, host string) (CertBundle, error) {
	var b CertBundle
	_, err := c.call(ctx, http.MethodGet, nodePath(node, "acme-tls-alpn", host), nil, &b)
	return b, err
}

// ACMEChallenge fetches the answer to an ACME HTTP-01 validation request
// for host at path (/.well-known/acme-challenge/<token>) from the managers,
// whichever node started the order. store.ErrNotFound: no such challenge.
func (c *RemoteConn) ACMEChallenge(ctx context.Context, node, host, path string) ([]byte, error) {
	token, ok := strings.CutPrefix(path, "/.well-known/acme-challenge/")
	if !ok || token == "" || strings.Contains(token, "/") {
		return nil, store.ErrNotFound
	}
	return c.call(ctx, http.MethodGet, nodePath(node, "acme-challenge", token)+"?host="+url.QueryEscape(host), nil, nil)
}
