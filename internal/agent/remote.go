package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// The agent API on the managers (served by internal/apiserver, mutual TLS):
//
//	POST {prefix}<node>/register                       client.Node → 204
//	GET  {prefix}<node>/tasks                          NDJSON StreamFrame[store.TaskRecord]
//	PUT  {prefix}<node>/tasks/<task>/status            client.ReplicaStatus → 204, 410 task_gone
//	GET  {prefix}<node>/secrets/<project>/<name>       opened content
//	GET  {prefix}<node>/configs/<project>/<name>       content
//	GET  {prefix}<node>/cleanups                       NDJSON StreamFrame[store.CleanupRecord]
//	POST {prefix}<node>/cleanups/<project>/done        204
//	POST {prefix}<node>/heartbeat                      client.NodeLoad → HeartbeatReply
//	POST {prefix}<node>/events                         client.Event (type replica) → 204
//	POST {prefix}<node>/cert                           client.NodeCertRequest → client.NodeCertResponse
//
// and those of ruche's networks across nodes (mesh, subnets): see
// netconn_remote.go.
//
// A node whose record is gone gets 403 with code CodeNodeRemoved; a
// certificate a new join of the node's name replaced, CodeNodeReplaced.
const RemotePathPrefix = "/v1/agent/nodes/"

// CodeTaskGone is the error code of a status report for a task no longer
// assigned (HTTP 410); RemoteConn turns it back into ErrTaskGone.
const CodeTaskGone = "task_gone"

// ErrRefused: the managers refused the node (certificate unknown, node
// removed, or the node joined again with another certificate).
var ErrRefused = errors.New("agent: refused by the managers")

// StreamFrame is one line of an agent stream: the full set, or a
// keep-alive (Set is then null).
type StreamFrame[T any] struct {
	Set       []T  `json:"set"`
	KeepAlive bool `json:"keepalive,omitempty"`
}

// HeartbeatReply answers a heartbeat.
type HeartbeatReply struct {
	Interval client.Duration `json:"interval"` // 0: keep the current one
	// Managers are the API URLs of the live managers (empty: unknown);
	// the agent adds new ones to the list it talks to.
	Managers []string `json:"managers,omitempty"`
	// Resync: the managers have the node marked down, so its replicas may
	// have moved while it could not hear of it; the agent reopens its
	// streams at once rather than when their backoff or idle timeout
	// ends. Older agents ignore it.
	Resync bool `json:"resync,omitempty"`
}

// resyncEvery bounds how often heartbeat answers reopen the streams: every
// manager answers Resync to the same beat, and to the next ones until the
// monitor has marked the node ready.
const resyncEvery = 5 * time.Second

// RemoteConfig configures a RemoteConn.
type RemoteConfig struct {
	// Managers are the managers' API base URLs ("https://10.0.0.1:7443");
	// a request that cannot reach one goes to the next.
	Managers []string
	// Cert is the node certificate and key (client certificate); it also
	// names the node.
	Cert tls.Certificate
	// GetClientCertificate, when set, is used instead of Cert on each new
	// connection (a pki.Keypair's, so a renewed certificate is used
	// without a restart).
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// RemovedAfter is how long the managers must keep answering that the
	// node was removed before Removed is closed (default 15s).
	RemovedAfter time.Duration
	// RootCAs holds the cluster CA, the only one the managers' certificate
	// is checked against.
	RootCAs *x509.CertPool
	// Timeout bounds each request but the streams (default 15s).
	Timeout time.Duration
	// StreamIdle is how long a stream may stay silent (the managers send
	// keep-alives every 10s) before it is deemed dead and reopened
	// (default 35s).
	StreamIdle time.Duration
	Log        *slog.Logger
}

// RemoteConn is a Conn over HTTPS with mutual TLS to the managers: the
// agent of a node that joined (`ruche agent`).
type RemoteConn struct {
	cfg     RemoteConfig
	hcp     atomic.Pointer[http.Client] // replaced by CertRenewed
	log     *slog.Logger
	removal *removal

	mu       sync.Mutex
	cur      int             // index of the manager that answered last
	managers []string        // cfg.Managers, and those heartbeats learn of
	beating  map[string]bool // managers with a heartbeat in flight
	resynced time.Time       // when a heartbeat answer last reopened the streams
	kick     chan struct{}   // closed (and replaced) to reopen the streams

	events chan struct{} // bounds the event sends in flight
}

var _ Conn = (*RemoteConn)(nil)

// NewRemoteConn returns a RemoteConn. It does no I/O.
func NewRemoteConn(cfg RemoteConfig) *RemoteConn {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.StreamIdle <= 0 {
		cfg.StreamIdle = 35 * time.Second
	}
	if cfg.RemovedAfter <= 0 {
		cfg.RemovedAfter = defaultRemovedAfter
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &RemoteConn{cfg: cfg, log: log.With("component", "remoteconn"), events: make(chan struct{}, 8),
		managers: slices.Clone(cfg.Managers), beating: map[string]bool{}, kick: make(chan struct{}), removal: newRemoval(cfg.RemovedAfter)}
	c.hcp.Store(newHTTPClient(cfg))
	return c
}

func newHTTPClient(cfg RemoteConfig) *http.Client {
	tc := &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12, VerifyConnection: pki.VerifyAPIServer}
	if cfg.GetClientCertificate != nil {
		tc.GetClientCertificate = cfg.GetClientCertificate
	} else {
		tc.Certificates = []tls.Certificate{cfg.Cert}
	}
	tr := &http.Transport{
		TLSClientConfig:       tc,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		// A manager that vanished without closing (power cut, cable) is
		// noticed by HTTP/2 pings within ~15s, for every request and
		// stream on the connection at once.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 10 * time.Second, PingTimeout: 5 * time.Second},
	}
	return &http.Client{Transport: tr}
}

func (c *RemoteConn) hc() *http.Client { return c.hcp.Load() }

// Close releases idle connections.
func (c *RemoteConn) Close() { c.hc().CloseIdleConnections() }

// CertRenewed makes new requests open new connections, which present the
// renewed certificate (GetClientCertificate); requests and streams in
// flight finish on the old ones, which the managers still accept.
func (c *RemoteConn) CertRenewed() {
	old := c.hcp.Swap(newHTTPClient(c.cfg))
	old.CloseIdleConnections()
}

// remoteError is an error answer of the managers.
type remoteError struct {
	status int
	code   string
	msg    string
}

func (e *remoteError) Error() string { return fmt.Sprintf("manager answered %d: %s", e.status, e.msg) }

func (e *remoteError) Unwrap() error {
	switch {
	case e.code == CodeTaskGone:
		return ErrTaskGone
	case e.code == CodeNodeRemoved:
		return ErrNodeRemoved
	case e.code == CodeNodeReplaced:
		return ErrNodeReplaced
	case e.status == http.StatusUnauthorized || e.status == http.StatusForbidden:
		return ErrRefused
	case e.status == http.StatusNotFound:
		return store.ErrNotFound
	}
	return nil
}

// send sends a request to the manager that answered last, then to the
// others in turn; a manager that cannot be reached or answers 5xx is
// skipped. Answers 4xx are the managers' verdict and come back as errors.
func (c *RemoteConn) send(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	c.mu.Lock()
	start := c.cur
	managers := c.managers
	c.mu.Unlock()
	n := len(managers)
	if n == 0 {
		return nil, errors.New("no manager URL")
	}
	var lastErr error
	for i := range n {
		idx := (start + i) % n
		req, err := http.NewRequestWithContext(ctx, method, managers[idx]+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.hc().Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
			continue
		}
		if resp.StatusCode >= 500 {
			lastErr = readError(resp)
			continue
		}
		c.mu.Lock()
		c.cur = idx
		c.mu.Unlock()
		if resp.StatusCode >= 400 {
			err := readError(resp)
			c.removal.observeStatus(resp.StatusCode, err)
			return nil, err
		}
		c.removal.observeStatus(resp.StatusCode, nil)
		return resp, nil
	}
	return nil, fmt.Errorf("no manager answered: %w", lastErr)
}

func readError(resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e client.Error
	if json.Unmarshal(b, &e) != nil || e.Message == "" {
		e.Message = resp.Status
	}
	return &remoteError{status: resp.StatusCode, code: e.Code, msg: e.Message}
}

// call is a bounded request; out (if non-nil) gets the JSON answer, raw (if
// non-nil) the body as is.
func (c *RemoteConn) call(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("decode answer: %w", err)
		}
	}
	return b, nil
}

func nodePath(node string, rest ...string) string {
	p := RemotePathPrefix + url.PathEscape(node)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// RegisterNode refreshes the node's record (the managers keep what they
// decide: role, availability, labels, address).
func (c *RemoteConn) RegisterNode(ctx context.Context, n client.Node) error {
	if _, err := c.call(ctx, http.MethodPost, nodePath(n.ID, "register"), n, nil); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	return nil
}

// ReportStatus sends a task's status; ErrTaskGone when it is no longer
// assigned.
func (c *RemoteConn) ReportStatus(ctx context.Context, taskID, node string, st client.ReplicaStatus) error {
	if _, err := c.call(ctx, http.MethodPut, nodePath(node, "tasks", taskID, "status"), st, nil); err != nil {
		return fmt.Errorf("report status of %s: %w", taskID, err)
	}
	return nil
}

// Secret fetches a secret's content, opened by the managers and sent over
// the mutual TLS connection. The node is taken from the certificate's
// path: a node may only read secrets of projects it runs replicas of.
func (c *RemoteConn) Secret(ctx context.Context, project, name string) ([]byte, error) {
	b, err := c.call(ctx, http.MethodGet, nodePath(c.nodeID(), "secrets", project, name), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return b, nil
}

// Config fetches a config's content.
func (c *RemoteConn) Config(ctx context.Context, project, name string) ([]byte, error) {
	b, err := c.call(ctx, http.MethodGet, nodePath(c.nodeID(), "configs", project, name), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return b, nil
}

// nodeID is the node the certificate names.
func (c *RemoteConn) nodeID() string {
	if leaf := c.cfg.Cert.Leaf; leaf != nil {
		return leaf.Subject.CommonName
	}
	if len(c.cfg.Cert.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(c.cfg.Cert.Certificate[0]); err == nil {
			return leaf.Subject.CommonName
		}
	}
	return ""
}

// CleanupDone takes the node out of a project's cleanup record.
func (c *RemoteConn) CleanupDone(ctx context.Context, project, node string) error {
	if _, err := c.call(ctx, http.MethodPost, nodePath(node, "cleanups", project, "done"), nil, nil); err != nil {
		return fmt.Errorf("cleanup done: %w", err)
	}
	return nil
}

// DrainElsewhere asks the managers to drain task from every other node's
// proxy, and waits for the outcome (agent.WriteDrainAnswer). ctx bounds
// it; the proxies' own drain timeouts bound it on their side.
func (c *RemoteConn) DrainElsewhere(ctx context.Context, node, task string) error {
	resp, err := c.send(ctx, http.MethodPost, nodePath(node, "drain", task), nil)
	if err != nil {
		return fmt.Errorf("cross-node drain: %w", err)
	}
	defer resp.Body.Close()
	if err := ReadDrainAnswer(resp.Body); err != nil {
		return fmt.Errorf("cross-node drain: %w", err)
	}
	return nil
}

// Managers are the managers' URLs the connection knows: those it was
// given and those heartbeat answers named since.
func (c *RemoteConn) Managers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.managers)
}

// Heartbeat sends the node's load to every manager at once: node health
// lives in the leading manager's memory, and whichever manager leads next
// must have heard the node too (a new leader gives every node a grace
// period, but only one). It returns with the first answer, the interval
// the managers want; the beats to slower managers finish in the
// background, at most one in flight per manager, so a manager that does
// not answer never delays the others. Managers named in the answers are
// added to the list.
func (c *RemoteConn) Heartbeat(ctx context.Context, node string, load client.NodeLoad) (time.Duration, error) {
	body, _ := json.Marshal(load)
	type result struct {
		reply HeartbeatReply
		err   error
	}
	managers := c.Managers()
	results := make(chan result, len(managers))
	sent := 0
	for _, m := range managers {
		c.mu.Lock()
		busy := c.beating[m]
		c.beating[m] = true
		c.mu.Unlock()
		if busy {
			continue
		}
		sent++
		go func() {
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(c.cfg.Timeout, 5*time.Second))
			var r result
			r.err = c.beatOne(bctx, m, node, body, &r.reply)
			cancel()
			// Done before the answer is handed over: a heartbeat sent
			// as soon as this one returns must find the manager free.
			c.mu.Lock()
			delete(c.beating, m)
			c.mu.Unlock()
			results <- r
		}()
	}
	if sent == 0 {
		return 0, errors.New("heartbeat: every manager still has a beat in flight")
	}
	var lastErr error
	for range sent {
		select {
		case r := <-results:
			if r.err != nil {
				// A refusal (the node was removed or replaced) is the
				// managers' answer; it outranks a manager that could not
				// be reached, whichever came last.
				if lastErr == nil || !errors.Is(lastErr, ErrRefused) {
					lastErr = r.err
				}
				continue
			}
			c.learnManagers(r.reply.Managers)
			return r.reply.Interval.D(), nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return 0, fmt.Errorf("heartbeat: %w", lastErr)
}

func (c *RemoteConn) beatOne(ctx context.Context, manager, node string, body []byte, out *HeartbeatReply) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, manager+nodePath(node, "heartbeat"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		return readError(resp)
	}
	if resp.StatusCode >= 400 {
		err := readError(resp)
		c.removal.observeStatus(resp.StatusCode, err)
		return err
	}
	c.removal.observeStatus(resp.StatusCode, nil)
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if out.Resync {
		c.resync()
	}
	return nil
}

// resync reopens the streams at once (see HeartbeatReply.Resync), at most
// once per resyncEvery.
func (c *RemoteConn) resync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); c.resynced.IsZero() || now.Sub(c.resynced) >= resyncEvery {
		c.resynced = now
		close(c.kick)
		c.kick = make(chan struct{})
		c.log.Info("the managers had this node down; reopening the streams from them")
	}
}

// kicked returns a channel closed at the next resync.
func (c *RemoteConn) kicked() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kick
}

// learnManagers adds managers a heartbeat answer named.
func (c *RemoteConn) learnManagers(urls []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range urls {
		if strings.HasPrefix(u, "https://") && !slices.Contains(c.managers, u) {
			c.managers = append(c.managers, u)
			c.log.Info("manager learnt from a heartbeat", "manager", u)
		}
	}
}

var _ EventRecorder = (*RemoteConn)(nil)

// Record sends a replica event to the managers, in the background: it never
// blocks the agent, and drops the event when 8 are already in flight or the
// managers cannot be reached within 5s (events are best effort).
func (c *RemoteConn) Record(ctx context.Context, ev client.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	select {
	case c.events <- struct{}{}:
	default:
		c.log.Debug("event dropped: too many in flight", "action", ev.Action, "replica", ev.Replica)
		return
	}
	go func() {
		defer func() { <-c.events }()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := c.call(ctx, http.MethodPost, nodePath(c.nodeID(), "events"), ev, nil); err != nil {
			c.log.Debug("event not recorded", "action", ev.Action, "replica", ev.Replica, "err", err)
		}
	}()
}

// WatchTasks follows the node's task set.
func (c *RemoteConn) WatchTasks(ctx context.Context, node string) (<-chan []store.TaskRecord, error) {
	return watchRemote[store.TaskRecord](ctx, c, nodePath(node, "tasks")), nil
}

// WatchCleanups follows the cleanup records naming the node.
func (c *RemoteConn) WatchCleanups(ctx context.Context, node string) (<-chan []store.CleanupRecord, error) {
	return watchRemote[store.CleanupRecord](ctx, c, nodePath(node, "cleanups")), nil
}

// watchRemote follows an NDJSON set stream, reopening it with backoff when
// it breaks or stays silent longer than StreamIdle, and at once when a
// heartbeat answer asks for a resync. Every (re)connection starts with the
// full set, so the channel stays level-triggered like watchSet's: it holds
// at most one set, the latest.
func watchRemote[T any](ctx context.Context, c *RemoteConn, path string) <-chan []T {
	out := make(chan []T, 1)
	go func() {
		defer close(out)
		bo := backoff{min: 200 * time.Millisecond, max: 10 * time.Second}
		failing := false
		for {
			kick := c.kicked()
			got, err := streamOnce(ctx, c, path, kick, func(set []T) {
				select {
				case <-out:
				default:
				}
				out <- set
			})
			if ctx.Err() != nil {
				return
			}
			if got {
				bo.reset()
			}
			if isClosed(kick) { // reopen now, without a warning
				bo.reset()
				failing = false
				continue
			}
			if !failing || got {
				c.log.Warn("stream from the managers broke; reconnecting", "path", path, "err", err)
			}
			failing = !got
			t := time.NewTimer(bo.next())
			select {
			case <-t.C:
			case <-kick: // reopen now: the managers may have moved replicas
				bo.reset()
			case <-ctx.Done():
				t.Stop()
				return
			}
			t.Stop()
		}
	}()
	return out
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// streamOnce reads one connection of a set stream, until it breaks or
// kick is closed; got reports whether a set arrived.
func streamOnce[T any](ctx context.Context, c *RemoteConn, path string, kick <-chan struct{}, fn func([]T)) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-kick:
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	// A silent stream is a dead one: the managers send keep-alives.
	idle := time.AfterFunc(c.cfg.StreamIdle, cancel)
	defer idle.Stop()
	dec := json.NewDecoder(resp.Body)
	for {
		var f StreamFrame[T]
		if err := dec.Decode(&f); err != nil {
			if ctx.Err() != nil && !idle.Stop() {
				return got, fmt.Errorf("no keep-alive for %s", c.cfg.StreamIdle)
			}
			return got, err
		}
		idle.Reset(c.cfg.StreamIdle)
		if f.KeepAlive {
			continue
		}
		if f.Set == nil {
			f.Set = []T{}
		}
		got = true
		fn(f.Set)
	}
}
