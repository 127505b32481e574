package daemon

import (
	"context"
	"fmt"
	"sync"
)

// parts runs the long-lived parts of one process (API, controllers, agent,
// ingress...) as goroutines. The first part to fail while ctx is live is
// reported by failed; a later failure is dropped, since the process is
// stopping by then, and no part ever blocks on reporting.
type parts struct {
	ctx   context.Context
	wg    sync.WaitGroup
	first chan error
}

func newParts(ctx context.Context) *parts {
	return &parts{ctx: ctx, first: make(chan error, 1)}
}

// run starts fn as the part name.
func (p *parts) run(name string, fn func() error) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := fn(); err != nil && p.ctx.Err() == nil {
			select {
			case p.first <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
}

// failed delivers the first failure.
func (p *parts) failed() <-chan error { return p.first }

// wait returns when every part has returned.
func (p *parts) wait() { p.wg.Wait() }
