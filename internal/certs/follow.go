package certs

import (
	"context"
	"time"

	"github.com/ruche-platform/ruche/internal/store"
)

// follow mirrors the keys under prefix until ctx ends: reset gets a full
// listing (at start and whenever the watch is lost), apply every change
// after it. Store errors are retried with a capped backoff.
func (m *Manager) follow(ctx context.Context, prefix string, reset func([]store.KV), apply func(store.Event)) {
	backoff := time.Second
	for ctx.Err() == nil {
		kvs, rev, err := m.st.List(ctx, prefix)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("list stored certificates", "prefix", prefix, "err", err)
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
		reset(kvs)
		m.poke()
		m.notify()
		wctx, cancel := context.WithCancel(ctx)
		for resp := range m.st.Watch(wctx, prefix, rev+1) {
			if resp.Err != nil {
				if ctx.Err() == nil {
					m.log.Warn("watch stored certificates; listing again", "prefix", prefix, "err", resp.Err)
				}
				break
			}
			for _, ev := range resp.Events {
				apply(ev)
			}
			m.notify()
		}
		cancel()
		if !sleep(ctx, 100*time.Millisecond) { // do not spin on a store that keeps failing
			return
		}
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
