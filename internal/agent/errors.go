package agent

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors.
var (
	// ErrTaskGone: the task is no longer assigned to this node.
	ErrTaskGone = errors.New("agent: task no longer assigned")
	// ErrNoOpener: a secret is needed but the Conn cannot open secrets.
	ErrNoOpener = errors.New("agent: no secret opener")
)

// backoff is an exponential delay between retries.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
