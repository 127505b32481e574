package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/privnet"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/store"
)

// A supervisor owns one task: it makes its container match the task,
// applies the restart policy, and reports status. It is level-triggered:
// every wake-up (task change, engine event, timer, resync) inspects the
// container and decides from what it sees.
type supervisor struct {
	a   *Agent
	id  string
	log *slog.Logger

	mu   sync.Mutex
	rec  store.TaskRecord
	gone bool // no longer assigned: remove without reporting
	wake chan struct{}

	// Owned by run.
	cid       string // container, "" when none
	looked    bool   // searched the engine for an existing container
	status    client.ReplicaStatus
	reported  *client.ReplicaStatus
	failures  int       // consecutive failures, for the backoff
	restarts  int       // restarts applied
	exitSeen  time.Time // FinishedAt of the last exit handled
	runSeen   time.Time // StartedAt of the last run seen
	due       time.Time // pending restart
	retryAt   time.Time // pending retry of a failed engine or store call
	retryBO   backoff
	reportAt  time.Time // pending retry of a failed status report
	reportBO  backoff
	terminal  bool // failed or complete: no more restarts
	removed   bool // desired shutdown done
	wasReady  bool
	lastPull  time.Time
	everStart bool
	wiredPid  int // ruche's networks: the process whose wiring is done
}

func newSupervisor(a *Agent, t store.TaskRecord, gone bool) *supervisor {
	return &supervisor{
		a: a, id: t.ID, rec: t, gone: gone,
		log:      a.log.With("task", t.ID),
		wake:     make(chan struct{}, 1),
		retryBO:  backoff{min: time.Second, max: 30 * time.Second},
		reportBO: backoff{min: time.Second, max: 30 * time.Second},
	}
}

// update hands the supervisor a new version of its task (or its removal).
func (s *supervisor) update(t store.TaskRecord, gone bool) {
	s.mu.Lock()
	if !gone {
		s.rec = t
	}
	s.gone = gone
	s.mu.Unlock()
	s.poke()
}

func (s *supervisor) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *supervisor) snapshot() (store.TaskRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec, s.gone
}

func (s *supervisor) project() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Project
}

// run converges until the task is gone and torn down, or ctx ends.
func (s *supervisor) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil {
		if s.step(ctx) {
			return
		}
		var tc <-chan time.Time
		if next := earliest(s.due, s.retryAt, s.reportAt); !next.IsZero() {
			timer.Reset(time.Until(next))
			tc = timer.C
		}
		select {
		case <-s.wake:
		case <-tc:
		case <-ctx.Done():
		}
		if !timer.Stop() && tc != nil {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func earliest(ts ...time.Time) time.Time {
	var e time.Time
	for _, t := range ts {
		if !t.IsZero() && (e.IsZero() || t.Before(e)) {
			e = t
		}
	}
	return e
}

// step does one convergence pass; it reports whether the supervisor is done.
func (s *supervisor) step(ctx context.Context) bool {
	rec, gone := s.snapshot()
	if !s.retryAt.IsZero() && time.Now().Before(s.retryAt) {
		return false // an engine or store call failed: wait for the retry
	}
	s.retryAt = time.Time{}
	if gone {
		if err := s.teardown(ctx, rec, false); err != nil {
			s.retry(ctx, "remove", err)
			return false
		}
		return true
	}
	switch {
	case rec.DesiredState == client.DesiredShutdown:
		if !s.removed {
			if err := s.teardown(ctx, rec, true); err != nil {
				s.retry(ctx, "shut down", err)
				return false
			}
			s.removed = true
			s.set(client.ReplicaStatus{State: client.StateShutdown, ExitCode: s.status.ExitCode, Message: s.status.Message})
			s.a.record(ctx, rec, "removed", "")
		}
	case !s.terminal:
		s.converge(ctx, rec)
	}
	if s.retryAt.IsZero() {
		s.retryBO.reset() // the engine and store calls of this step went through
	}
	s.report(ctx, rec)
	return false
}

// retry schedules another step after a failed call.
func (s *supervisor) retry(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	d := s.retryBO.next()
	s.log.Warn(what+" failed; retrying", "err", err, "in", d)
	s.retryAt = time.Now().Add(d)
}

// set replaces the status to report, keeping the counters.
func (s *supervisor) set(st client.ReplicaStatus) {
	st.Restarts = s.restarts
	s.status = st
	s.a.m.setState(s.id, st.State)
}

// report writes the status if it changed since the last write. A failed
// report is retried with a backoff of its own, which never holds the
// convergence back: a node that could not reach the managers for a while
// (its reports failing, the backoff grown to 30 s) must act at once on
// the task set it gets when it reaches them again (a replica the managers
// moved away is stopped, not left running until the next report).
func (s *supervisor) report(ctx context.Context, rec store.TaskRecord) {
	st := s.status
	if st.State == "" || (s.reported != nil && reflect.DeepEqual(*s.reported, st)) {
		return
	}
	if !s.reportAt.IsZero() && time.Now().Before(s.reportAt) {
		return // the run loop wakes at reportAt
	}
	s.reportAt = time.Time{}
	w := st
	w.UpdatedAt = time.Now()
	err := s.a.conn.ReportStatus(ctx, s.id, s.a.cfg.NodeID, w)
	switch {
	case errors.Is(err, ErrTaskGone):
		// The controller deleted the task; its removal is on its way.
	case err != nil:
		if ctx.Err() == nil {
			d := s.reportBO.next()
			s.log.Warn("report status failed; retrying", "err", err, "in", d)
			s.reportAt = time.Now().Add(d)
		}
		return
	}
	s.reported = &st
	s.reportBO.reset()
}

// findContainer looks for the task's container in the engine (adoption).
// If there are several (a crash between create and record), the running or
// most recent one is kept and the others removed.
func (s *supervisor) findContainer(ctx context.Context) error {
	labels := s.a.nodeLabels()
	labels[runtime.LabelTask] = s.id
	cs, err := s.a.rt.List(ctx, labels)
	if err != nil {
		return err
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].Running != cs[j].Running {
			return cs[i].Running
		}
		return cs[i].StartedAt.After(cs[j].StartedAt)
	})
	for i, c := range cs {
		if i == 0 {
			continue
		}
		if err := s.a.rt.Remove(ctx, c.ID); err != nil {
			return err
		}
	}
	s.looked = true
	if len(cs) > 0 {
		s.cid = cs[0].ID
		s.runSeen = cs[0].StartedAt
		s.everStart = !cs[0].StartedAt.IsZero()
		if ps, ok := s.a.loadState(s.id); ok {
			s.restarts, s.failures, s.terminal = ps.Restarts, ps.Failures, ps.Terminal
			if s.terminal {
				s.adoptTerminal(cs[0])
			}
		}
		s.log.Info("adopted container", "container", cs[0].Name, "status", cs[0].Status)
	}
	return nil
}

// adoptTerminal reports a replica the restart policy had given up on
// before the agent restarted.
func (s *supervisor) adoptTerminal(c runtime.Container) {
	state := client.StateFailed
	if c.ExitCode == 0 {
		state = client.StateComplete
	}
	s.set(client.ReplicaStatus{
		State: state, ContainerID: c.ID, ExitCode: c.ExitCode, StartedAt: c.StartedAt,
		Message: fmt.Sprintf("exited with code %d", c.ExitCode),
	})
}

// persist saves the restart policy's counters (see state.go).
func (s *supervisor) persist() {
	err := s.a.saveState(s.id, taskState{Restarts: s.restarts, Failures: s.failures, Terminal: s.terminal})
	if err != nil {
		s.log.Warn("task state not saved", "err", err)
	}
}

// teardown stops and removes the task's container and files. With report,
// the stop is reported first (State stopping).
func (s *supervisor) teardown(ctx context.Context, rec store.TaskRecord, report bool) error {
	if !s.looked {
		if err := s.findContainer(ctx); err != nil {
			return err
		}
	}
	s.due = time.Time{}
	if s.cid != "" {
		c, err := s.a.rt.Inspect(ctx, s.cid)
		switch {
		case errors.Is(err, runtime.ErrNotFound):
		case err != nil:
			return err
		default:
			if report {
				s.set(client.ReplicaStatus{State: client.StateStopping, ContainerID: s.cid, StartedAt: c.StartedAt})
				s.report(ctx, rec)
			}
			if c.Running && report && s.a.drainer != nil {
				// Out of every proxy and no request in flight before the
				// stop signal: a rollout never cuts a request.
				if err := s.a.drainer.Drain(ctx, s.id); err != nil && ctx.Err() == nil {
					s.log.Warn("drain incomplete; stopping anyway", "err", err)
				}
			}
			if c.Running {
				grace := rec.Spec.StopGracePeriod.D()
				if grace <= 0 {
					grace = defaultStopGrace
				}
				if err := s.a.rt.Stop(ctx, s.cid, rec.Spec.StopSignal, grace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
					return err
				}
				if c, err := s.a.rt.Inspect(ctx, s.cid); err == nil {
					s.status.ExitCode = c.ExitCode
				}
			}
			if err := s.a.rt.Remove(ctx, s.cid); err != nil {
				return err
			}
		}
		s.log.Info("container removed", "container", ContainerName(rec))
		s.forgetAddresses()
		s.cid = ""
	}
	return s.a.removeFiles(s.id)
}

// converge makes the container of a task that should run match it.
func (s *supervisor) converge(ctx context.Context, rec store.TaskRecord) {
	if !s.looked {
		if err := s.findContainer(ctx); err != nil {
			s.retry(ctx, "list containers", err)
			return
		}
	}
	if s.cid == "" {
		if !s.due.IsZero() && time.Now().Before(s.due) {
			return // vanished: recreated after the backoff
		}
		recreate := !s.due.IsZero()
		s.due = time.Time{}
		if err := s.create(ctx, rec); err != nil {
			if ctx.Err() == nil {
				s.fail(ctx, rec, err)
			}
			return
		}
		if recreate {
			s.restarted(ctx, rec)
		}
		// Just created, never started: no need to inspect it first. The
		// start pokes the supervisor, whose next step inspects it.
		s.start(ctx, rec)
		return
	}
	c, err := s.a.rt.Inspect(ctx, s.cid)
	if errors.Is(err, runtime.ErrNotFound) {
		s.vanished(ctx, rec)
		return
	}
	if err != nil {
		s.retry(ctx, "inspect", err)
		return
	}
	switch {
	case c.Running:
		s.observeRun(ctx, rec, c)
	case c.Status == runtime.StatusCreated && c.StartedAt.IsZero() && s.due.IsZero():
		s.start(ctx, rec)
	default: // exited, dead, or created after a failed start
		if s.due.IsZero() && !c.FinishedAt.IsZero() && !c.FinishedAt.Equal(s.exitSeen) {
			s.exited(ctx, rec, c)
		}
		if !s.terminal && !s.due.IsZero() && !time.Now().Before(s.due) {
			s.due = time.Time{}
			s.restarted(ctx, rec)
			s.start(ctx, rec)
		}
	}
}

// create prepares the networks, volumes and files, and creates the
// container. As `docker run` does, it asks the engine for the image only
// when the creation finds something missing (ErrNotFound): then it pulls the
// image if absent, ensures the networks again (one may have been removed
// behind the agent's back) and creates once more. A deploy of an image
// already present thus costs one engine request per replica less.
func (s *supervisor) create(ctx context.Context, rec store.TaskRecord) error {
	s.set(client.ReplicaStatus{State: client.StatePreparing, Message: "preparing"})
	s.report(ctx, rec)
	if err := s.ensureNetworks(ctx, rec); err != nil {
		return err
	}
	for _, v := range engineVolumes(rec) {
		if err := s.a.rt.EnsureVolume(ctx, v); err != nil {
			return err
		}
	}
	files, err := s.a.writeFiles(ctx, rec)
	if err != nil {
		return err
	}
	spec := containerSpec(rec, files)
	if s.a.cfg.ClusterID != "" {
		spec.Labels[runtime.LabelCluster] = s.a.cfg.ClusterID
	}
	if s.a.pn != nil {
		return s.createPrivnet(ctx, rec, spec)
	}
	addRoutePorts(&spec, rec, s.a.cfg.AdvertiseAddr)
	id, err := s.a.rt.Create(ctx, spec)
	if errors.Is(err, runtime.ErrNotFound) {
		if err := s.pullMissing(ctx, rec); err != nil {
			return err
		}
		if err := s.ensureNetworks(ctx, rec); err != nil {
			return err
		}
		id, err = s.a.rt.Create(ctx, spec)
	}
	if err != nil {
		return err
	}
	s.cid = id
	s.runSeen, s.exitSeen = time.Time{}, time.Time{}
	return nil
}

func (s *supervisor) ensureNetworks(ctx context.Context, rec store.TaskRecord) error {
	if s.a.pn != nil {
		return nil // ruche's networks: ensured by Attach
	}
	for _, n := range engineNetworks(rec) {
		if s.a.cfg.ClusterID != "" {
			n.Labels[runtime.LabelCluster] = s.a.cfg.ClusterID // what the sweep goes by
		}
		if err := s.a.rt.EnsureNetwork(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// pullMissing pulls the task's image unless the engine has it, reporting
// progress (at most one write every two seconds).
func (s *supervisor) pullMissing(ctx context.Context, rec store.TaskRecord) error {
	image := rec.Spec.Image
	ok, err := s.a.rt.ImagePresent(ctx, image)
	if err != nil || ok {
		return err
	}
	s.set(client.ReplicaStatus{State: client.StatePreparing, Message: "pulling: " + image})
	s.report(ctx, rec)
	return s.a.rt.PullImage(ctx, image, func(line string) {
		if time.Since(s.lastPull) < 2*time.Second {
			return
		}
		s.lastPull = time.Now()
		s.set(client.ReplicaStatus{State: client.StatePreparing, Message: "pulling: " + image + ": " + line})
		s.report(ctx, rec)
	})
}

// start starts the (created or exited) container.
func (s *supervisor) start(ctx context.Context, rec store.TaskRecord) {
	err := s.a.rt.Start(ctx, s.cid)
	if errors.Is(err, runtime.ErrNotFound) {
		// A network removed behind the agent's back (the engine checks
		// networks when it starts a container): ensure them, once more.
		if err = s.ensureNetworks(ctx, rec); err == nil {
			err = s.a.rt.Start(ctx, s.cid)
		}
	}
	if err == nil && s.a.pn != nil {
		err = s.startWired(ctx, rec)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		// A failed start (port taken, missing executable) counts as a
		// failed run for the restart policy.
		d := decideExit(rec.Spec.RestartPolicy, 1, 0, s.failures, false)
		s.failures = d.failures
		msg := "could not start: " + err.Error()
		if d.restart {
			s.due = time.Now().Add(d.delay)
			msg += fmt.Sprintf("; retrying in %s", d.delay)
		} else {
			s.terminal = true
			d.state = client.StateFailed
			s.persist()
			s.a.record(ctx, rec, "failed", msg)
		}
		s.set(client.ReplicaStatus{State: d.state, ContainerID: s.cid, Message: msg})
		return
	}
	s.a.m.starts.Inc()
	s.persist()
	if !s.everStart {
		s.everStart = true
		s.a.record(ctx, rec, "started", "")
	}
	s.poke() // inspect the running container right away
}

// restarted counts a restart.
func (s *supervisor) restarted(ctx context.Context, rec store.TaskRecord) {
	s.restarts++
	s.status.Restarts = s.restarts
	s.a.m.restarts.Inc()
	s.a.record(ctx, rec, "restarted", fmt.Sprintf("restart %d", s.restarts))
}

// observeRun reports a running container: ready when healthy or without
// healthcheck.
func (s *supervisor) observeRun(ctx context.Context, rec store.TaskRecord, c runtime.Container) {
	addrs := c.Addresses
	if s.a.pn != nil {
		// Wired at start; this catches a container started by an agent
		// that stopped before it wired it.
		if err := s.wire(rec, c); err != nil {
			s.retry(ctx, "wire", err)
			return
		}
		addrs = privnet.Addresses(c.Labels)
		c.Ports = s.a.pn.Ports(c.ID)
	}
	s.runSeen = c.StartedAt
	st := client.ReplicaStatus{
		State: client.StateRunning, Ready: true, Health: c.Health, ContainerID: c.ID,
		Ports: markRoutePorts(c.Labels, rec.Spec.Ports, c.Ports), Addresses: projectAddresses(rec, addrs), StartedAt: c.StartedAt,
	}
	switch c.Health {
	case runtime.HealthStarting:
		st.State, st.Ready = client.StateStarting, false
	case runtime.HealthUnhealthy:
		st.State, st.Ready = client.StateUnhealthy, false
		st.Message = "healthcheck failing"
	}
	if c.Status == runtime.StatusPaused {
		st.Ready, st.Message = false, "paused"
	}
	if st.Ready && !s.wasReady {
		s.a.record(ctx, rec, "ready", "")
	}
	s.wasReady = st.Ready
	s.set(st)
	if s.a.pn != nil {
		s.publish(rec, c, st.Ready)
	}
}

// exited applies the restart policy to an exit seen for the first time.
func (s *supervisor) exited(ctx context.Context, rec store.TaskRecord, c runtime.Container) {
	s.exitSeen = c.FinishedAt
	s.wasReady = false
	if s.a.pn != nil {
		s.stopped(c.ID)
	}
	ranFor := c.FinishedAt.Sub(c.StartedAt)
	d := decideExit(rec.Spec.RestartPolicy, c.ExitCode, ranFor, s.failures, c.OOMKilled)
	s.failures = d.failures
	msg := d.message
	if c.Error != "" {
		msg += " (" + c.Error + ")"
	}
	s.a.record(ctx, rec, "exited", fmt.Sprintf("exit code %d", c.ExitCode))
	if d.restart {
		s.due = time.Now().Add(d.delay)
	} else {
		s.terminal = true
		s.persist()
		action := "failed"
		if d.state == client.StateComplete {
			action = "completed"
		}
		s.a.record(ctx, rec, action, msg)
	}
	s.set(client.ReplicaStatus{
		State: d.state, ContainerID: c.ID, ExitCode: c.ExitCode, Message: msg, StartedAt: c.StartedAt,
	})
}

// vanished handles a container removed behind the agent's back: a new one
// is created after the restart backoff.
func (s *supervisor) vanished(ctx context.Context, rec store.TaskRecord) {
	s.forgetAddresses()
	s.cid = ""
	s.wasReady = false
	d := decideExit(rec.Spec.RestartPolicy, 1, 0, s.failures, false)
	s.failures = d.failures
	if !d.restart {
		s.terminal = true
		s.set(client.ReplicaStatus{State: client.StateFailed, Message: "container removed"})
		s.a.record(ctx, rec, "failed", "container removed")
		return
	}
	s.due = time.Now().Add(d.delay)
	s.set(client.ReplicaStatus{State: client.StateRestarting, Message: fmt.Sprintf("container removed; recreating in %s", d.delay)})
}

// fail marks a task that could not be prepared or created as failed.
func (s *supervisor) fail(ctx context.Context, rec store.TaskRecord, err error) {
	s.terminal = true
	msg := err.Error()
	s.log.Warn("task failed", "err", err)
	s.set(client.ReplicaStatus{State: client.StateFailed, Message: msg})
	s.a.record(ctx, rec, "failed", msg)
}

// projectAddresses maps engine network names back to project networks.
func projectAddresses(rec store.TaskRecord, addrs map[string]string) map[string]string {
	if len(addrs) == 0 {
		return nil
	}
	out := map[string]string{}
	prefix := NetworkName(rec.Project, "")
	for n, ip := range addrs {
		if name, ok := strings.CutPrefix(n, prefix); ok {
			out[name] = ip
		} else {
			out[n] = ip
		}
	}
	return out
}
