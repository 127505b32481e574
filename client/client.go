package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ruche-platform/ruche/internal/pki"
)

// Client talks to the ruche API.
type Client struct {
	servers []string
	token   string
	http    *http.Client
	// stream is http without an overall timeout, for follow requests.
	stream *http.Client
}

// New returns a client for cfg. It does no I/O.
func New(cfg *Config) (*Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cfg.CA)) {
		return nil, errors.New("client config: no certificate in ca")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, VerifyConnection: pki.VerifyAPIServer},
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
	}
	return &Client{
		servers: cfg.Servers,
		token:   cfg.Token,
		http:    &http.Client{Transport: tr, Timeout: 5 * time.Minute},
		stream:  &http.Client{Transport: tr},
	}, nil
}

// do sends a request to the first server that answers and decodes a JSON
// response into out (if non-nil). API errors come back as *Error.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	resp, err := c.send(ctx, c.http, method, path, body, contentType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	var buf []byte
	if body != nil {
		var err error
		if buf, err = io.ReadAll(body); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for _, server := range c.servers {
		req, err := http.NewRequestWithContext(ctx, method, server+path, bytes.NewReader(buf))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := hc.Do(req)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue // try the next manager
		}
		if resp.StatusCode >= 400 {
			defer resp.Body.Close()
			var apiErr Error
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if json.Unmarshal(b, &apiErr) != nil || apiErr.Message == "" {
				apiErr = Error{Status: resp.StatusCode, Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status)}
			}
			return nil, &apiErr
		}
		return resp, nil
	}
	return nil, fmt.Errorf("no ruche API answered (%v): is `ruche up` running?", lastErr)
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func esc(s string) string { return url.PathEscape(s) }

// Deploy sends a project spec.
func (c *Client) Deploy(ctx context.Context, p *ProjectSpec, dryRun bool) (*DeployResponse, error) {
	var out DeployResponse
	err := c.do(ctx, http.MethodPut, "/v1/projects/"+esc(p.Name), jsonBody(DeployRequest{Project: *p, DryRun: dryRun}), "application/json", &out)
	return &out, err
}

// Projects lists projects.
func (c *Client) Projects(ctx context.Context) ([]Project, error) {
	var out []Project
	return out, c.do(ctx, http.MethodGet, "/v1/projects", nil, "", &out)
}

// Project returns one project.
func (c *Client) Project(ctx context.Context, name string) (*Project, error) {
	var out Project
	return &out, c.do(ctx, http.MethodGet, "/v1/projects/"+esc(name), nil, "", &out)
}

// WatchProject calls fn with the project's view now and on every change,
// until fn returns false, ctx ends or the stream breaks.
func (c *Client) WatchProject(ctx context.Context, name string, fn func(*Project) bool) error {
	resp, err := c.send(ctx, c.stream, http.MethodGet, "/v1/projects/"+esc(name)+"/watch", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var p Project
		if err := dec.Decode(&p); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("watch %s: %w", name, err)
		}
		if !fn(&p) {
			return nil
		}
	}
}

// Scale sets a service's replica count.
func (c *Client) Scale(ctx context.Context, project, service string, replicas int) (*Change, error) {
	var out Change
	return &out, c.do(ctx, http.MethodPost, "/v1/projects/"+esc(project)+"/services/"+esc(service)+"/scale",
		jsonBody(ScaleRequest{Replicas: replicas}), "application/json", &out)
}

// Rollback puts a service back on its previous spec.
func (c *Client) Rollback(ctx context.Context, project, service string) (*Change, error) {
	var out Change
	return &out, c.do(ctx, http.MethodPost, "/v1/projects/"+esc(project)+"/services/"+esc(service)+"/rollback", nil, "", &out)
}

// Remove removes a project; its named volumes only if volumes is true.
func (c *Client) Remove(ctx context.Context, project string, volumes bool) (*DeployResponse, error) {
	var out DeployResponse
	return &out, c.do(ctx, http.MethodDelete, "/v1/projects/"+esc(project)+"?volumes="+strconv.FormatBool(volumes), nil, "", &out)
}

// Status returns the cluster overview.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	return &out, c.do(ctx, http.MethodGet, "/v1/status", nil, "", &out)
}

// Nodes lists nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	return out, c.do(ctx, http.MethodGet, "/v1/nodes", nil, "", &out)
}

// LogOptions select log lines.
type LogOptions struct {
	Follow bool
	Since  string // duration ("10m") or RFC 3339 time
	Tail   int    // last N lines per replica; negative means all
}

// Logs copies a service's logs to w.
func (c *Client) Logs(ctx context.Context, project, service string, opts LogOptions, w io.Writer) error {
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "true")
	}
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	if opts.Tail >= 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	resp, err := c.send(ctx, c.stream, http.MethodGet, "/v1/projects/"+esc(project)+"/services/"+esc(service)+"/logs?"+q.Encode(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Events calls fn for each recorded event (since may be "" for all), and
// with follow for new ones until ctx ends.
func (c *Client) Events(ctx context.Context, since, project string, follow bool, fn func(Event)) error {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if project != "" {
		q.Set("project", project)
	}
	if follow {
		q.Set("follow", "true")
	}
	resp, err := c.send(ctx, c.stream, http.MethodGet, "/v1/events?"+q.Encode(), nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev Event
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			fn(ev)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Routes lists every route with its replicas.
func (c *Client) Routes(ctx context.Context) ([]Route, error) {
	var out []Route
	return out, c.do(ctx, http.MethodGet, "/v1/routes", nil, "", &out)
}
