// Package docker is the Docker Engine driver of the agent's runtime
// (runtime.Runtime), over the official Go client with API version
// negotiation, so that it works with Debian 12's dockerd (20.10, API 1.41)
// and with current Docker releases.
package docker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dockerclient "github.com/docker/docker/client"

	"github.com/ruche-platform/ruche/internal/runtime"
)

// Config configures the driver.
type Config struct {
	// Host is the daemon address ("unix:///run/ruche-n1/docker.sock",
	// "tcp://127.0.0.1:2375"). Empty: the environment (DOCKER_HOST, ...),
	// else the default socket.
	Host string
	// PullTimeout bounds one image pull. Zero: 10 minutes.
	PullTimeout time.Duration
	// Logs bound each container's log files when the engine's default log
	// driver writes files (logs_limit.go). Zero: the engine's own setting.
	Logs LogLimits
}

// Runtime is runtime.Runtime over a Docker daemon.
type Runtime struct {
	cli         *dockerclient.Client
	pullTimeout time.Duration
	netMu       sync.Mutex      // serialises network creation
	nets        map[string]bool // networks known to exist, by name (under netMu)
	volMu       sync.Mutex      // serialises volume creation

	logs      LogLimits
	logMu     sync.Mutex
	logDriver string // the engine's default log driver, once known (under logMu)
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a driver for the daemon of cfg. It does no I/O: the API
// version is negotiated on the first request.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.Logs.Check(); err != nil {
		return nil, err
	}
	opts := []dockerclient.Opt{dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, dockerclient.WithHost(cfg.Host))
	}
	cli, err := dockerclient.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = 10 * time.Minute
	}
	return &Runtime{cli: cli, pullTimeout: cfg.PullTimeout, nets: map[string]bool{}, logs: cfg.Logs}, nil
}

// Client returns the underlying Docker client, for tools that need more
// than the runtime interface (image builds in tests).
func (r *Runtime) Client() *dockerclient.Client { return r.cli }

// Close releases the client's connections.
func (r *Runtime) Close() error { return r.cli.Close() }

// Ping checks that the daemon answers.
func (r *Runtime) Ping(ctx context.Context) error {
	if _, err := r.cli.Ping(ctx); err != nil {
		return fmt.Errorf("ping docker: %w", err)
	}
	return nil
}

// Info describes the daemon's machine.
func (r *Runtime) Info(ctx context.Context) (runtime.Info, error) {
	info, err := r.cli.Info(ctx)
	if err != nil {
		return runtime.Info{}, fmt.Errorf("docker info: %w", err)
	}
	return runtime.Info{Name: info.Name, Version: info.ServerVersion, NCPU: info.NCPU, MemTotal: info.MemTotal}, nil
}

// notFound maps the daemon's not-found errors to runtime.ErrNotFound,
// keeping the daemon's message.
func notFound(err error) error {
	if err != nil && cerrdefs.IsNotFound(err) && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("%w: %w", runtime.ErrNotFound, err)
	}
	return err
}
