package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/ruche-platform/ruche/internal/netinit"
)

// fakeEngine replays start events for the containers named in starts once
// Events is called, and answers ContainerList from existing (before the
// launch) and running (after).
type fakeEngine struct {
	starts   []string
	existing []string
	running  []string

	mu    sync.Mutex
	lists int
}

func (f *fakeEngine) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	msgs := make(chan events.Message)
	errs := make(chan error, 1)
	go func() {
		for i, name := range f.starts {
			m := event(events.ActionStart, fmt.Sprintf("id%d", i), name, time.Now())
			select {
			case msgs <- m:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
		}
		<-ctx.Done()
		errs <- ctx.Err()
	}()
	return msgs, errs
}

func (f *fakeEngine) ContainerList(_ context.Context, opts container.ListOptions) ([]container.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	names := f.running
	if f.lists == 1 {
		names = f.existing
	}
	var out []container.Summary
	for _, n := range names {
		out = append(out, container.Summary{Names: []string{"/" + n}, State: container.StateRunning})
	}
	return out, nil
}

// ContainerInspect gives container idN the process N+1.
func (f *fakeEngine) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	var n int
	if _, err := fmt.Sscanf(id, "id%d", &n); err != nil {
		return container.InspectResponse{}, err
	}
	return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{State: &container.State{Running: true, Pid: n + 1}}}, nil
}

// TestConvergeNetworkReady: with NetworkReady, containers count once their
// namespace has a default route, not at their start.
func TestConvergeNetworkReady(t *testing.T) {
	three := []string{"bench-x-1", "bench-x-2", "bench-x-3"}
	proc := t.TempDir()
	noRoute := "Iface\tDestination\tGateway\nlo\t0000007F\t00000000\n"
	withRoute := noRoute + "eth0\t00000000\t0100D00A\n"
	for pid := 1; pid <= 3; pid++ {
		os.MkdirAll(fmt.Sprintf("%s/%d/net", proc, pid), 0o755)
		os.WriteFile(fmt.Sprintf("%s/%d/net/route", proc, pid), []byte(noRoute), 0o644)
	}
	const delay = 300 * time.Millisecond
	go func() {
		time.Sleep(delay)
		for pid := 1; pid <= 3; pid++ {
			os.WriteFile(fmt.Sprintf("%s/%d/net/route", proc, pid), []byte(withRoute), 0o644)
		}
	}()
	eng := &fakeEngine{starts: three, running: three}
	res, err := converge(context.Background(), eng, convergeOptions{Prefix: "bench-x-", Count: 3, Timeout: time.Minute, Args: []string{"true"},
		NetworkReady: true, Wired: func(ctx context.Context, pid int) error {
			for {
				b, _ := os.ReadFile(fmt.Sprintf("%s/%d/net/route", proc, pid))
				if netinit.HasDefaultRoute(string(b)) {
					return nil
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Running < delay || res.First < delay {
		t.Errorf("got %+v: converged before the routes existed (%s)", res, delay)
	}
}

func TestConverge(t *testing.T) {
	three := []string{"bench-x-1", "bench-x-2", "bench-x-3"}
	tests := []struct {
		name    string
		eng     *fakeEngine
		args    []string
		timeout time.Duration
		wantErr error
	}{
		{name: "converges", eng: &fakeEngine{starts: three, running: three}, args: []string{"true"}},
		{name: "leftovers refused", eng: &fakeEngine{existing: []string{"bench-x-9"}, starts: three, running: three}, args: []string{"true"}, wantErr: errPrecondition},
		{name: "similar names are not leftovers", eng: &fakeEngine{existing: []string{"old-bench-x-9"}, starts: three, running: three}, args: []string{"true"}},
		{name: "command fails", eng: &fakeEngine{starts: three, running: three}, args: []string{"sh", "-c", "exit 3"}, wantErr: errCommand},
		{name: "too few start", eng: &fakeEngine{starts: three[:2], running: three[:2]}, args: []string{"true"}, timeout: 300 * time.Millisecond, wantErr: errNotConverged},
		{name: "not running at the end", eng: &fakeEngine{starts: three, running: three[:2]}, args: []string{"true"}, wantErr: errNotConverged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = time.Minute
			}
			res, err := converge(context.Background(), tt.eng, convergeOptions{Prefix: "bench-x-", Count: 3, Timeout: timeout, Args: tt.args})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if res.Running <= 0 || res.Command <= 0 || res.First <= 0 || res.First > res.Running {
				t.Errorf("got %+v, want durations > 0 and First <= Running", res)
			}
		})
	}
}
