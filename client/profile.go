package client

import (
	"context"
	"fmt"
	"io"
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
	return c.download(ctx, path, "profile", w)
}
