package docker

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
)

// Inspect returns a container's state.
func (r *Runtime) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	resp, err := r.cli.ContainerInspect(ctx, id)
	if err != nil {
		return runtime.Container{}, fmt.Errorf("inspect container %s: %w", short(id), notFound(err))
	}
	return fromInspect(resp), nil
}

// List returns the containers carrying labels, inspected.
func (r *Runtime) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	list, err := r.ListSummaries(ctx, labels)
	if err != nil {
		return nil, err
	}
	out := make([]runtime.Container, 0, len(list))
	for _, s := range list {
		c, err := r.Inspect(ctx, s.ID)
		if err != nil {
			if isGone(err) {
				continue // removed between list and inspect
			}
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ListSummaries returns the containers carrying labels as the engine's
// list gives them (no inspection).
func (r *Runtime) ListSummaries(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]runtime.Container, 0, len(list))
	for _, s := range list {
		c := runtime.Container{ID: s.ID, Image: s.Image, Labels: s.Labels, Status: string(s.State)}
		if len(s.Names) > 0 {
			c.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		c.Running = c.Status == runtime.StatusRunning
		out = append(out, c)
	}
	return out, nil
}

func fromInspect(resp container.InspectResponse) runtime.Container {
	c := runtime.Container{}
	if resp.ContainerJSONBase != nil {
		c.ID = resp.ID
		c.Name = strings.TrimPrefix(resp.Name, "/")
		if s := resp.State; s != nil {
			c.Status = string(s.Status)
			c.Running = s.Running
			if s.Running {
				c.Pid = s.Pid
			}
			c.ExitCode = s.ExitCode
			c.Error = s.Error
			c.OOMKilled = s.OOMKilled
			c.StartedAt = parseTime(s.StartedAt)
			c.FinishedAt = parseTime(s.FinishedAt)
			if s.Health != nil && s.Health.Status != container.NoHealthcheck {
				c.Health = string(s.Health.Status)
			}
		}
	}
	if resp.Config != nil {
		c.Image = resp.Config.Image
		c.Labels = resp.Config.Labels
	}
	if ns := resp.NetworkSettings; ns != nil {
		c.Ports = portBindings(ns.Ports)
		for name, ep := range ns.Networks {
			if ep != nil && ep.IPAddress != "" {
				if c.Addresses == nil {
					c.Addresses = map[string]string{}
				}
				c.Addresses[name] = ep.IPAddress
			}
		}
	}
	return c
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// portBindings flattens Docker's port map, sorted, IPv4 first. For "all
// addresses" Docker publishes on both 0.0.0.0 and ::, and with an
// ephemeral port the two may get different numbers (their allocators drift
// apart once a port is published on one family only), so both are kept,
// each with its own address.
func portBindings(pm nat.PortMap) []client.PortBinding {
	var out []client.PortBinding
	seen := map[string]bool{}
	for port, binds := range pm {
		for _, b := range binds {
			hp, err := strconv.Atoi(b.HostPort)
			if err != nil || hp == 0 {
				continue
			}
			pb := client.PortBinding{Target: uint16(port.Int()), Published: uint16(hp), Protocol: port.Proto(), HostIP: b.HostIP}
			if ip, err := netip.ParseAddr(b.HostIP); err == nil && ip.IsUnspecified() {
				pb.HostIP = "0.0.0.0"
				if ip.Is6() {
					pb.HostIP = "::"
				}
			}
			key := fmt.Sprint(pb)
			if !seen[key] {
				seen[key] = true
				out = append(out, pb)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Target != b.Target {
			return a.Target < b.Target
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.HostIP != b.HostIP {
			return a.HostIP < b.HostIP
		}
		return a.Published < b.Published
	})
	return out
}
