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
// Docker does not enforce unique network names under concurrent creation
// (20.10 creates both), so creations through one driver are serialised.
// A network this driver made or found is remembered, so the replicas of a
// project after the first cost no request; RemoveNetwork forgets it, and a
// Create or Start that finds something missing (a network removed behind
// the driver's back) makes EnsureNetwork look again.
func (r *Runtime) EnsureNetwork(ctx context.Context, n runtime.Network) error {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if r.nets[n.Name] {
		return nil
	}
	if ids, err := r.networkIDs(ctx, n.Name); err != nil {
		return fmt.Errorf("ensure network %s: %w", n.Name, err)
	} else if len(ids) > 0 {
		r.nets[n.Name] = true
		return nil
	}
	_, err := r.cli.NetworkCreate(ctx, n.Name, network.CreateOptions{
		Driver:   "bridge",
		Internal: n.Internal,
		Labels:   n.Labels,
	})
	// Another process may have won the race: use its network.
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("create network %s: %w", n.Name, err)
	}
	r.nets[n.Name] = true
	return nil
}

// forgetNetworks drops networks from what EnsureNetwork remembers; all of
// them when no name is given.
func (r *Runtime) forgetNetworks(names ...string) {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	if len(names) == 0 {
		clear(r.nets)
	}
	for _, n := range names {
		delete(r.nets, n)
	}
}

// RemoveNetwork removes the networks of that name: by ID, so that
// duplicates left by a concurrent creation elsewhere go as well.
func (r *Runtime) RemoveNetwork(ctx context.Context, name string) error {
	r.forgetNetworks(name)
	ids, err := r.networkIDs(ctx, name)
	if err != nil {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	for _, id := range ids {
		if err := r.cli.NetworkRemove(ctx, id); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove network %s: %w", name, err)
		}
	}
	return nil
}

// networkIDs returns the IDs of the networks named name (several when a
// concurrent creation made duplicates).
func (r *Runtime) networkIDs(ctx context.Context, name string) ([]string, error) {
	f := filters.NewArgs(filters.Arg("name", name))
	list, err := r.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range list {
		if n.Name == name { // the name filter matches substrings
			ids = append(ids, n.ID)
		}
	}
	return ids, nil
}

// Networks lists networks by labels.
func (r *Runtime) Networks(ctx context.Context, labels map[string]string) ([]runtime.NetworkInfo, error) {
	list, err := r.cli.NetworkList(ctx, network.ListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	out := make([]runtime.NetworkInfo, 0, len(list))
	for _, n := range list {
		out = append(out, runtime.NetworkInfo{Name: n.Name, Labels: n.Labels, Created: n.Created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// EnsureVolume creates a volume unless it exists (creating an existing
// volume is a no-op in Docker, but it must not change its labels).
func (r *Runtime) EnsureVolume(ctx context.Context, v runtime.Volume) error {
	r.volMu.Lock()
	defer r.volMu.Unlock()
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
