package docker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
)

// Create creates a container. Docker restarts nothing by itself (restart
// policy "no"): the agent owns restarts. The container joins its first
// network at creation and the others before it starts, because API 1.41
// accepts a single endpoint at creation.
func (r *Runtime) Create(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	cfg, host, netcfg, err := containerConfig(spec)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	if host.LogConfig, err = r.logConfig(ctx); err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	resp, err := r.cli.ContainerCreate(ctx, cfg, host, netcfg, nil, spec.Name)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			// The image or a network is missing (engines after 20.10
			// check networks at creation): the next EnsureNetwork looks
			// for the networks again.
			r.forgetNetworks(attachedNetworks(spec)...)
		}
		return "", fmt.Errorf("create container %s: %w", spec.Name, notFound(err))
	}
	for _, a := range spec.Networks[min(1, len(spec.Networks)):] {
		err := r.cli.NetworkConnect(ctx, a.Network, resp.ID, &network.EndpointSettings{Aliases: a.Aliases})
		if err != nil {
			_ = r.Remove(context.WithoutCancel(ctx), resp.ID)
			if cerrdefs.IsNotFound(err) {
				r.forgetNetworks(a.Network)
			}
			return "", fmt.Errorf("connect container %s to network %s: %w", spec.Name, a.Network, notFound(err))
		}
	}
	return resp.ID, nil
}

func attachedNetworks(spec runtime.ContainerSpec) []string {
	names := make([]string, 0, len(spec.Networks))
	for _, a := range spec.Networks {
		names = append(names, a.Network)
	}
	return names
}

// containerConfig maps a runtime-neutral spec to Docker's three structs.
func containerConfig(spec runtime.ContainerSpec) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	cfg := &container.Config{
		Image:      spec.Image,
		Cmd:        spec.Command,
		Entrypoint: spec.Entrypoint,
		Env:        spec.Env,
		Labels:     spec.Labels,
		User:       spec.User,
		WorkingDir: spec.WorkingDir,
		Hostname:   spec.Hostname,
		Tty:        spec.TTY,
		OpenStdin:  spec.StdinOpen,
		StopSignal: spec.StopSignal,
	}
	if spec.StopGrace > 0 {
		s := graceSeconds(spec.StopGrace)
		cfg.StopTimeout = &s
	}
	if hc := spec.Healthcheck; hc != nil {
		cfg.Healthcheck = &container.HealthConfig{
			Test:        hc.Test,
			Interval:    hc.Interval.D(),
			Timeout:     hc.Timeout.D(),
			StartPeriod: hc.StartPeriod.D(),
			Retries:     hc.Retries,
		}
		if hc.Disable {
			cfg.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
		}
	}
	host := &container.HostConfig{
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		ReadonlyRootfs: spec.ReadOnly,
		CapAdd:         spec.CapAdd,
		CapDrop:        spec.CapDrop,
		ExtraHosts:     spec.ExtraHosts,
		Resources:      container.Resources{NanoCPUs: spec.NanoCPUs, Memory: spec.Memory},
	}
	if spec.Init {
		t := true
		host.Init = &t
	}
	if len(spec.Ports) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		host.PortBindings = nat.PortMap{}
	}
	for _, p := range spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		port, err := nat.NewPort(proto, strconv.Itoa(int(p.Target)))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("port %d/%s: %w", p.Target, proto, err)
		}
		cfg.ExposedPorts[port] = struct{}{}
		b := nat.PortBinding{HostIP: p.HostIP}
		if p.Published != 0 {
			b.HostPort = strconv.Itoa(int(p.Published))
		}
		host.PortBindings[port] = append(host.PortBindings[port], b)
	}
	for _, m := range spec.Mounts {
		switch m.Type {
		case client.MountVolume:
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
		case client.MountBind:
			// Binds (not Mounts) so that a missing host directory is
			// created, as compose does.
			b := m.Source + ":" + m.Target
			if m.ReadOnly {
				b += ":ro"
			}
			host.Binds = append(host.Binds, b)
		case client.MountTmpfs:
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: m.Target, ReadOnly: m.ReadOnly})
		default:
			return nil, nil, nil, fmt.Errorf("mount %s: unknown type %q", m.Target, m.Type)
		}
	}
	host.DNS, host.DNSSearch, host.DNSOptions = spec.DNS, spec.DNSSearch, spec.DNSOptions
	netcfg := &network.NetworkingConfig{}
	if spec.NoNetwork {
		if len(spec.Networks) > 0 || len(spec.Ports) > 0 {
			return nil, nil, nil, fmt.Errorf("a container without network has no networks or published ports")
		}
		host.NetworkMode = network.NetworkNone
	}
	if len(spec.Networks) > 0 {
		first := spec.Networks[0]
		host.NetworkMode = container.NetworkMode(first.Network)
		netcfg.EndpointsConfig = map[string]*network.EndpointSettings{
			first.Network: {Aliases: first.Aliases},
		}
	}
	return cfg, host, netcfg, nil
}

func graceSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// Start starts a container. Docker 20.10 finds a missing network only
// here ("network x not found"): the next EnsureNetwork calls then look for
// their networks again.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		if cerrdefs.IsNotFound(err) {
			r.forgetNetworks()
		}
		return fmt.Errorf("start container %s: %w", short(id), notFound(err))
	}
	return nil
}

// Stop stops a container: signal, then SIGKILL after grace. On API < 1.42
// Docker ignores the signal of the request and sends the container's own
// stop signal, which the agent sets at creation to the same value.
func (r *Runtime) Stop(ctx context.Context, id string, signal string, grace time.Duration) error {
	t := graceSeconds(grace)
	err := r.cli.ContainerStop(ctx, id, container.StopOptions{Signal: signal, Timeout: &t})
	if err != nil {
		return fmt.Errorf("stop container %s: %w", short(id), notFound(err))
	}
	return nil
}

// Remove force-removes a container with its anonymous volumes.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	err := r.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !isGone(err) {
		return fmt.Errorf("remove container %s: %w", short(id), err)
	}
	return nil
}

// isGone: the container does not exist or is already being removed. err
// may be the daemon's or already wrapped (runtime.ErrNotFound, by Inspect).
func isGone(err error) bool {
	if err == nil {
		return false
	}
	if cerrdefs.IsNotFound(err) || errors.Is(err, runtime.ErrNotFound) {
		return true
	}
	return strings.Contains(err.Error(), "is already in progress")
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
