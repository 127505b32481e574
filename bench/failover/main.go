// Command failover is the node-failover benchmark of issue 4 (see
// bench/README.md, "Node failover"): on a 3-node testbed (network
// namespaces, a dockerd each; internal/testbed), a node holding replicas
// is powered off (its agent, dockerd, containerd and containers
// SIGKILLed), and the time until the service has its full count of ready
// replicas on the other nodes is measured, first with ruche (`ruche up` in
// node1, agents in node2 and node3), then with Docker Swarm across the
// same daemons (node1 manager, node2 and node3 workers), with the same
// service: the hello image with a healthcheck, 3 replicas.
//
// It needs root. Everything it creates is the testbed's (named ruche-tb-),
// removed at the end, also on failure or ^C. Traffic stays on the
// testbed's bridge and namespaces.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ruche-platform/ruche/internal/testbed"
)

// image is the tag of the hello image in every node's daemon.
const image = "ruche-bench-hello:latest"

type config struct {
	bin          string
	pkg          string
	trials       int
	replicas     int
	systems      string
	out          string
	version      string
	trialTimeout time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/ruche", "the ruche binary")
	flag.StringVar(&c.pkg, "image-package", "./examples/hello", "the package the hello image is built from")
	flag.IntVar(&c.trials, "trials", 10, "trials per system")
	flag.IntVar(&c.replicas, "replicas", 3, "replicas of the service")
	flag.StringVar(&c.systems, "systems", "ruche,swarm", "systems to measure, in order")
	flag.StringVar(&c.out, "out", "", "directory for results.tsv, report.md and the logs (required)")
	flag.StringVar(&c.version, "version", "", "ruche's version, for the report")
	flag.DurationVar(&c.trialTimeout, "trial-timeout", 3*time.Minute, "give up a trial after")
	flag.Parse()
	if c.out == "" {
		fmt.Fprintln(os.Stderr, "bench/failover: -out is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/failover:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) (err error) {
	if err := os.MkdirAll(filepath.Join(c.out, "logs"), 0o755); err != nil {
		return err
	}
	bin, err := filepath.Abs(c.bin)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rep := &report{Started: time.Now().UTC(), Replicas: c.replicas, Trials: c.trials, Version: c.version}
	rep.machine(ctx)

	tb, err := testbed.New(testbed.Config{Nodes: 3, HostAddress: true, Docker: true,
		Images: []testbed.Image{{Ref: image, Package: c.pkg}}, Log: log})
	if err != nil {
		return err
	}
	defer func() {
		rep.Pulls = scanLogs(tb, filepath.Join(c.out, "logs"))
		if cerr := tb.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("testbed close: %w", cerr))
		}
		rep.Finished = time.Now().UTC()
		rep.loadEnd()
		if werr := rep.write(c.out); werr != nil {
			err = errors.Join(err, werr)
		}
		fmt.Print(rep.markdown())
		if len(rep.Pulls) > 0 {
			err = errors.Join(err, fmt.Errorf("a daemon or agent tried to pull an image (see the report)"))
		}
		if err == nil && len(rep.Errors) > 0 {
			err = errors.New(strings.Join(rep.Errors, "; "))
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = tb.Start(sctx)
	cancel()
	if err != nil {
		return err
	}
	imageID, err := sameImage(ctx, tb, image)
	if err != nil {
		return err
	}
	rep.ImageID = imageID
	rep.dockerVersion(ctx, tb)
	for _, sys := range strings.Split(c.systems, ",") {
		var err error
		switch strings.TrimSpace(sys) {
		case "ruche":
			err = runRuche(ctx, log, tb, c, bin, rep)
		case "swarm":
			err = runSwarm(ctx, log, tb, c, imageID, rep)
		default:
			err = fmt.Errorf("unknown system %q", sys)
		}
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", sys, err))
			if errors.Is(err, errDirty) || ctx.Err() != nil {
				break // the daemons are not clean for the next system
			}
		}
	}
	return nil
}

// errDirty: a system could not be torn down; the next one would not start
// on clean daemons.
var errDirty = errors.New("teardown failed")

func runRuche(ctx context.Context, log *slog.Logger, tb *testbed.Testbed, c config, bin string, rep *report) error {
	log.Info("ruche: starting the cluster")
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	cl, err := tb.StartCluster(sctx, testbed.ClusterConfig{Bin: bin})
	cancel()
	if err != nil {
		return err
	}
	api, err := cl.Client()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ruche-bench-failover-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r := &rucheSys{tb: tb, c: cl, cl: api, dir: dir, image: image, replicas: c.replicas}
	log.Info("ruche: deploying")
	err = r.deploy(ctx, 0)
	if err == nil {
		var ts []trial
		ts, err = runTrials(ctx, log, tb, r, c.trials, c.replicas, c.trialTimeout)
		rep.Ruche = ts
	}
	log.Info("ruche: tearing down")
	if terr := r.teardown(context.WithoutCancel(ctx)); terr != nil {
		return errors.Join(err, fmt.Errorf("%w: %w", errDirty, terr))
	}
	return err
}

func runSwarm(ctx context.Context, log *slog.Logger, tb *testbed.Testbed, c config, imageID string, rep *report) error {
	log.Info("swarm: init and join")
	s := &swarmSys{tb: tb, imageID: imageID, replicas: c.replicas}
	defer func() {
		if err := s.teardown(context.WithoutCancel(ctx)); err != nil {
			log.Warn("swarm teardown", "err", err)
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err := s.setup(sctx)
	cancel()
	if err != nil {
		return err
	}
	rep.SwarmListen = swarmSockets(ctx, tb)
	ts, err := runTrials(ctx, log, tb, s, c.trials, c.replicas, c.trialTimeout)
	rep.Swarm = ts
	return err
}
