package daemon

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

type fakeDrainer struct {
	calls []string
	err   error
	took  time.Duration
}

func (f *fakeDrainer) Drain(ctx context.Context, id string) error {
	f.calls = append(f.calls, id)
	select {
	case <-time.After(f.took):
	case <-ctx.Done():
		return ctx.Err()
	}
	return f.err
}

func TestCrossNodeDrainer(t *testing.T) {
	local := &fakeDrainer{}
	if d := crossNodeDrainer(local, nil, time.Second, nil); d != local {
		t.Errorf("single node: got %v, want the local drainer", d)
	}
	if d := crossNodeDrainer(nil, nil, time.Second, nil); d != nil {
		t.Errorf("single node without ingress: got %v, want nil", d)
	}
	synctest.Test(t, func(t *testing.T) {
		// The local proxy first, then the others; the stop waits for the
		// slowest of them, no fixed settle.
		local := &fakeDrainer{took: 300 * time.Millisecond}
		others := &fakeDrainer{took: 5 * time.Second}
		start := time.Now()
		if err := crossNodeDrainer(local, others.Drain, 30*time.Second, nil).Drain(context.Background(), "t1"); err != nil {
			t.Errorf("drain: %v", err)
		}
		if got := time.Since(start); got != 5300*time.Millisecond || len(local.calls) != 1 || len(others.calls) != 1 {
			t.Errorf("drained in %s (local %v, others %v); want 5.3s, one call each", got, local.calls, others.calls)
		}

		// The others cannot be asked: the fixed settle, and their error.
		others = &fakeDrainer{err: errors.New("no manager answered")}
		start = time.Now()
		err := crossNodeDrainer(nil, others.Drain, 30*time.Second, nil).Drain(context.Background(), "t2")
		if got := time.Since(start); got != crossNodeSettle || err == nil {
			t.Errorf("others failed: drained in %s with %v; want %s and their error", got, err, crossNodeSettle)
		}

		// An other node that never answers is given up after the
		// proxies' timeout and the margin, then the settle.
		others = &fakeDrainer{took: time.Hour}
		start = time.Now()
		crossNodeDrainer(nil, others.Drain, 30*time.Second, nil).Drain(context.Background(), "t3")
		if got, want := time.Since(start), 30*time.Second+crossNodeMargin+crossNodeSettle; got != want {
			t.Errorf("hung node: drained in %s, want %s", got, want)
		}

		// The local error is kept when the others drained.
		local = &fakeDrainer{err: errors.New("timeout")}
		if err := crossNodeDrainer(local, (&fakeDrainer{}).Drain, time.Second, nil).Drain(context.Background(), "t4"); err == nil || err.Error() != "timeout" {
			t.Errorf("local error: got %v", err)
		}

		// Cancelled: returns at once with the context's error.
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(500 * time.Millisecond); cancel() }()
		start = time.Now()
		if err := crossNodeDrainer(nil, (&fakeDrainer{took: time.Hour}).Drain, time.Minute, nil).Drain(ctx, "t5"); !errors.Is(err, context.Canceled) || time.Since(start) != 500*time.Millisecond {
			t.Errorf("cancelled: got %v after %s", err, time.Since(start))
		}
	})
}
