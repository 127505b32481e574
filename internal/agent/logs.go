package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/internal/runtime"
)

// LogOptions selects the output of a service's replicas.
type LogOptions struct {
	Follow bool
	Since  time.Time
	Tail   int // lines per replica; 0 means all
}

// Logs writes the output of every replica of the service on this node to
// w, each line prefixed with its replica ("web.2 | "), stdout and stderr
// demultiplexed, lines interleaved as they arrive. With Follow it streams
// until ctx ends, picking up replicas (and restarts) that start later.
func (a *Agent) Logs(ctx context.Context, project, service string, opts LogOptions, w io.Writer) error {
	labels := a.nodeLabels()
	labels[runtime.LabelProject] = project
	labels[runtime.LabelService] = service
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &lockedWriter{w: w}

	// Subscribe before listing, so that a replica starting in between is
	// not missed.
	var evs <-chan runtime.Event
	var errc <-chan error
	if opts.Follow {
		evs, errc = a.rt.Events(ctx, labels)
	}
	cs, err := a.rt.List(ctx, labels)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	sort.Slice(cs, func(i, j int) bool { return slotOf(cs[i]) < slotOf(cs[j]) })

	f := &follower{a: a, ctx: ctx, opts: opts, service: service, out: out,
		streaming: map[string]bool{}, runs: map[string]time.Time{}, pending: map[string]time.Time{}}
	for _, c := range cs {
		if c.StartedAt.IsZero() {
			continue // never started: no output yet; its start event brings it
		}
		f.stream(c.ID, c.Labels[runtime.LabelSlot], c.StartedAt, opts.Since, opts.Tail)
	}
	if opts.Follow {
	follow:
		for {
			select {
			case ev := <-evs:
				if ev.Action == runtime.EventStart {
					f.started(ev)
				}
			case err := <-errc:
				if ctx.Err() == nil {
					f.fail(fmt.Errorf("logs: engine events: %w", err))
				}
				break follow
			case <-ctx.Done():
				break follow
			}
		}
		cancel()
	}
	f.wg.Wait()
	return f.err
}

// follower streams the logs of a service's containers, one goroutine per
// container, and starts a new stream for each new run of a container.
type follower struct {
	a       *Agent
	ctx     context.Context
	opts    LogOptions
	service string
	out     *lockedWriter
	wg      sync.WaitGroup

	mu        sync.Mutex
	streaming map[string]bool      // container -> a stream runs
	runs      map[string]time.Time // container -> StartedAt of the run streamed
	pending   map[string]time.Time // container -> a newer run to stream next
	err       error
}

func (f *follower) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// started handles a start event: a new replica, or a new run of one.
func (f *follower) started(ev runtime.Event) {
	c, err := f.a.rt.Inspect(f.ctx, ev.ContainerID)
	if err != nil {
		return // already gone
	}
	f.mu.Lock()
	seen := f.runs[c.ID].Equal(c.StartedAt)
	f.mu.Unlock()
	if !seen {
		// Only what the new run writes: since its start (less a
		// millisecond for clock rounding).
		f.stream(c.ID, c.Labels[runtime.LabelSlot], c.StartedAt, c.StartedAt.Add(-time.Millisecond), 0)
	}
}

// stream copies a container's output, or queues the run if a stream of
// the container's previous run has not ended yet.
func (f *follower) stream(id, slot string, run, since time.Time, tail int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.streaming[id] {
		f.pending[id] = run
		return
	}
	f.streaming[id] = true
	f.runs[id] = run
	prefix := f.service + "." + slot + " | "
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			stdout, stderr := f.out.prefixed(prefix), f.out.prefixed(prefix)
			err := f.a.rt.Logs(f.ctx, id, runtime.LogOptions{Follow: f.opts.Follow, Since: since, Tail: tail}, stdout, stderr)
			stdout.flush()
			stderr.flush()
			if err != nil && !errors.Is(err, runtime.ErrNotFound) && f.ctx.Err() == nil {
				f.fail(err)
			}
			f.mu.Lock()
			next, again := f.pending[id]
			delete(f.pending, id)
			if !again || f.ctx.Err() != nil {
				delete(f.streaming, id)
				f.mu.Unlock()
				return
			}
			f.runs[id] = next
			f.mu.Unlock()
			since, tail = next.Add(-time.Millisecond), 0
		}
	}()
}

func slotOf(c runtime.Container) int {
	n, _ := strconv.Atoi(c.Labels[runtime.LabelSlot])
	return n
}

// lockedWriter serialises whole lines from several streams onto one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) prefixed(prefix string) *lineWriter {
	return &lineWriter{out: l, prefix: []byte(prefix)}
}

// lineWriter prefixes each complete line; a partial line waits for its end
// (or for flush) so lines of different replicas never mix.
type lineWriter struct {
	out    *lockedWriter
	prefix []byte
	buf    []byte
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	var batch []byte
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			break
		}
		batch = append(batch, lw.prefix...)
		batch = append(batch, lw.buf[:i+1]...)
		lw.buf = lw.buf[i+1:]
	}
	if len(batch) > 0 {
		lw.out.mu.Lock()
		_, err := lw.out.w.Write(batch)
		lw.out.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (lw *lineWriter) flush() {
	if len(lw.buf) > 0 {
		_, _ = lw.Write([]byte("\n"))
	}
}
