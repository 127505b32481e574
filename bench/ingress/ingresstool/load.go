package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"time"
)

// loadConfig is one constant-rate run.
type loadConfig struct {
	rate     float64       // requests per second
	warmup   time.Duration // sent at the same rate first, not recorded
	duration time.Duration // the recorded phase
	conns    int           // workers, each with its own keep-alive connection
	timeout  time.Duration // per request
	host     string        // Host header
	mix      []request     // request i is mix[i % len(mix)]
	dial     func(ctx context.Context) (net.Conn, error)
	// maxErrorEvents caps the failed requests kept with their time.
	maxErrorEvents int
}

// lateAfter: a request handed to a worker later than this after its
// scheduled time counts as late, a sign that the generator (or the
// machine) could not keep the rate. Its latency still counts from the
// scheduled time.
const lateAfter = time.Millisecond

type job struct {
	seq int
	at  time.Time // latency counts from here: the due time, or when the dispatcher could hand the request out
	rec bool      // in the recorded phase (by due time)
}

type errEvent struct {
	at   time.Time
	kind string
}

// workerStats is what one worker saw; merged at the end.
type workerStats struct {
	lat          []time.Duration
	ok, failed   int
	warmupFailed int
	errs         map[string]int
	events       []errEvent
	last         time.Time
}

// loadResult is the recorded phase of a run.
type loadResult struct {
	start        time.Time // beginning of the recorded phase
	duration     time.Duration
	sent         int             // requests scheduled in the recorded phase
	ok, failed   int             // their outcomes
	warmupFailed int             // failures during the warm-up (not in failed)
	lat          []time.Duration // successful requests, sorted
	errs         map[string]int
	events       []errEvent // failed requests by time, at most maxErrorEvents
	dials        int
	retries      int
	late         int           // requests handed out more than lateAfter behind schedule
	maxLate      time.Duration // the worst of those
	elapsed      time.Duration // start until the last recorded answer
}

// runLoad is an open-loop generator: request i is due at start + i/rate
// whatever happened to the requests before it, and its latency is measured
// from that due time (or from when the generator's own timer let it hand
// the request out, if later) to the end of its answer. A stalled server
// therefore shows in the latency of every request that had to wait for a
// worker, not only in the one that stalled (no coordinated omission).
// Requests wait in a queue for a free worker; with enough workers the
// queue stays empty.
func runLoad(ctx context.Context, cfg loadConfig) (*loadResult, error) {
	if cfg.rate <= 0 || cfg.conns <= 0 || len(cfg.mix) == 0 || cfg.duration <= 0 {
		return nil, fmt.Errorf("%w: load needs a rate, a duration, connections and requests", errUsage)
	}
	queue := int(cfg.rate * 2)
	queue = max(queue, 1024)
	jobs := make(chan job, queue)
	stats := make([]*workerStats, cfg.conns)
	clients := make([]*httpConn, cfg.conns)
	var wg sync.WaitGroup
	for w := range cfg.conns {
		st := &workerStats{errs: map[string]int{}}
		cl := &httpConn{dial: cfg.dial, host: cfg.host, timeout: cfg.timeout}
		stats[w], clients[w] = st, cl
		wg.Go(func() {
			defer cl.close()
			for j := range jobs {
				err := cl.do(ctx, cfg.mix[j.seq%len(cfg.mix)], j.seq)
				done := time.Now()
				switch {
				case !j.rec:
					if err != nil {
						st.warmupFailed++
					}
				case err == nil:
					st.ok++
					st.lat = append(st.lat, done.Sub(j.at))
				default:
					st.failed++
					k := errKind(err)
					st.errs[k]++
					if len(st.events) < cfg.maxErrorEvents {
						st.events = append(st.events, errEvent{at: done, kind: k})
					}
				}
				if j.rec {
					st.last = done
				}
			}
		})
	}

	begin := time.Now()
	res := &loadResult{start: begin.Add(cfg.warmup), duration: cfg.duration, errs: map[string]int{}}
	total := int(cfg.rate * (cfg.warmup + cfg.duration).Seconds())
	perReq := float64(time.Second) / cfg.rate
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var err error
dispatch:
	for i := range total {
		at := begin.Add(time.Duration(float64(i) * perReq))
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				err = ctx.Err()
				break dispatch
			case <-timer.C:
			}
		}
		// Latency counts from the due time, or from now if the timer woke
		// the dispatcher late: on a VM a short timer overshoots by a
		// millisecond or more even when idle, and that is the generator's
		// own delay. Waiting for a free worker (a slow server) still counts:
		// the time is taken before the hand-off, which blocks when the
		// queue is full.
		from := at
		if now := time.Now(); now.After(at) {
			from = now
		}
		j := job{seq: i, at: from, rec: !at.Before(res.start)}
		select {
		case jobs <- j:
		case <-ctx.Done():
			err = ctx.Err()
			break dispatch
		}
		if j.rec {
			res.sent++
			if late := time.Since(at); late > lateAfter {
				res.late++
				res.maxLate = max(res.maxLate, late)
			}
		}
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("load interrupted: %w", err)
	}

	var last time.Time
	for w, st := range stats {
		res.ok += st.ok
		res.failed += st.failed
		res.warmupFailed += st.warmupFailed
		res.lat = append(res.lat, st.lat...)
		for k, n := range st.errs {
			res.errs[k] += n
		}
		res.events = append(res.events, st.events...)
		res.dials += clients[w].dials
		res.retries += clients[w].retries
		if st.last.After(last) {
			last = st.last
		}
	}
	slices.Sort(res.lat)
	slices.SortFunc(res.events, func(a, b errEvent) int { return a.at.Compare(b.at) })
	if len(res.events) > cfg.maxErrorEvents {
		res.events = res.events[:cfg.maxErrorEvents]
	}
	if !last.IsZero() {
		res.elapsed = last.Sub(res.start)
	}
	return res, nil
}

// percentile is the q-quantile (0 < q ≤ 1) of sorted durations, the
// nearest-rank way: the smallest value with at least q of the samples at
// or below it.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q*float64(len(sorted))-1e-9)) - 1
	rank = min(max(rank, 0), len(sorted)-1)
	return sorted[rank]
}
