package proxy

import (
	"context"
	"fmt"
)

// Drain waits until upstreamID (a task ID) is out of the current table
// and no request (WebSocket included) is in flight to it, then closes its
// idle connections. It gives up after DrainTimeout or when ctx ends. The
// agent calls it before stopping a replica's container; the routing view
// has removed the replica from the table by then, or is about to.
func (p *Proxy) Drain(ctx context.Context, upstreamID string) error {
	ctx, cancel := context.WithTimeoutCause(ctx, p.cfg.DrainTimeout, ErrDrainTimeout)
	defer cancel()
	fail := func() error {
		return fmt.Errorf("proxy: drain %s: %w", upstreamID, context.Cause(ctx))
	}
	for {
		ch := p.wait()
		if _, in := p.table.Load().byID[upstreamID]; !in {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fail()
		}
	}
	p.mu.Lock()
	var ss []*upstream
	for _, s := range p.states {
		if s.id == upstreamID {
			ss = append(ss, s)
		}
	}
	p.mu.Unlock()
	for _, s := range ss {
		select {
		case <-s.idle():
		case <-ctx.Done():
			return fail()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, s := range p.states {
		if s.id == upstreamID && s.removed.Load() {
			s.pool.closeIdle(true)
			if s.inflight.Load() == 0 && s.draining.Load() == 0 {
				delete(p.states, k)
			}
		}
	}
	return nil
}
