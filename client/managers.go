package client

import (
	"context"
	"net/http"
)

// Managers lists the managers: store membership, health, leader.
func (c *Client) Managers(ctx context.Context) ([]Manager, error) {
	var out []Manager
	return out, c.do(ctx, http.MethodGet, "/v1/managers", nil, "", &out)
}

// MetricsTargets are where a Prometheus server scrapes the cluster
// (GET /v1/metrics/targets, Prometheus's http_sd format).
func (c *Client) MetricsTargets(ctx context.Context) (MetricsTargets, error) {
	var out MetricsTargets
	return out, c.do(ctx, http.MethodGet, "/v1/metrics/targets", nil, "", &out)
}

// RemoveManager takes a manager out of the store membership; force also
// when the cluster would be left without a healthy quorum or with an even
// number of managers.
func (c *Client) RemoveManager(ctx context.Context, name string, force bool) error {
	q := ""
	if force {
		q = "?force=true"
	}
	return c.do(ctx, http.MethodDelete, "/v1/managers/"+esc(name)+q, nil, "", nil)
}
