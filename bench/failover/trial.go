package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ruche-platform/ruche/internal/testbed"
)

// pollEvery is how often a trial asks the system where its replicas are.
const pollEvery = 100 * time.Millisecond

// trial is one node killed and the service's recovery, each time counted
// from the moment PowerOff began. Zero durations were not observed.
type trial struct {
	System string
	N      int
	Victim string
	Held   int // replicas the victim held when it was killed

	PowerOff time.Duration // how long PowerOff itself took
	Down     time.Duration // the manager lists the node down (first poll that saw it)
	Placed   time.Duration // the last replacement was created (the manager's timestamp)
	Started  time.Duration // the last replacement's container started (the engine's timestamp)
	Ready    time.Duration // the full count ready on the other nodes: the figure

	Rejoin time.Duration // PowerOn began (dockerd started again) → the node is listed ready
	Settle time.Duration // node ready → the full count and no surplus container
	Err    string
}

// ok says whether the trial measured its figure.
func (t trial) ok() bool { return t.Err == "" && t.Ready > 0 }

// system is what a trial drives: ruche or Swarm, on the testbed's nodes.
type system interface {
	Name() string
	// Placement counts the service's ready replicas per node name.
	Placement(ctx context.Context) (map[string]int, error)
	// Respread replaces the replicas (a rolling update) so that they spread
	// over the nodes again; it returns once the update converged.
	Respread(ctx context.Context, gen int) error
	// Measure polls from t0 (PowerOff of victim began; before lists the
	// replicas that ran then) until the full count is ready on the other
	// nodes, filling tr.
	Measure(ctx context.Context, victim string, t0 time.Time, tr *trial) error
	// Rejoin brings the victim back after PowerOn of its dockerd and waits
	// until the manager lists it ready.
	Rejoin(ctx context.Context, victim string) error
	// Settle waits until the service has its full count ready and no
	// surplus container on any node.
	Settle(ctx context.Context) error
}

// runTrials runs n trials of sys on tb: before each, the replicas are
// spread again if some node holds none; the victim is a node other than
// node1 (the manager) holding replicas, node2 and node3 in turn.
func runTrials(ctx context.Context, log *slog.Logger, tb *testbed.Testbed, sys system, n, replicas int, timeout time.Duration) ([]trial, error) {
	var out []trial
	gen := 0
	for i := 1; i <= n; i++ {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		place, err := spread(ctx, log, sys, &gen, len(tb.Nodes()), replicas)
		if err != nil {
			return out, err
		}
		victim := pickVictim(tb, place, i)
		if victim == "" {
			return out, fmt.Errorf("%s: trial %d: no node but the manager holds a replica: %v", sys.Name(), i, place)
		}
		tr := trial{System: sys.Name(), N: i, Victim: victim, Held: place[victim]}
		log.Info("trial", "system", sys.Name(), "n", i, "victim", victim, "placement", place)
		tctx, cancel := context.WithTimeout(ctx, timeout)
		// PowerOff SIGKILLs the node's agent first, then its dockerd and
		// the rest, which takes seconds: the polling starts with it.
		t0 := time.Now()
		var offTook time.Duration
		offErr := make(chan error, 1)
		go func() {
			err := tb.PowerOff(victim)
			offTook = time.Since(t0)
			offErr <- err
		}()
		err = sys.Measure(tctx, victim, t0, &tr)
		err = errors.Join(<-offErr, err)
		tr.PowerOff = offTook
		cancel()
		if err != nil {
			tr.Err = err.Error()
		}
		log.Info("trial measured", "system", sys.Name(), "n", i, "ready", tr.Ready, "down", tr.Down, "err", tr.Err)
		// Bring the node back whatever happened: the next trial needs it.
		rctx, rcancel := context.WithTimeout(ctx, 3*timeout)
		t1 := time.Now()
		rerr := tb.PowerOn(rctx, victim)
		if rerr == nil {
			rerr = sys.Rejoin(rctx, victim)
		}
		tr.Rejoin = time.Since(t1)
		if rerr == nil {
			t2 := time.Now()
			rerr = sys.Settle(rctx)
			tr.Settle = time.Since(t2)
		}
		rcancel()
		out = append(out, tr)
		if rerr != nil {
			return out, fmt.Errorf("%s: trial %d: %s back: %w", sys.Name(), i, victim, rerr)
		}
		if tr.Err != "" {
			// The next trial would start from a state this one left.
			return out, fmt.Errorf("%s: trial %d: %s", sys.Name(), i, tr.Err)
		}
	}
	return out, nil
}

// spread makes sure every node holds a replica (when there are at least as
// many replicas as nodes) with up to three rolling updates, and returns
// the placement. Neither ruche nor Swarm moves running replicas by itself
// when a node comes back, so without this every trial would empty one
// more node.
func spread(ctx context.Context, log *slog.Logger, sys system, gen *int, nodes, replicas int) (map[string]int, error) {
	for attempt := 0; ; attempt++ {
		place, err := sys.Placement(ctx)
		if err != nil {
			return nil, err
		}
		if even(place, nodes, replicas) || attempt == 3 {
			return place, nil
		}
		*gen++
		log.Info("respread", "system", sys.Name(), "placement", place, "gen", *gen)
		if err := sys.Respread(ctx, *gen); err != nil {
			return nil, fmt.Errorf("%s: respread: %w", sys.Name(), err)
		}
	}
}

func even(place map[string]int, nodes, replicas int) bool {
	if replicas < nodes {
		return true
	}
	held := 0
	for _, c := range place {
		if c > 0 {
			held++
		}
	}
	return held == nodes
}

// pickVictim is node2 on odd trials and node3 on even ones, or the other
// of the two when the preferred holds no replica; "" when neither does.
func pickVictim(tb *testbed.Testbed, place map[string]int, i int) string {
	var cands []string
	for _, n := range tb.Nodes()[1:] {
		cands = append(cands, n.Name())
	}
	if len(cands) == 0 {
		return ""
	}
	k := (i - 1) % len(cands)
	for _, c := range append(slices.Clone(cands[k:]), cands[:k]...) {
		if place[c] > 0 {
			return c
		}
	}
	return ""
}

// poll calls f every pollEvery until it returns true or an error, or ctx
// ends. f's own calls are bounded by the ctx it gets.
func poll(ctx context.Context, what string, f func(ctx context.Context) (bool, error)) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		done, err := f(cctx)
		cancel()
		if done {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}
