package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/ruche-platform/ruche/internal/netinit"
)

// engine is the part of the Docker client converge needs.
type engine interface {
	Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
}

type convergeOptions struct {
	Prefix  string        // container name prefix, without the leading "/"
	Count   int           // how many must run at once
	Timeout time.Duration // for the whole measurement
	Args    []string      // the command that makes them run
	// NetworkReady: a container counts as running once its process's
	// network namespace has a default route (read in /proc/<pid>/net/route),
	// for platforms that wire a container after Docker started it.
	NetworkReady bool
	// Wired returns once the namespace of process pid has a default
	// route; nil is routeWired.
	Wired func(ctx context.Context, pid int) error
}

type convergeResult struct {
	Running time.Duration // launch until Count containers of Prefix were running
	Command time.Duration // launch until the command exited
	First   time.Duration // launch until the first of them started
}

func convergeCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("converge", flag.ContinueOnError)
	var o convergeOptions
	fs.StringVar(&o.Prefix, "prefix", "", "container name prefix")
	fs.IntVar(&o.Count, "count", 0, "containers that must be running")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up after")
	fs.BoolVar(&o.NetworkReady, "network-ready", false, "count a container once its namespace has a default route, not at its start")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Args = fs.Args()
	if o.Prefix == "" || o.Count <= 0 || len(o.Args) == 0 {
		return fmt.Errorf("%w: converge -prefix P -count N -- command args...", errUsage)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	res, err := converge(ctx, cli, o)
	if err != nil {
		return err
	}
	fmt.Printf("%.3f\t%.3f\t%.3f\n", res.Running.Seconds(), res.Command.Seconds(), res.First.Seconds())
	return nil
}

// converge launches o.Args and measures, from the engine's own event
// stream, when o.Count containers named o.Prefix* were running at the same
// time. The stream is opened with "since" just before the launch, so no
// event is lost to the race between subscribing and launching. The command's
// output goes to stderr, each line stamped with the time since the launch.
func converge(ctx context.Context, eng engine, o convergeOptions) (convergeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if n, err := countPrefix(ctx, eng, o.Prefix, true); err != nil {
		return convergeResult{}, err
	} else if n > 0 {
		return convergeResult{}, fmt.Errorf("%w: %d container(s) named %s* exist already", errPrecondition, n, o.Prefix)
	}

	launch := time.Now()
	since := launch.Add(-time.Second)
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionStart)),
		filters.Arg("event", string(events.ActionDie)),
		filters.Arg("event", string(events.ActionDestroy)),
	)
	msgs, errs := eng.Events(ctx, events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: f,
	})

	cmd := exec.CommandContext(ctx, o.Args[0], o.Args[1:]...)
	out := newStampWriter(os.Stderr, launch)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return convergeResult{}, fmt.Errorf("%w: start %s: %w", errCommand, o.Args[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	tr := newTracker(o.Prefix, o.Count, launch)
	var res convergeResult
	cmdDone := false
	ready := make(chan events.Message, o.Count)
	for !cmdDone || tr.convergedAt.IsZero() {
		select {
		case m := <-msgs:
			if o.NetworkReady && m.Action == events.ActionStart && tr.wants(m) {
				go awaitRoute(ctx, eng, o.Wired, m, ready)
				continue
			}
			tr.observe(m)
		case m := <-ready:
			tr.observe(m)
		case err := <-errs:
			if !cmdDone {
				<-done
			}
			if ctx.Err() != nil {
				return res, notConverged(tr, o, ctx.Err())
			}
			return res, fmt.Errorf("docker events: %w", err)
		case err := <-done:
			cmdDone = true
			res.Command = time.Since(launch)
			if err != nil {
				return res, fmt.Errorf("%w: %s: %w", errCommand, strings.Join(o.Args, " "), err)
			}
		case <-ctx.Done():
			if !cmdDone {
				<-done
			}
			return res, notConverged(tr, o, ctx.Err())
		}
	}
	res.Running = tr.convergedAt.Sub(launch)
	res.First = tr.firstAt.Sub(launch)

	// The events said so; the engine confirms they are still running.
	n, err := countPrefix(ctx, eng, o.Prefix, false)
	if err != nil {
		return res, err
	}
	if n < o.Count {
		return res, fmt.Errorf("%w: %d of %d containers named %s* are running at the end", errNotConverged, n, o.Count, o.Prefix)
	}
	return res, nil
}

// awaitRoute sends m, stamped with the moment it happened, once the
// started container's namespace has a default route; nothing if the
// container has no process or ctx ends first.
func awaitRoute(ctx context.Context, eng engine, wired func(context.Context, int) error, m events.Message, ready chan<- events.Message) {
	in, err := eng.ContainerInspect(ctx, m.Actor.ID)
	name := m.Actor.Attributes["name"]
	if err != nil || in.State == nil || in.State.Pid == 0 {
		fmt.Fprintf(os.Stderr, "benchtool: %s not counted: no process to watch (%v)\n", name, err)
		return
	}
	if wired == nil {
		wired = routeWired
	}
	if err := wired(ctx, in.State.Pid); err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "benchtool: %s not counted: %v\n", name, err)
		}
		return
	}
	now := time.Now()
	// How long after Docker's start event the container was wired: the
	// platform's own part of a start, in the run's log (not "benchtool:",
	// the prefix run.sh takes a failed trial's reason from).
	fmt.Fprintf(os.Stderr, "wired: %s %.0f ms after its start event\n", name, float64(now.UnixNano()-m.TimeNano)/1e6)
	m.TimeNano = now.UnixNano()
	ready <- m
}

// routeWired waits for a default route in the namespace of process pid,
// read in /proc/<pid>/net/route whenever the kernel reports a change of
// its routes: the bench must not take the CPU it measures (polling 20
// namespaces every 2 ms took a fifth of a core). A container that ends
// before is left to its die event; the wait then ends with ctx.
func routeWired(ctx context.Context, pid int) error {
	w, err := netinit.WatchRoutes(pid)
	if err != nil {
		return err
	}
	defer w.Close()
	routes := fmt.Sprintf("/proc/%d/net/route", pid)
	return w.Wait(ctx, func() bool {
		b, err := os.ReadFile(routes)
		return err == nil && netinit.HasDefaultRoute(string(b))
	})
}

func notConverged(tr *tracker, o convergeOptions, cause error) error {
	when := "when interrupted"
	if errors.Is(cause, context.DeadlineExceeded) {
		when = "after " + o.Timeout.String()
	}
	return fmt.Errorf("%w: %d of %d containers named %s* running %s: %w",
		errNotConverged, len(tr.running), o.Count, o.Prefix, when, cause)
}

// countPrefix counts the containers named prefix*: all of them, or only the
// running ones. Docker's name filter is a regular expression matched
// anywhere in the name, so the prefix is checked here.
func countPrefix(ctx context.Context, eng engine, prefix string, all bool) (int, error) {
	list, err := eng.ContainerList(ctx, container.ListOptions{All: all, Filters: filters.NewArgs(filters.Arg("name", prefix))})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	n := 0
	for _, c := range list {
		if !all && c.State != container.StateRunning {
			continue
		}
		for _, name := range c.Names {
			if strings.HasPrefix(strings.TrimPrefix(name, "/"), prefix) {
				n++
				break
			}
		}
	}
	return n, nil
}
