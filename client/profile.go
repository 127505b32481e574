package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Profile copies a profile of the daemon that answers (GET
// /v1/debug/profile/{name}, admin token) to w, in pprof's format: "cpu"
// sampled for seconds (0: the server's default), or a named runtime
// profile such as "heap" or "goroutine".
func (c *Client) Profile(ctx context.Context, name string, seconds int, w io.Writer) (int64, error) {
	path := "/v1/debug/profile/" + esc(name)
	if seconds > 0 {
		path += "?" + url.Values{"seconds": {fmt.Sprint(seconds)}}.Encode()
	}
	resp, err := c.send(ctx, c.stream, http.MethodGet, path, nil, "")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download profile: %w", err)
	}
	return n, nil
}
