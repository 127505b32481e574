package h1

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// errHandlerDone cancels a request's context once its handler has
// returned, as net/http does (it is context.Canceled).
var errHandlerDone = context.Canceled

// reqCtx is a request's context. It is cancelled when the client leaves
// or the handler returns. Watching for the client costs a goroutine
// blocked in a read of the connection, so it starts only when a handler
// asks: on the first Done, or context.AfterFunc (through the AfterFunc
// method, which the context package uses instead of a goroutine of its
// own). A handler that never waits never pays for it.
type reqCtx struct {
	w        *response
	watching atomic.Bool

	mu     sync.Mutex
	done   chan struct{}
	err    error
	afters []*afterFunc
}

type afterFunc struct{ f func() }

var _ context.Context = (*reqCtx)(nil)

func (x *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x *reqCtx) Value(any) any               { return nil }

func (x *reqCtx) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.err
}

func (x *reqCtx) Done() <-chan struct{} {
	x.mu.Lock()
	if x.done == nil {
		x.done = make(chan struct{})
		if x.err != nil {
			close(x.done)
		}
	}
	d := x.done
	cancelled := x.err != nil
	x.mu.Unlock()
	if !cancelled {
		x.watch()
	}
	return d
}

// AfterFunc arranges for f to run in its own goroutine once the context
// is cancelled; stop reports whether it stopped f from running.
func (x *reqCtx) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	x.mu.Lock()
	if x.err != nil {
		x.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	x.afters = append(x.afters, a)
	x.mu.Unlock()
	x.watch()
	return func() bool {
		x.mu.Lock()
		defer x.mu.Unlock()
		for i, b := range x.afters {
			if b == a {
				x.afters = append(x.afters[:i], x.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}

// watch starts the background read that notices the client leaving,
// once the request body (if any) has been read: until then a read of
// the body notices it.
func (x *reqCtx) watch() {
	if x.watching.Swap(true) {
		return
	}
	w := x.w
	if w.body.inner == nil || w.body.finished.Load() {
		w.c.cr.startBackgroundRead()
	}
}

func (x *reqCtx) cancel(err error) {
	x.mu.Lock()
	if x.err != nil {
		x.mu.Unlock()
		return
	}
	x.err = err
	if x.done != nil {
		close(x.done)
	}
	afters := x.afters
	x.afters = nil
	x.mu.Unlock()
	for _, a := range afters {
		go a.f()
	}
}
