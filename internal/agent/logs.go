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

	// Subscribe before listing, so that a replica starting in between is
	// not missed (the relist below covers what the engine still misses).
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

	f := &follower{a: a, ctx: ctx, opts: opts, service: service, out: &lockedWriter{w: w},
		streaming: map[string]bool{}, runs: map[string]time.Time{}, pending: map[string]time.Time{}, died: map[string]time.Time{}}
	for _, c := range cs {
		if c.StartedAt.IsZero() {
			continue // never started: no output yet; its start event brings it
		}
		f.mu.Lock()
		f.stream(c, opts.Since, opts.Tail)
		f.mu.Unlock()
	}
	if opts.Follow {
		relist := time.NewTicker(a.cfg.Resync)
		defer relist.Stop()
	follow:
		for {
			select {
			case ev := <-evs:
				switch ev.Action {
				case runtime.EventStart:
					if c, err := a.rt.Inspect(ctx, ev.ContainerID); err == nil {
						f.started(c)
					} // else already gone
				case runtime.EventDie:
					f.mu.Lock()
					f.died[ev.ContainerID] = ev.Time
					f.mu.Unlock()
				}
			case <-relist.C:
				// A missed start event costs latency, not output.
				if cs, err := a.rt.List(ctx, labels); err == nil {
					for _, c := range cs {
						f.started(c)
					}
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
	runs      map[string]time.Time // container -> StartedAt of the latest run streamed or queued
	pending   map[string]time.Time // container -> where the stream of newer runs starts
	died      map[string]time.Time // container -> time of its latest die event
	err       error
}

func (f *follower) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// started streams a run of a container not streamed yet.
func (f *follower) started(c runtime.Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.StartedAt.IsZero() || f.runs[c.ID].Equal(c.StartedAt) {
		return // never started, or seen
	}
	f.stream(c, f.runStart(c), 0)
}

// runStart is where the output of the container's latest run begins in its
// log. Not at StartedAt: the engine stamps each line when it copies it and
// records StartedAt once the process runs (Docker 20.10 does so after
// starting it), so a run's first lines can be stamped before its StartedAt,
// by milliseconds, more on a loaded machine. The run begins after the
// previous one ended: after that run's die event, which the engine logs
// once it has copied the run's last output, before the container can
// start again. Without the event (it came before we subscribed), after
// the previous run's FinishedAt, which may show again a line the previous
// run wrote as it exited: a repeated line rather than a lost one. A first
// run owns the whole log. f.mu is held.
func (f *follower) runStart(c runtime.Container) time.Time {
	if d, ok := f.died[c.ID]; ok && d.Before(c.StartedAt) {
		return d
	}
	if !c.FinishedAt.IsZero() && c.FinishedAt.Before(c.StartedAt) {
		return c.FinishedAt
	}
	return time.Time{}
}

// stream copies a container's output from since (the last tail lines if
// tail > 0), or queues it if a stream of the container's previous run has
// not ended yet. f.mu is held.
func (f *follower) stream(c runtime.Container, since time.Time, tail int) {
	id := c.ID
	f.runs[id] = c.StartedAt
	if f.streaming[id] {
		// Several runs may queue behind a slow stream: start at the
		// earliest, so that none is skipped.
		if p, ok := f.pending[id]; !ok || since.Before(p) {
			f.pending[id] = since
		}
		return
	}
	f.streaming[id] = true
	prefix := f.service + "." + c.Labels[runtime.LabelSlot] + " | "
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
			f.mu.Unlock()
			since, tail = next, 0
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

// maxLogLine bounds the partial line a lineWriter keeps: a longer line is
// cut into lines of this length. A replica writing for hours without a
// newline (a progress bar redrawn with \r, binary output) would otherwise
// grow the agent's memory for as long as its logs are followed.
const maxLogLine = 64 << 10

// lineWriter prefixes each complete line; a partial line waits for its end
// (or for flush, or until it reaches maxLogLine) so lines of different
// replicas never mix.
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
		if i < 0 && len(lw.buf) < maxLogLine {
			break
		}
		batch = append(batch, lw.prefix...)
		if i < 0 || i > maxLogLine {
			batch = append(batch, lw.buf[:maxLogLine]...)
			batch = append(batch, '\n')
			lw.buf = lw.buf[maxLogLine:]
			continue
		}
		batch = append(batch, lw.buf[:i+1]...)
		lw.buf = lw.buf[i+1:]
	}
	if cap(lw.buf) > 2*maxLogLine {
		// Keep the partial line in a buffer of its own, not in the far
		// larger one it was cut from.
		lw.buf = append([]byte(nil), lw.buf...)
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
