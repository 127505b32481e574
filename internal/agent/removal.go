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

// CodeNodeReplaced is the error code (HTTP 403) of the managers' answer to
// a certificate of a node whose name a new join took (the record holds the
// new join's serial); RemoteConn turns it into ErrNodeReplaced.
const CodeNodeReplaced = "node_replaced"

// ErrNodeRemoved: the managers say this node is no longer a member. It is
// also an ErrRefused.
var ErrNodeRemoved = fmt.Errorf("%w: this node was removed from the cluster", ErrRefused)

// ErrNodeReplaced: the managers say a new join took this node's name, so
// its certificate is no longer accepted. It is also an ErrRefused.
var ErrNodeReplaced = fmt.Errorf("%w: this node's certificate was replaced by a new join of its name", ErrRefused)

// terminal are the refusals that end a node: the managers' word that it is
// no longer the member its certificate names.
var terminal = []error{ErrNodeRemoved, ErrNodeReplaced}

// terminalOf returns the terminal refusal err is, or nil.
func terminalOf(err error) error {
	for _, t := range terminal {
		if errors.Is(err, t) {
			return t
		}
	}
	return nil
}

// Defaults of the removal verdict (RemoteConfig).
const (
	defaultRemovedAfter = 15 * time.Second
	removedVerdicts     = 3
)

// removal turns the managers' answers into one verdict. A node is taken
// for removed (or replaced: any terminal refusal) only when the managers
// said so at least removedVerdicts times over at least after, with no
// successful answer in between: an answer from a manager whose store lags,
// a manager restarting or a network error (neither verdict) never stops a
// node, and any success starts the count again. A terminal answer of
// another kind than the run's starts a new run of its own.
type removal struct {
	after time.Duration
	now   func() time.Time

	mu      sync.Mutex
	first   time.Time // of the current run of terminal answers; zero: none
	count   int
	kind    error // of the current run
	done    chan struct{}
	verdict error // once done is closed
}

func newRemoval(after time.Duration) *removal {
	return &removal{after: after, now: time.Now, done: make(chan struct{})}
}

// observe takes the outcome of one answer: nil for a success, the error
// for a refusal. Other errors (transport, 5xx) must not be passed.
func (r *removal) observe(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.verdict != nil {
		return
	}
	kind := terminalOf(err)
	if kind == nil {
		if err == nil {
			r.first, r.count = time.Time{}, 0
		}
		return
	}
	now := r.now()
	if r.count == 0 || kind != r.kind {
		r.first, r.count, r.kind = now, 0, kind
	}
	r.count++
	if r.count >= removedVerdicts && now.Sub(r.first) >= r.after {
		r.verdict = kind
		close(r.done)
	}
}

// result is the verdict, nil until done is closed.
func (r *removal) result() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.verdict
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
// RemoteConfig.RemovedAfter, that this node was removed (`ruche node rm`)
// or that a new join took its name; Verdict then says which. The agent
// then has nothing left to do: the caller stops it.
func (c *RemoteConn) Removed() <-chan struct{} { return c.removal.done }

// Verdict is ErrNodeRemoved or ErrNodeReplaced once Removed is closed, nil
// before.
func (c *RemoteConn) Verdict() error { return c.removal.result() }

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
