package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Backup copies the cluster's backup archive (GET /v1/backup, admin token)
// to w. The archive holds the cluster's keys: keep it private. Verify it
// before trusting it (a connection cut mid-stream leaves it truncated).
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return c.download(ctx, "/v1/backup", "backup", w)
}

// download copies the body of GET path to w, on the streaming client (no
// overall timeout); what names the download in errors.
func (c *Client) download(ctx context.Context, path, what string, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, c.stream, http.MethodGet, path, nil, "")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download %s: %w", what, err)
	}
	return n, nil
}
