package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// CodeNodeRemoved is the error code (HTTP 403) of the managers' answer to
// a node whose record is gone (`ruche node rm`); RemoteConn turns it into
// ErrNodeRemoved.
const CodeNodeRemoved = "node_removed"

// ErrNodeRemoved: the managers say this node is no longer a member. It is
// also an ErrRefused.
var ErrNodeRemoved = fmt.Errorf("%w: this node was removed from the cluster", ErrRefused)

// Defaults of the removal verdict (RemoteConfig).
const (
	defaultRemovedAfter = 15 * time.Second
	removedVerdicts     = 3
)

// removal turns the managers' answers into one verdict. A node is taken
// for removed only when the managers said so at least removedVerdicts
// times over at least after, with no successful answer in between: an
// answer from a manager whose store lags, a manager restarting or a
// network error (neither verdict) never stops a node, and any success
// starts the count again.
type removal struct {
	after time.Duration
	now   func() time.Time

	mu    sync.Mutex
	first time.Time // of the current run of removal answers; zero: none
	count int
	done  chan struct{}
	fired bool
}

func newRemoval(after time.Duration) *removal {
	return &removal{after: after, now: time.Now, done: make(chan struct{})}
}

// observe takes the outcome of one answer: nil for a success, the error
// for a refusal. Other errors (transport, 5xx) must not be passed.
func (r *removal) observe(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fired {
		return
	}
	if !errors.Is(err, ErrNodeRemoved) {
		if err == nil {
			r.first, r.count = time.Time{}, 0
		}
		return
	}
	now := r.now()
	if r.count == 0 {
		r.first = now
	}
	r.count++
	if r.count >= removedVerdicts && now.Sub(r.first) >= r.after {
		r.fired = true
		close(r.done)
	}
}

// observeStatus takes an HTTP answer below 500 (err is readError's for an
// error status).
func (r *removal) observeStatus(status int, err error) {
	if status < http.StatusBadRequest {
		r.observe(nil)
	} else {
		r.observe(err)
	}
}

// Removed is closed once the managers have confirmed, over
// RemoteConfig.RemovedAfter, that this node was removed (`ruche node rm`).
// The agent then has nothing left to do: the caller stops it.
func (c *RemoteConn) Removed() <-chan struct{} { return c.removal.done }

// RenewCert asks the managers for a new certificate for the key of csrPEM,
// with the node's identity; the request is authenticated by the current
// certificate. It returns the new certificate, PEM-encoded.
func (c *RemoteConn) RenewCert(ctx context.Context, csrPEM []byte) ([]byte, error) {
	var out client.NodeCertResponse
	if _, err := c.call(ctx, http.MethodPost, nodePath(c.nodeID(), "cert"), client.NodeCertRequest{CSR: string(csrPEM)}, &out); err != nil {
		return nil, fmt.Errorf("renew node certificate: %w", err)
	}
	return []byte(out.Cert), nil
}
