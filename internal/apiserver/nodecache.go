package apiserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// nodeCache follows the node records so the agent API checks a node
// certificate against its record without one store read per request. A
// miss or a serial mismatch is checked against the store before a refusal
// (the watch may lag a join by a few milliseconds), so the cache can only
// make a request cheaper, never wrongly refused. Streams of agents wait on
// changed() and re-check, so a removed node loses its streams at once.
type nodeCache struct {
	st store.Store

	mu      sync.Mutex
	ready   bool
	serials map[string]nodeSerials // by node id
	changed chan struct{}          // closed and replaced on every change
}

// nodeSerials are the certificate serials a node record accepts: the
// current one and the one it was renewed from, as of the record's
// revision rev; down is whether the record says the node is down.
type nodeSerials struct {
	cur, prev string
	rev       int64
	down      bool
}

// match is want when the record accepts it, else the current serial.
func (ns nodeSerials) match(want string) string {
	if want != "" && want == ns.prev {
		return want
	}
	return ns.cur
}

func newNodeCache(st store.Store) *nodeCache {
	return &nodeCache{st: st, serials: map[string]nodeSerials{}, changed: make(chan struct{})}
}

// serial returns the certificate serial of node's record: want when the
// record accepts it (current or previous serial), else the current one; ok
// is false when there is no record.
func (c *nodeCache) serial(ctx context.Context, node string, want string) (serial string, ok bool, err error) {
	c.mu.Lock()
	ns, ok := c.serials[node]
	ready := c.ready
	c.mu.Unlock()
	if ready && ok && ns.match(want) == want {
		return want, true, nil
	}
	var n client.Node
	if _, err := store.GetJSON(ctx, c.st, store.NodeKey(node), &n); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", false, nil
		}
		return "", false, err
	}
	return nodeSerials{cur: n.CertSerial, prev: n.CertSerialPrev}.match(want), true, nil
}

// down reports whether node's record says it is down (a store read when
// the cache does not know the node).
func (c *nodeCache) down(ctx context.Context, node string) (bool, error) {
	c.mu.Lock()
	ns, ok := c.serials[node]
	ready := c.ready
	c.mu.Unlock()
	if ready && ok {
		return ns.down, nil
	}
	var n client.Node
	if _, err := store.GetJSON(ctx, c.st, store.NodeKey(node), &n); err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	return n.Status == client.NodeDown, nil
}

// changes returns a channel closed at the next change of any node record.
func (c *nodeCache) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *nodeCache) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// run follows the node records until ctx ends, re-listing after a broken
// watch.
func (c *nodeCache) run(ctx context.Context) error {
	bo := time.Duration(0)
	for ctx.Err() == nil {
		if bo > 0 {
			select {
			case <-time.After(bo):
			case <-ctx.Done():
				return nil
			}
		}
		bo = min(max(2*bo, 100*time.Millisecond), 5*time.Second)
		kvs, rev, err := c.st.List(ctx, store.NodesPrefix)
		if err != nil {
			continue
		}
		c.mu.Lock()
		clear(c.serials)
		for _, kv := range kvs {
			c.put(kv)
		}
		c.ready = true
		c.notify()
		c.mu.Unlock()
		wctx, cancel := context.WithCancel(ctx)
		for resp := range c.st.Watch(wctx, store.NodesPrefix, rev+1) {
			if resp.Err != nil {
				break
			}
			bo = 0
			c.mu.Lock()
			for _, ev := range resp.Events {
				if ev.Type == store.EventPut {
					c.put(ev.KV)
				} else {
					delete(c.serials, store.Last(ev.KV.Key))
				}
			}
			c.notify()
			c.mu.Unlock()
		}
		cancel()
		c.mu.Lock()
		c.ready = false
		c.mu.Unlock()
	}
	return nil
}

func (c *nodeCache) put(kv store.KV) {
	var n client.Node
	if store.Decode(kv, &n) == nil {
		c.learn(store.Last(kv.Key), n, kv.ModRevision)
	}
}

// learn takes node's record as of revision rev, unless the cache already
// holds a later one. The certificate renewal calls it with the record it
// wrote: otherwise, until the watch brings that write, the cache would
// still accept the serial the renewal just retired (the record's previous
// serial before it), for a few milliseconds.
func (c *nodeCache) learn(node string, n client.Node, rev int64) {
	if old, ok := c.serials[node]; ok && old.rev > rev {
		return
	}
	c.serials[node] = nodeSerials{cur: n.CertSerial, prev: n.CertSerialPrev, rev: rev, down: n.Status == client.NodeDown}
}

// wrote is learn for a record this manager has just written.
func (c *nodeCache) wrote(node string, n client.Node, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready {
		c.learn(node, n, rev)
	}
}
