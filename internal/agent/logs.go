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

	var wg sync.WaitGroup
	var mu sync.Mutex
	streaming := map[string]bool{}
	var firstErr error
	stream := func(c runtime.Container, since time.Time, tail int) {
		mu.Lock()
		if streaming[c.ID] {
			mu.Unlock()
			return
		}
		streaming[c.ID] = true
		mu.Unlock()
		prefix := service + "." + c.Labels[runtime.LabelSlot] + " | "
		wg.Add(1)
		go func() {
			defer wg.Done()
			stdout, stderr := out.prefixed(prefix), out.prefixed(prefix)
			err := a.rt.Logs(ctx, c.ID, runtime.LogOptions{Follow: opts.Follow, Since: since, Tail: tail}, stdout, stderr)
			stdout.flush()
			stderr.flush()
			mu.Lock()
			delete(streaming, c.ID)
			if err != nil && !errors.Is(err, runtime.ErrNotFound) && firstErr == nil && ctx.Err() == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	for _, c := range cs {
		stream(c, opts.Since, opts.Tail)
	}
	if opts.Follow {
	follow:
		for {
			select {
			case ev := <-evs:
				if ev.Action != runtime.EventStart {
					continue
				}
				// A new replica, or a restart of one whose stream ended
				// when it stopped: only what it writes from now on.
				c := runtime.Container{ID: ev.ContainerID, Labels: ev.Labels}
				stream(c, ev.Time.Add(-time.Millisecond), 0)
			case err := <-errc:
				if ctx.Err() == nil {
					mu.Lock()
					firstErr = fmt.Errorf("logs: engine events: %w", err)
					mu.Unlock()
				}
				break follow
			case <-ctx.Done():
				break follow
			}
		}
		cancel()
	}
	wg.Wait()
	return firstErr
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
