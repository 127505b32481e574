package docker

import (
	"context"
	"fmt"
	"sort"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/ruche-platform/ruche/internal/runtime"
)

func labelFilters(labels map[string]string) filters.Args {
	f := filters.NewArgs()
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	return f
}

// EnsureNetwork creates a bridge network unless one of that name exists.
func (r *Runtime) EnsureNetwork(ctx context.Context, n runtime.Network) error {
	if _, err := r.cli.NetworkInspect(ctx, n.Name, network.InspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", n.Name, err)
	}
	_, err := r.cli.NetworkCreate(ctx, n.Name, network.CreateOptions{
		Driver:   "bridge",
		Internal: n.Internal,
		Labels:   n.Labels,
	})
	// Two replicas may race to create the same network: the loser gets a
	// conflict and uses the winner's.
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("create network %s: %w", n.Name, err)
	}
	return nil
}

// RemoveNetwork removes a network by name.
func (r *Runtime) RemoveNetwork(ctx context.Context, name string) error {
	if err := r.cli.NetworkRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}

// Networks lists networks by labels.
func (r *Runtime) Networks(ctx context.Context, labels map[string]string) ([]string, error) {
	list, err := r.cli.NetworkList(ctx, network.ListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	names := make([]string, 0, len(list))
	for _, n := range list {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return names, nil
}

// EnsureVolume creates a volume unless it exists (creating an existing
// volume is a no-op in Docker, but it must not change its labels).
func (r *Runtime) EnsureVolume(ctx context.Context, v runtime.Volume) error {
	if _, err := r.cli.VolumeInspect(ctx, v.Name); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect volume %s: %w", v.Name, err)
	}
	_, err := r.cli.VolumeCreate(ctx, volume.CreateOptions{
		Name:       v.Name,
		Driver:     v.Driver,
		DriverOpts: v.DriverOpts,
		Labels:     v.Labels,
	})
	if err != nil {
		return fmt.Errorf("create volume %s: %w", v.Name, err)
	}
	return nil
}

// RemoveVolume removes a volume by name.
func (r *Runtime) RemoveVolume(ctx context.Context, name string) error {
	if err := r.cli.VolumeRemove(ctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// Volumes lists volumes by labels.
func (r *Runtime) Volumes(ctx context.Context, labels map[string]string) ([]string, error) {
	resp, err := r.cli.VolumeList(ctx, volume.ListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	names := make([]string, 0, len(resp.Volumes))
	for _, v := range resp.Volumes {
		names = append(names, v.Name)
	}
	sort.Strings(names)
	return names, nil
}
