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
}

func (f *fakeDrainer) Drain(ctx context.Context, id string) error {
	f.calls = append(f.calls, id)
	return f.err
}

func TestCrossNodeDrainer(t *testing.T) {
	local := &fakeDrainer{}
	if d := crossNodeDrainer(local, false); d != local {
		t.Errorf("single node: got %v, want the local drainer", d)
	}
	if d := crossNodeDrainer(nil, false); d != nil {
		t.Errorf("single node without ingress: got %v, want nil", d)
	}
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			local *fakeDrainer
		}{{"with a local proxy", &fakeDrainer{err: errors.New("timeout")}}, {"without", nil}} {
			var d = crossNodeDrainer(nil, true)
			if tc.local != nil {
				d = crossNodeDrainer(tc.local, true)
			}
			start := time.Now()
			err := d.Drain(context.Background(), "t1")
			if got := time.Since(start); got != crossNodeSettle {
				t.Errorf("%s: drained in %s, want %s", tc.name, got, crossNodeSettle)
			}
			if tc.local != nil && (len(tc.local.calls) != 1 || err == nil) {
				t.Errorf("%s: local calls %v, err %v; want one call and its error", tc.name, tc.local.calls, err)
			}
			if tc.local == nil && err != nil {
				t.Errorf("%s: got %v", tc.name, err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(500 * time.Millisecond); cancel() }()
		start := time.Now()
		if err := crossNodeDrainer(nil, true).Drain(ctx, "t2"); !errors.Is(err, context.Canceled) || time.Since(start) != 500*time.Millisecond {
			t.Errorf("cancelled: got %v after %s", err, time.Since(start))
		}
	})
}
