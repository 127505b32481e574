// Package agent makes a node's container engine match the replicas the
// managers assign to it, and reports their status back. See README.md.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/privnet"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/store"
)

// Runtime is what the agent needs of a container engine: the runtime seam,
// implemented by runtime/docker and checked by runtime/runtimetest.
type Runtime = runtime.Runtime

// Config configures an agent.
type Config struct {
	NodeID   string
	Hostname string
	// ClusterID labels the containers this agent makes; it adopts and
	// removes only containers of its cluster and node. Empty: no cluster
	// label (tests).
	ClusterID string
	// DataDir holds the agent's files: <DataDir>/run/<task>/secrets and
	// configs. Default /var/lib/ruche/agent.
	DataDir string
	Labels  map[string]string
	// AdvertiseAddr is the node's IP address other nodes reach it at. When
	// set, each replica of a service with routes gets the routes' target
	// ports published on it (ephemeral host ports), for the ingress of
	// other nodes (see routeports.go). Empty: nothing is published for
	// routes (a single node).
	AdvertiseAddr string
	// NodeAPIAddr is where the node API listens (registered in the node
	// record for the managers); empty: not served, or <AdvertiseAddr>:7444.
	NodeAPIAddr string
	// MetricsAddr is where the node serves Prometheus metrics (registered
	// in the node record, for the managers' list of scrape targets).
	MetricsAddr string
	// Resync is the period of the full resync that backs up the engine's
	// event stream. Default 30s.
	Resync time.Duration
	// HeartbeatInterval is the interval of heartbeats until the managers
	// answer with theirs. Default 1s.
	HeartbeatInterval time.Duration
	// ProcDir is where the node's load is read (heartbeat.go). Default /proc.
	ProcDir string
	// NetworkIdle is how long a project network of this cluster must have
	// existed, with no container of its project on the engine and nothing
	// of its project assigned here, before the agent removes it (sweep.go).
	// Default 10 minutes; negative: never.
	NetworkIdle time.Duration
}

// Deps are the agent's collaborators.
type Deps struct {
	Runtime Runtime
	Conn    Conn
	Log     *slog.Logger
	Metrics prometheus.Registerer // may be nil
	Events  EventRecorder         // may be nil
	Drainer Drainer               // may be nil: replicas are stopped without draining
	// Networks, when set, gives replicas ruche's own networks instead of
	// the engine's (privnet.go); InitBinary is then the static ruche
	// binary bind-mounted into each container as its init.
	Networks   *privnet.Manager
	InitBinary string
}

// EventRecorder records the agent's replica events: *events.Recorder in
// the manager's process, RemoteConn on a joined node. Recording is best
// effort and never blocks long.
type EventRecorder interface {
	Record(ctx context.Context, ev client.Event)
}

var _ EventRecorder = (*events.Recorder)(nil)

// Drainer takes a replica out of the ingress before it is stopped: Drain
// returns once no proxy sends it new requests and none is in flight (or
// the drainer's own timeout passed).
type Drainer interface {
	Drain(ctx context.Context, taskID string) error
}

// Agent runs the replicas assigned to one node.
type Agent struct {
	cfg     Config
	rt      Runtime
	conn    Conn
	drainer Drainer
	pn      *privnet.Manager // nil: the engine's networks
	initBin string
	log     *slog.Logger
	reg     prometheus.Registerer
	events  EventRecorder
	m       *metrics

	// Owned by Run's loop.
	tasks    map[string]store.TaskRecord
	sups     map[string]*supervisor
	cleanups []store.CleanupRecord
	synced   bool // a first task set arrived: orphans can be told apart

	wg      sync.WaitGroup
	supDone chan string
	cleanCh chan cleanWork // for the cleaner, latest only
}

// New returns an agent. It does no I/O and starts nothing.
func New(cfg Config, deps Deps) *Agent {
	if cfg.DataDir == "" {
		cfg.DataDir = "/var/lib/ruche/agent"
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.NetworkIdle == 0 {
		cfg.NetworkIdle = 10 * time.Minute
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{
		cfg:     cfg,
		rt:      deps.Runtime,
		conn:    deps.Conn,
		drainer: deps.Drainer,
		pn:      deps.Networks,
		initBin: deps.InitBinary,
		log:     log.With("component", "agent", "node", cfg.NodeID),
		reg:     deps.Metrics,
		events:  deps.Events,
		m:       newMetrics(),
		tasks:   map[string]store.TaskRecord{},
		sups:    map[string]*supervisor{},
		supDone: make(chan string),
		cleanCh: make(chan cleanWork, 1),
	}
}

// nodeLabels select this node's containers in the engine.
func (a *Agent) nodeLabels() map[string]string {
	labels := map[string]string{runtime.LabelManaged: "true", runtime.LabelNode: a.cfg.NodeID}
	if a.cfg.ClusterID != "" {
		labels[runtime.LabelCluster] = a.cfg.ClusterID
	}
	return labels
}

// Run registers the node, then converges until ctx ends. It returns when
// every goroutine it started has ended; containers are left running.
func (a *Agent) Run(ctx context.Context) error {
	if a.reg != nil {
		if err := a.m.register(a.reg); err != nil {
			return fmt.Errorf("agent metrics: %w", err)
		}
	}
	if err := a.register(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if a.pn != nil {
		if err := a.adoptAddresses(ctx); err != nil {
			return err
		}
	}
	taskc, err := a.conn.WatchTasks(ctx, a.cfg.NodeID)
	if err != nil {
		return fmt.Errorf("watch tasks: %w", err)
	}
	cleanc, err := a.conn.WatchCleanups(ctx, a.cfg.NodeID)
	if err != nil {
		return fmt.Errorf("watch cleanups: %w", err)
	}
	evc := make(chan runtime.Event)
	resyncc := make(chan struct{}, 1)
	a.wg.Add(3)
	go func() { defer a.wg.Done(); a.watchEngine(ctx, evc, resyncc) }()
	go func() { defer a.wg.Done(); a.cleaner(ctx) }()
	go func() { defer a.wg.Done(); a.heartbeat(ctx) }()
	tick := time.NewTicker(a.cfg.Resync)
	defer tick.Stop()

	for ctx.Err() == nil {
		select {
		case set, ok := <-taskc:
			if !ok {
				continue // ctx ended
			}
			a.applyTasks(ctx, set)
			a.synced = true
			a.scanOrphans(ctx)
			a.checkCleanups()
		case set, ok := <-cleanc:
			if ok {
				a.cleanups = set
				a.checkCleanups()
			}
		case ev := <-evc:
			a.route(ctx, ev)
		case <-resyncc:
			a.resync(ctx)
		case <-tick.C:
			a.resync(ctx)
			a.checkCleanups() // and the sweep of unused networks
		case id := <-a.supDone:
			a.finished(ctx, id)
		case <-ctx.Done():
		}
	}
	// Supervisors end with ctx; drain their done notices meanwhile.
	go func() {
		for range a.supDone {
		}
	}()
	a.wg.Wait()
	close(a.supDone)
	return nil
}

// register announces the node, retrying until it works or ctx ends.
func (a *Agent) register(ctx context.Context) error {
	bo := backoff{min: 200 * time.Millisecond, max: 10 * time.Second}
	if a.cfg.Hostname == "" {
		a.cfg.Hostname, _ = os.Hostname()
	}
	for {
		n := client.Node{
			ID: a.cfg.NodeID, Hostname: a.cfg.Hostname, Labels: a.cfg.Labels,
			Role: "agent", Status: "ready", Availability: "active", UpdatedAt: time.Now(),
			Addr: a.cfg.AdvertiseAddr, NodeAPIAddr: a.cfg.NodeAPIAddr, MetricsAddr: a.cfg.MetricsAddr,
		}
		info, err := a.rt.Info(ctx)
		if err == nil {
			n.Capacity = client.ResourceAmounts{CPUs: float64(info.NCPU), Memory: info.MemTotal}
			n.Version = info.Version
			err = a.conn.RegisterNode(ctx, n)
		}
		if err == nil {
			return nil
		}
		a.log.Warn("node registration failed; retrying", "err", err)
		if !sleep(ctx, bo.next()) {
			return fmt.Errorf("register node: %w", errors.Join(err, ctx.Err()))
		}
	}
}

// applyTasks diffs the assigned set against the supervisors.
func (a *Agent) applyTasks(ctx context.Context, set []store.TaskRecord) {
	a.tasks = make(map[string]store.TaskRecord, len(set))
	for _, t := range set {
		a.tasks[t.ID] = t
	}
	for id, t := range a.tasks {
		if s, ok := a.sups[id]; ok {
			s.update(t, false)
		} else {
			a.spawn(ctx, t, false)
		}
	}
	for id, s := range a.sups {
		if _, ok := a.tasks[id]; !ok {
			s.update(store.TaskRecord{}, true)
		}
	}
}

func (a *Agent) spawn(ctx context.Context, t store.TaskRecord, gone bool) {
	s := newSupervisor(a, t, gone)
	a.sups[t.ID] = s
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		s.run(ctx)
		select {
		case a.supDone <- t.ID:
		case <-ctx.Done():
		}
	}()
}

// finished forgets a supervisor whose task is gone and torn down, and
// starts a new one if the task came back meanwhile.
func (a *Agent) finished(ctx context.Context, id string) {
	delete(a.sups, id)
	a.m.setState(id, "")
	if t, ok := a.tasks[id]; ok {
		a.spawn(ctx, t, false)
	}
	a.checkCleanups()
}

// scanOrphans tears down containers of this node whose task is not
// assigned (and has no supervisor): left by a task deleted while the agent
// was down, or by a crash. Then it removes the files of tasks with no
// supervisor (see removeStaleFiles).
func (a *Agent) scanOrphans(ctx context.Context) {
	if !a.synced {
		return
	}
	cs, err := a.rt.ListSummaries(ctx, a.nodeLabels())
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("list containers", "err", err)
		}
		return
	}
	for _, c := range cs {
		id := c.Labels[runtime.LabelTask]
		if id == "" {
			continue
		}
		if _, ok := a.sups[id]; ok {
			continue
		}
		if !isTaskID(id) {
			// No agent made it: its teardown would remove the files of
			// <DataDir>/run/<label>, a path the label chooses.
			a.log.Warn("leaving alone a container whose task label is no task ID", "container", c.Name, "label", id)
			continue
		}
		a.log.Info("removing orphan container", "task", id, "container", c.Name)
		a.spawn(ctx, store.TaskRecord{Replica: client.Replica{
			ID: id, Node: a.cfg.NodeID, Project: c.Labels[runtime.LabelProject], Service: c.Labels[runtime.LabelService],
		}}, true)
	}
	a.removeStaleFiles()
}

// route hands an engine event to the supervisor of its task.
func (a *Agent) route(ctx context.Context, ev runtime.Event) {
	id := ev.Labels[runtime.LabelTask]
	if s, ok := a.sups[id]; ok {
		s.poke()
	} else if ev.Action != runtime.EventDestroy {
		a.scanOrphans(ctx)
	}
	if ev.Action == runtime.EventDestroy {
		a.checkCleanups()
	}
}

func (a *Agent) resync(ctx context.Context) {
	for _, s := range a.sups {
		s.poke()
	}
	a.scanOrphans(ctx)
	a.checkCleanups()
}

// watchEngine follows the engine's events, reconnecting with backoff;
// after a reconnect it asks for a resync, since events were missed.
func (a *Agent) watchEngine(ctx context.Context, out chan<- runtime.Event, resync chan<- struct{}) {
	bo := backoff{min: 100 * time.Millisecond, max: 10 * time.Second}
	first := true
	for {
		ectx, cancel := context.WithCancel(ctx)
		evs, errc := a.rt.Events(ectx, a.nodeLabels())
		if !first {
			select {
			case resync <- struct{}{}:
			default:
			}
		}
		first = false
	stream:
		for {
			select {
			case ev := <-evs:
				bo.reset()
				select {
				case out <- ev:
				case <-ctx.Done():
				}
			case err := <-errc:
				if ctx.Err() == nil {
					a.log.Warn("engine event stream broke; reconnecting", "err", err)
				}
				break stream
			case <-ctx.Done():
				break stream
			}
		}
		cancel()
		if !sleep(ctx, bo.next()) {
			return
		}
	}
}

// record writes a replica event.
func (a *Agent) record(ctx context.Context, t store.TaskRecord, action, msg string) {
	if a.events == nil {
		return
	}
	a.events.Record(ctx, client.Event{
		Type: "replica", Action: action, Project: t.Project, Service: t.Service,
		Replica: t.Replica.Name(), Node: a.cfg.NodeID, Message: msg,
	})
}
