package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	dockerclient "github.com/docker/docker/client"

	"github.com/ruche-platform/ruche/internal/testbed"
)

// swarmService is the Swarm service of the bench.
const swarmService = "failover-web"

// Swarm's defaults, which the bench keeps (swarmkit: dispatcher heartbeat
// period 5 s, a node is down after 3 periods without one; restart policy
// "any" with a 5 s delay).
const swarmDefaults = "dispatcher heartbeat period 5 s (a node missing 3 is down), restart policy any with delay 5 s"

// swarmSys is Docker Swarm across the testbed's daemons: node1's dockerd
// is the (only) manager, node2's and node3's are workers; node1 also runs
// tasks, as ruche's node1 runs replicas.
type swarmSys struct {
	tb       *testbed.Testbed
	mgr      *dockerclient.Client // node1's daemon
	imageID  string
	replicas int
	ids      map[string]string // node name → swarm node ID
	names    map[string]string // swarm node ID → node name
	service  string            // its ID
}

func (s *swarmSys) Name() string { return "swarm" }

// swarmPool is the /24 after the link network, inside the testbed's own
// block (which overlaps nothing the host has, and which no node's docker0
// or address pool uses): the overlay networks Swarm makes (its ingress)
// take their subnets from it instead of Swarm's default 10.0.0.0/8.
func swarmPool(tb *testbed.Testbed) netip.Prefix {
	a := tb.LinkNet().Addr().As4()
	a[2]++
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

// setup makes the swarm (init on node1, join node2 and node3 over the
// testbed's link with the worker token) and creates the service with the
// image by ID; the client does not query a registry (QueryRegistry false
// is `--no-resolve-image`).
func (s *swarmSys) setup(ctx context.Context) error {
	nodes := s.tb.Nodes()
	mgr, err := nodes[0].Docker()
	if err != nil {
		return err
	}
	s.mgr = mgr
	a1 := nodes[0].Addr().String()
	if _, err := mgr.SwarmInit(ctx, swarm.InitRequest{
		ListenAddr: net.JoinHostPort(a1, "2377"), AdvertiseAddr: a1, DataPathAddr: a1,
		DefaultAddrPool: []string{swarmPool(s.tb).String()}, SubnetSize: 26,
	}); err != nil {
		return fmt.Errorf("swarm init on node1: %w", err)
	}
	sw, err := mgr.SwarmInspect(ctx)
	if err != nil {
		return fmt.Errorf("swarm inspect: %w", err)
	}
	for _, n := range nodes[1:] {
		cli, err := n.Docker()
		if err != nil {
			return err
		}
		a := n.Addr().String()
		err = cli.SwarmJoin(ctx, swarm.JoinRequest{
			ListenAddr: net.JoinHostPort(a, "2377"), AdvertiseAddr: a, DataPathAddr: a,
			RemoteAddrs: []string{net.JoinHostPort(a1, "2377")}, JoinToken: sw.JoinTokens.Worker,
		})
		cli.Close()
		if err != nil {
			return fmt.Errorf("swarm join of %s: %w", n.Name(), err)
		}
	}
	if err := s.waitNodes(ctx); err != nil {
		return err
	}
	replicas := uint64(s.replicas)
	resp, err := mgr.ServiceCreate(ctx, swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: swarmService},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
			Image: s.imageID,
			Env:   []string{"HELLO_VERSION=gen-0"},
			Healthcheck: &container.HealthConfig{
				Test: []string{"CMD", "/hello", "health"}, Interval: time.Second, Timeout: 2 * time.Second, Retries: 3,
			},
		}},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
	}, swarm.ServiceCreateOptions{QueryRegistry: false})
	if err != nil {
		return fmt.Errorf("service create: %w", err)
	}
	s.service = resp.ID
	return s.waitSettled(ctx)
}

// waitNodes waits until the manager lists every node ready, and maps the
// swarm's node IDs to testbed names by address (the nodes share the
// host's hostname).
func (s *swarmSys) waitNodes(ctx context.Context) error {
	byAddr := map[string]string{}
	for _, n := range s.tb.Nodes() {
		byAddr[n.Addr().String()] = n.Name()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return poll(ctx, "every swarm node ready", func(ctx context.Context) (bool, error) {
		ns, err := s.mgr.NodeList(ctx, swarm.NodeListOptions{})
		if err != nil {
			return false, err
		}
		s.ids, s.names = map[string]string{}, map[string]string{}
		for _, n := range ns {
			name := byAddr[n.Status.Addr]
			if name == "" || n.Status.State != swarm.NodeStateReady {
				continue
			}
			s.ids[name], s.names[n.ID] = n.ID, name
		}
		return len(s.ids) == len(byAddr), nil
	})
}

func (s *swarmSys) tasks(ctx context.Context) ([]swarm.Task, error) {
	return s.mgr.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", s.service), filters.Arg("desired-state", "running"))})
}

// running says whether a task runs; with a healthcheck, a Swarm task
// becomes running only once its container is healthy.
func running(t swarm.Task) bool {
	return t.DesiredState == swarm.TaskStateRunning && t.Status.State == swarm.TaskStateRunning
}

func (s *swarmSys) Placement(ctx context.Context) (map[string]int, error) {
	ts, err := s.tasks(ctx)
	if err != nil {
		return nil, err
	}
	place := map[string]int{}
	for _, t := range ts {
		if running(t) {
			place[s.names[t.NodeID]]++
		}
	}
	return place, nil
}

// Respread changes the service's environment (a rolling update, as the
// ruche side's), and waits until it completed and settled.
func (s *swarmSys) Respread(ctx context.Context, gen int) error {
	svc, _, err := s.mgr.ServiceInspectWithRaw(ctx, s.service, swarm.ServiceInspectOptions{})
	if err != nil {
		return err
	}
	spec := svc.Spec
	spec.TaskTemplate.ContainerSpec.Env = []string{fmt.Sprintf("HELLO_VERSION=gen-%d", gen)}
	if _, err := s.mgr.ServiceUpdate(ctx, s.service, svc.Version, spec, swarm.ServiceUpdateOptions{QueryRegistry: false}); err != nil {
		return err
	}
	uctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err = poll(uctx, "service update completed", func(ctx context.Context) (bool, error) {
		svc, _, err := s.mgr.ServiceInspectWithRaw(ctx, s.service, swarm.ServiceInspectOptions{})
		if err != nil {
			return false, err
		}
		if u := svc.UpdateStatus; u != nil && (u.State == swarm.UpdateStatePaused || u.State == swarm.UpdateStateRollbackCompleted) {
			return false, fmt.Errorf("update %s: %s", u.State, u.Message)
		}
		return svc.UpdateStatus != nil && svc.UpdateStatus.State == swarm.UpdateStateCompleted, nil
	})
	if err != nil {
		return err
	}
	return s.waitSettled(ctx)
}

func (s *swarmSys) Measure(ctx context.Context, victim string, t0 time.Time, tr *trial) error {
	vid := s.ids[victim]
	var final []swarm.Task
	err := poll(ctx, "full count running elsewhere", func(ctx context.Context) (bool, error) {
		if tr.Down == 0 {
			if n, _, err := s.mgr.NodeInspectWithRaw(ctx, vid); err == nil && n.Status.State == swarm.NodeStateDown {
				tr.Down = time.Since(t0)
			}
		}
		ts, err := s.tasks(ctx)
		if err != nil {
			return false, err
		}
		n := 0
		for _, t := range ts {
			if running(t) && t.NodeID != vid {
				n++
			}
		}
		if n >= s.replicas {
			tr.Ready = time.Since(t0)
			final = ts
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	for _, t := range final {
		if !running(t) || t.NodeID == vid || t.CreatedAt.Before(t0) {
			continue
		}
		tr.Placed = max(tr.Placed, t.CreatedAt.Sub(t0))
		if st := s.startedAt(ctx, t); !st.IsZero() {
			tr.Started = max(tr.Started, st.Sub(t0))
		}
	}
	return nil
}

// startedAt is when the task's container started, from its node's daemon.
func (s *swarmSys) startedAt(ctx context.Context, t swarm.Task) time.Time {
	n := s.tb.Node(s.names[t.NodeID])
	if n == nil || t.Status.ContainerStatus == nil {
		return time.Time{}
	}
	cli, err := n.Docker()
	if err != nil {
		return time.Time{}
	}
	defer cli.Close()
	c, err := cli.ContainerInspect(ctx, t.Status.ContainerStatus.ContainerID)
	if err != nil || c.State == nil {
		return time.Time{}
	}
	st, _ := time.Parse(time.RFC3339Nano, c.State.StartedAt)
	return st
}

// Rejoin: the node's dockerd (started again by PowerOn) keeps its swarm
// state in its data root and joins again by itself; this waits until the
// manager lists it ready.
func (s *swarmSys) Rejoin(ctx context.Context, victim string) error {
	vid := s.ids[victim]
	return poll(ctx, victim+" ready in the swarm", func(ctx context.Context) (bool, error) {
		n, _, err := s.mgr.NodeInspectWithRaw(ctx, vid)
		return err == nil && n.Status.State == swarm.NodeStateReady, err
	})
}

func (s *swarmSys) Settle(ctx context.Context) error { return s.waitSettled(ctx) }

// waitSettled waits until the service has exactly its count of tasks meant
// to run, all running, and the daemons run exactly that many of its
// containers.
func (s *swarmSys) waitSettled(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	return poll(ctx, "swarm settled (full count, no surplus)", func(ctx context.Context) (bool, error) {
		ts, err := s.tasks(ctx)
		if err != nil {
			return false, err
		}
		n := 0
		for _, t := range ts {
			if running(t) {
				n++
			}
		}
		if n != s.replicas || len(ts) != s.replicas {
			return false, nil
		}
		c, err := runningContainers(ctx, s.tb, filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+s.service)))
		return err == nil && c == s.replicas, err
	})
}

// teardown removes the service and leaves the swarm on every node (the
// testbed's Close removes the daemons and their data anyway).
func (s *swarmSys) teardown(ctx context.Context) error {
	if s.mgr == nil {
		return nil
	}
	defer s.mgr.Close()
	var errs error
	if s.service != "" {
		errs = s.mgr.ServiceRemove(ctx, s.service)
	}
	nodes := s.tb.Nodes()
	for i := len(nodes) - 1; i >= 0; i-- {
		cli, err := nodes[i].Docker()
		if err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		if err := cli.SwarmLeave(ctx, true); err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s: swarm leave: %w", nodes[i].Name(), err))
		}
		cli.Close()
	}
	return errs
}
