package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/testbed"
)

// The ruche project and service of the bench.
const (
	rucheProject = "failover"
	rucheService = "web"
)

// composeTmpl is the service: the hello image with a healthcheck (hello is
// its own healthcheck client: the image is FROM scratch, no shell). Swarm
// gets the same (swarm.go). @GEN@ changes to roll the replicas over.
const composeTmpl = `services:
  web:
    image: @IMAGE@
    environment:
      HELLO_VERSION: "gen-@GEN@"
    healthcheck:
      test: ["CMD", "/hello", "health"]
      interval: 1s
      timeout: 2s
      retries: 3
    deploy:
      replicas: @REPLICAS@
`

type rucheSys struct {
	tb       *testbed.Testbed
	c        *testbed.Cluster
	cl       *client.Client
	dir      string // for the compose file
	image    string
	replicas int
}

func (r *rucheSys) Name() string { return "ruche" }

// deploy writes the compose file of generation gen and runs `ruche deploy`
// (which returns once the service converged).
func (r *rucheSys) deploy(ctx context.Context, gen int) error {
	f := filepath.Join(r.dir, "compose.yml")
	y := strings.NewReplacer("@IMAGE@", r.image, "@GEN@", fmt.Sprint(gen), "@REPLICAS@", fmt.Sprint(r.replicas)).Replace(composeTmpl)
	if err := os.WriteFile(f, []byte(y), 0o644); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, errOut, err := r.c.Ruche(dctx, "deploy", "-f", f, "-p", rucheProject, "--timeout", "4m")
	if err != nil {
		return fmt.Errorf("ruche deploy: %w\n%s%s", err, out, errOut)
	}
	return r.waitSettled(ctx)
}

func (r *rucheSys) Respread(ctx context.Context, gen int) error { return r.deploy(ctx, gen) }

// replicas lists the service's replicas as the API shows them.
func (r *rucheSys) replicasOf(ctx context.Context) ([]client.Replica, error) {
	p, err := r.cl.Project(ctx, rucheProject)
	if err != nil {
		return nil, err
	}
	for _, s := range p.Services {
		if s.Name == rucheService {
			return s.Replicas, nil
		}
	}
	return nil, fmt.Errorf("no service %s/%s", rucheProject, rucheService)
}

// ready says whether a replica is meant to run and runs ready.
func ready(rp client.Replica) bool {
	return rp.DesiredState == client.DesiredRunning && rp.Status.Ready
}

func (r *rucheSys) Placement(ctx context.Context) (map[string]int, error) {
	rs, err := r.replicasOf(ctx)
	if err != nil {
		return nil, err
	}
	place := map[string]int{}
	for _, rp := range rs {
		if ready(rp) {
			place[rp.Node]++
		}
	}
	return place, nil
}

func (r *rucheSys) Measure(ctx context.Context, victim string, t0 time.Time, tr *trial) error {
	var final []client.Replica
	err := poll(ctx, "full count ready elsewhere", func(ctx context.Context) (bool, error) {
		if tr.Down == 0 {
			if nodes, err := r.cl.Nodes(ctx); err == nil {
				for _, n := range nodes {
					if n.ID == victim && n.Status == client.NodeDown {
						tr.Down = time.Since(t0)
					}
				}
			}
		}
		rs, err := r.replicasOf(ctx)
		if err != nil {
			return false, err
		}
		// Until the node is seen down, the victim's replicas still show as
		// they were: they do not count.
		n := 0
		for _, rp := range rs {
			if ready(rp) && rp.Node != victim {
				n++
			}
		}
		if n >= r.replicas {
			tr.Ready = time.Since(t0)
			final = rs
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	// The replacements: running elsewhere now, and not there before the
	// kill (created after t0).
	for _, rp := range final {
		if !ready(rp) || rp.Node == victim || rp.CreatedAt.Before(t0) {
			continue
		}
		tr.Placed = max(tr.Placed, rp.CreatedAt.Sub(t0))
		if !rp.Status.StartedAt.IsZero() {
			tr.Started = max(tr.Started, rp.Status.StartedAt.Sub(t0))
		}
	}
	return nil
}

// Rejoin starts the node's agent again (with the identity in its data
// dir) and waits until the managers list it ready.
func (r *rucheSys) Rejoin(ctx context.Context, victim string) error {
	if err := r.c.Restart(victim); err != nil {
		return err
	}
	return r.c.WaitNode(ctx, victim, client.NodeReady)
}

func (r *rucheSys) Settle(ctx context.Context) error { return r.waitSettled(ctx) }

// waitSettled waits until the API lists exactly the full count of
// replicas meant to run, all ready, and the nodes' daemons run exactly
// that many containers of the service (nothing left of a replaced one).
func (r *rucheSys) waitSettled(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	return poll(ctx, "settled (full count, no surplus)", func(ctx context.Context) (bool, error) {
		rs, err := r.replicasOf(ctx)
		if err != nil {
			return false, err
		}
		meant, rdy := 0, 0
		for _, rp := range rs {
			if rp.DesiredState == client.DesiredRunning {
				meant++
				if rp.Status.Ready {
					rdy++
				}
			}
		}
		if meant != r.replicas || rdy != r.replicas {
			return false, nil
		}
		n, err := runningContainers(ctx, r.tb, filters.NewArgs(
			filters.Arg("label", "ruche.project="+rucheProject), filters.Arg("label", "ruche.service="+rucheService)))
		return err == nil && n == r.replicas, err
	})
}

// teardown removes the project, stops every ruche process and removes
// what ruche left in the nodes' daemons (containers and networks of the
// project), so that Swarm starts on clean daemons.
func (r *rucheSys) teardown(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	out, errOut, err := r.c.Ruche(rctx, "rm", rucheProject, "--timeout", "2m")
	cancel()
	if err != nil {
		return fmt.Errorf("ruche rm: %w\n%s%s", err, out, errOut)
	}
	for _, n := range r.tb.Nodes() {
		for _, p := range n.Procs() {
			p.Stop(20 * time.Second)
		}
	}
	for _, n := range r.tb.Nodes() {
		cli, err := n.Docker()
		if err != nil {
			return err
		}
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "ruche.project"))})
		if err == nil {
			for _, c := range cs {
				err = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
		}
		if err == nil {
			var nets []network.Summary
			nets, err = cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "ruche.project"))})
			for _, nw := range nets {
				cli.NetworkRemove(ctx, nw.ID)
			}
		}
		cli.Close()
		if err != nil {
			return fmt.Errorf("%s: remove ruche's leftovers: %w", n.Name(), err)
		}
	}
	return nil
}
